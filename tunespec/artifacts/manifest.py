"""The manifest: the schema-versioned record every run of every backend writes.

`manifest.json` is the last file written into a run directory and lists every other file
with its size and sha256, so `tunespec verify` can prove a run is complete and intact.
"""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


class OutputFile(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    path: str = Field(description="Path relative to the run directory, '/'-separated.")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    """Everything a downstream tool needs to find, trust and reproduce a run's result."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: validate never needs it

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    run_id: str
    spec_name: str
    fingerprint: str
    backend: str
    status: Literal["succeeded", "failed", "cancelled"]
    started_at: str = Field(description="ISO 8601 UTC.")
    finished_at: str = Field(description="ISO 8601 UTC.")
    base_model: str
    method: dict[str, Any] = Field(description="`type` and, for peft, the LoRA options.")
    hyperparameters: dict[str, Any]
    labels: dict[str, str] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict, description="The data report: examples, token stats, files.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Metrics summary (final/best losses, steps, tokens/s).")
    evaluation: dict[str, Any] = Field(default_factory=dict, description="Generation metrics, base vs tuned.")
    outputs: dict[str, Any] = Field(default_factory=dict, description="Remote resources (tuned model, endpoint) and local output folders.")
    error: dict[str, Any] | None = None
    files: list[OutputFile] = Field(default_factory=list, description="Every file in the run directory except manifest.json.")
    environment: dict[str, Any] = Field(default_factory=dict, description="Python, platform and package versions.")
    tracking: dict[str, Any] = Field(
        default_factory=dict,
        description="Per tracker the spec names (`tracking`): the parts `sent` and `not_sent` (params, metrics, data, "
        "evaluation, manifest), `where` the run is in the tracker (its run id, URI, folder), and the `error` when it failed. "
        "Written after the trackers ran; the manifest they received has this empty.",
    )
    exports: list[dict[str, Any]] = Field(
        default_factory=list,
        description="What `tunespec export` made from this run: `{format, path, created_at}` each (the export's own "
        "folder has its own manifest.json).",
    )


def environment_versions(extra_packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Versions of what produced the run, without importing the packages themselves."""
    packages = {}
    for name in ("tunespec", "pydantic", *extra_packages):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": packages}
