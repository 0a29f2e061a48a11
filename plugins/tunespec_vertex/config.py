"""The `backend:` block of a Vertex spec: every option, documented where it is declared.

    backend:
      name: vertex
      project: my-project
      location: us-central1
      staging_bucket: gs://my-bucket/tunespec
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
SERVICE_ACCOUNT = re.compile(r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$|^[^@\s]+@[^@\s]+$")

# Environment variables that override the options of the same meaning. They exist so
# `tunespec status`/`cancel`, which run without the spec, reach the same endpoint.
ENV_API_ENDPOINT = "TUNESPEC_VERTEX_API_ENDPOINT"
ENV_ANONYMOUS = "TUNESPEC_VERTEX_ANONYMOUS"


class CatalogOverride(BaseModel):
    """Entries merged over the built-in model catalog (plugins/tunespec_vertex/catalog.yaml)."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Model id (or glob) -> fields to set, e.g. `{gemini-2.5-flash: {regions: [us-central1]}}`. "
        "A new id adds a model; fields not given keep their built-in values.",
    )
    data_rules: dict[str, Any] = Field(
        default_factory=dict,
        description="Dataset limits to override (tunespec DataRules fields), e.g. `{max_examples: {validation: 1000}}`; "
        "`media` merges kind by kind.",
    )
    preference_data_rules: dict[str, Any] = Field(
        default_factory=dict, description="Dataset limits of preference tuning to override, like `data_rules`."
    )


class VertexConfig(BaseModel):
    """Options of the `vertex` backend (Vertex AI supervised tuning jobs)."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(
        pattern=r"^(([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)$",
        description="Google Cloud project that owns the tuning job and is billed for it: its id "
        "(`my-project`, `example.com:my-project`) or number.",
    )
    location: str = Field(
        default="us-central1",
        pattern=r"^[a-z]+-[a-z]+[0-9]+$",
        description="Region the job runs in. Must be one the base model tunes in (see the model catalog).",
    )
    staging_bucket: str | None = Field(
        default=None,
        pattern=r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$",
        description="`gs://bucket[/prefix]` where local datasets and media are uploaded (content-addressed, "
        "uploaded once). Required when any data source is local.",
    )
    service_account: str | None = Field(
        default=None,
        description="Service account the tuning job runs as (`name@project.iam.gserviceaccount.com`). "
        "Default: the Vertex AI service agent.",
    )
    encryption_key: str | None = Field(
        default=None,
        description="Cloud KMS key for customer-managed encryption (CMEK) of the job and tuned model: "
        "`projects/P/locations/L/keyRings/R/cryptoKeys/K`. Only for models whose catalog entry has `cmek: true`.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on the tuning job, besides `metadata.labels` and tunespec's own "
        "(`tunespec_run`, `tunespec_spec`, `tunespec_fingerprint`). Keys and values are lowercased and "
        "sanitised to Vertex's label rules; an unfixable one is an error.",
    )
    output_uri: str | None = Field(
        default=None,
        pattern=r"^gs://.+",
        description="`gs://` folder where an open model's tuned weights are written. Required for open models.",
    )
    custom_base_model: str | None = Field(
        default=None,
        pattern=r"^gs://.+",
        description="`gs://` folder of safetensors weights to tune instead of the published weights of the "
        "open model named in `model.base` (which still sets the architecture).",
    )
    checkpoint_id: str | None = Field(
        default=None,
        description="Continued tuning: the checkpoint of the tuned model in `model.base` "
        "(`projects/P/locations/L/models/M[@V]`) to start from. Default: its default checkpoint.",
    )
    pre_tuned_base_model: str | None = Field(
        default=None,
        description="Continued tuning: the catalog id the tuned model was tuned from (e.g. `gemini-2.5-flash`), "
        "so pre-flight checks (adapter sizes, regions) apply. Without it they are skipped with a warning.",
    )
    export_last_checkpoint_only: bool = Field(
        default=False, description="Export only the last checkpoint instead of one per epoch."
    )
    wait: bool = Field(
        default=True,
        description="Whether `apply` waits for the job to finish (polling it). With `false`, apply returns "
        "once the job is created; `tunespec status` follows it.",
    )
    poll_interval: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds between job status polls while waiting."
    )
    timeout: float = Field(default=60.0, gt=0, le=600, description="Seconds before one API request is abandoned (then retried).")
    api_endpoint: str | None = Field(
        default=None,
        description="API endpoint to use instead of `{location}-aiplatform.googleapis.com`: a private "
        "endpoint, or `http://127.0.0.1:PORT` for an emulator. Env override: TUNESPEC_VERTEX_API_ENDPOINT.",
    )
    credentials: Literal["adc", "anonymous"] = Field(
        default="adc",
        description="`adc`: Application Default Credentials (`gcloud auth application-default login`, or a "
        "service account on GCE/GKE/CI). `anonymous`: no credentials, only for emulators. "
        "Env override: TUNESPEC_VERTEX_ANONYMOUS=1.",
    )
    catalog: CatalogOverride | None = Field(
        default=None, description="Catalog entries merged over the built-in model catalog (add a model, a region...)."
    )
    catalog_file: str | None = Field(
        default=None, description="YAML file (relative to the spec) with catalog entries, same shape as `catalog`."
    )

    @field_validator("encryption_key")
    @classmethod
    def _kms_key(cls, value: str | None) -> str | None:
        if value is not None and not KMS_KEY.match(value):
            raise ValueError("expected `projects/P/locations/L/keyRings/R/cryptoKeys/K`")
        return value

    @field_validator("service_account")
    @classmethod
    def _service_account(cls, value: str | None) -> str | None:
        if value is not None and not SERVICE_ACCOUNT.match(value):
            raise ValueError("expected a service account email, e.g. `tuner@my-project.iam.gserviceaccount.com`")
        return value

    @property
    def bucket_and_prefix(self) -> tuple[str, str]:
        """`gs://b/p/q` -> ("b", "p/q")."""
        assert self.staging_bucket is not None
        bucket, _, prefix = self.staging_bucket[len("gs://") :].partition("/")
        return bucket, prefix.strip("/")
