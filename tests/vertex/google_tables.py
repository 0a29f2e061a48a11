"""Google's published facts about Vertex AI tuning, written down here from Google's pages,
independently of plugins/tunespec_vertex/catalog.yaml, so that a wrong catalog entry fails
a test instead of being checked against itself.

Sources (checked 2026-11):
- "About supervised fine-tuning for Gemini models" and "Tune Gemini models by using
  supervised fine-tuning" (cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning,
  .../gemini-use-supervised-tuning): models, adapter sizes, token and dataset limits.
- "Prepare supervised fine-tuning data for Gemini models" (.../gemini-supervised-tuning-prepare).
- googleapis/googleapis google/cloud/aiplatform/v1beta1/tuning_job.proto (TuningJob, states).
- Google's standard API error texts (google.rpc.Status over REST): IAM's "Permission ...
  denied on resource ... (or it may not exist)." and the quota system's "Quota exceeded for
  quota metric ... and limit ... of service ... for consumer ...".
"""

from __future__ import annotations

# -- errors, as the REST API words them -----------------------------------------------------
ERROR_TEXT = {
    400: "Request contains an invalid argument.",
    403: "Permission '{permission}' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist).",
    404: "The resource '{resource}' was not found.",
    429: "Quota exceeded for quota metric '{metric}' and limit '{limit}' of service 'aiplatform.googleapis.com' "
         "for consumer 'project_number:123456789'.",
}
QUOTA = {"metric": "aiplatform.googleapis.com/concurrent_tuning_jobs", "limit": "Concurrent tuning jobs per region"}
