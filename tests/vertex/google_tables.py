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

# -- models --------------------------------------------------------------------------------
# "Supported tuning job regions" (gemini-supervised-tuning-region-settings): one list for
# supervised tuning of Gemini 2.x. The page's US entries were cut off in the copy read
# here; the us-* regions below are those Google lists for Gemini 2.x tuning elsewhere.
GEMINI_2X_REGIONS = frozenset({
    "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast3", "asia-south1", "asia-southeast1",
    "australia-southeast1", "europe-central2", "europe-north1", "europe-southwest1", "europe-west1", "europe-west2",
    "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9", "me-central1", "me-central2",
    "me-west1", "northamerica-northeast1", "southamerica-east1",
    "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west4",
})
# "Global endpoint" (learn/locations): "when you use the global endpoint, the following
# features aren't available: tuning, batch prediction, ...".
TUNING_ON_GLOBAL_ENDPOINT = False

# "About supervised fine-tuning for Gemini models": adapter sizes per model; 131,072 input
# and output tokens per training example; validation up to 5,000 examples.
GEMINI = {
    "gemini-2.5-pro": {"adapter_sizes": {1, 2, 4, 8}, "regions": GEMINI_2X_REGIONS},
    "gemini-2.5-flash": {"adapter_sizes": {1, 2, 4, 8, 16}, "regions": GEMINI_2X_REGIONS},
    "gemini-2.5-flash-lite": {"adapter_sizes": {1, 2, 4, 8, 16}, "regions": GEMINI_2X_REGIONS},
    "gemini-3.5-flash": {"adapter_sizes": {1, 2, 4, 8, 16}, "regions": frozenset({"us-central1", "europe-west4"})},
    "gemini-3.1-flash-lite": {"adapter_sizes": {1, 2, 4, 8, 16}, "regions": frozenset({"us-central1", "europe-west4"})},
}
GEMINI_MAX_TOKENS = 131_072
# Models Google no longer tunes (the 1.0/1.5 tables are gone from the page; 2.0 Flash and
# Flash-Lite were discontinued on 2026-06-01).
RETIRED = ("gemini-1.0-pro-002", "gemini-1.5-pro-002", "gemini-1.5-flash-002", "gemini-2.0-flash-001", "gemini-2.0-flash-lite-001")

# "Tune an open model" (open-model-tuning): supported models, tuning modes, the longest
# sequence per mode, modalities; regions us-central1 and europe-west4.
OPEN_MODEL_REGIONS = frozenset({"us-central1", "europe-west4"})
OPEN_MODELS = {
    "google/gemma-3-27b-it": {"modes": {"peft": 8192, "full": 8192}, "modalities": {"text"}},
    "meta/llama3_1@llama-3.1-8b": {"modes": {"peft": 4096, "full": 8192}, "modalities": {"text"}},
    "meta/llama3_1@llama-3.1-8b-instruct": {"modes": {"peft": 4096, "full": 8192}, "modalities": {"text"}},
    "meta/llama3-2@llama-3.2-1b-instruct": {"modes": {"full": 8192}, "modalities": {"text"}},
    "meta/llama3-2@llama-3.2-3b-instruct": {"modes": {"full": 8192}, "modalities": {"text"}},
    "meta/llama3-3@llama-3.3-70b-instruct": {"modes": {"peft": 4096, "full": 8192}, "modalities": {"text"}},
    "qwen/qwen3@qwen3-32b": {"modes": {"peft": 8192, "full": 8192}, "modalities": {"text"}},
    "meta/llama4@llama-4-scout-17b-16e-instruct": {"modes": {"peft": 2048}, "modalities": {"text", "image"}},
}

# -- datasets ("Prepare supervised fine-tuning data", the per-modality tuning pages) -----------
MAX_TRAINING_EXAMPLES = {"text": 10_000_000, "multimodal": 300_000}
MAX_VALIDATION_EXAMPLES = 5_000
VALIDATION_SHARE = {"over": 1_000, "max_share": 0.30}  # validation at most 30% of training when training > 1,000
AUDIO_MAX_SECONDS = 60 * 60
PDF_MAX_PAGES = 300
VIDEO_MAX_SECONDS = {"MEDIA_RESOLUTION_LOW": 20 * 60, "MEDIA_RESOLUTION_MEDIUM": 5 * 60, "MEDIA_RESOLUTION_HIGH": 5 * 60}
MIN_TRAINING_EXAMPLES = 16  # the documented minimum (100+ recommended)
