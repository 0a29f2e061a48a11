"""tunespec's `local` backend: torch + peft training on this machine.

Importing this package (and `tunespec_local.plugin`, the entry point) is light: torch,
transformers and peft are imported inside the functions that train, load or generate.

Modules, top to bottom:
    plugin.py        entry point: registers the backend and the model resolvers
    config.py        LocalConfig, the spec's `backend:` options for `local`
    backend.py       LocalBackend: validate, compile (plan), token_counter, apply
    models/          resolvers (spec `model.base` -> files) and the conversion cache
    encode.py        chat template, loss mask, truncation (tokenizers + jinja2 only)
    training/        the training loop shared with the Ray backend: train(config, data, env)
    evaluation.py    generation metrics (exact_match, json_valid, json_field_match)
"""
