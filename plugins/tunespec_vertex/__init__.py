"""tunespec's Vertex AI backend: specs compiled into Vertex supervised tuning jobs.

Modules, in the order a spec meets them:

    config.py    the `backend:` block (VertexConfig)
    catalog.py   the model catalog (catalog.yaml): models, methods, adapter sizes, regions, limits
    compile.py   spec -> TuningJob request body (camelCase dict) + field mappings + pre-flight diagnostics
    labels.py    Vertex label rules
    clients.py   google clients (credentials, endpoint, retries), imported lazily
    staging.py   local datasets and media -> content-addressed objects in the staging bucket
    jobs.py      idempotent submission, polling, job -> RunResult
    backend.py   the `vertex` Backend tying them together
    plugin.py    the entry point: registers the backend, imports nothing heavy
"""
