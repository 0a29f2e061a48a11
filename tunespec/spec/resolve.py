"""ResolvedSpec: a validated TuningJob tied to its file, ready for the backend.

It knows where it came from (file, document index, source positions) so any later step
can point a diagnostic at the spec line that caused it, and it resolves relative paths
against the spec file's folder. The fingerprint (resolved spec + data content + backend)
is set once data has been hashed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from tunespec import secrets
from tunespec.diagnostics import Location
from tunespec.spec.model import DocumentOptions, TuningJob
from tunespec.spec.paths import join_path, names_a_field, split_path

STRICT_PATHS_ENV = "TUNESPEC_STRICT_PATHS"


class UnknownSpecPath(ValueError):
    """`ResolvedSpec.locate` was asked for a path no spec can have (strict mode only)."""


@dataclass
class ResolvedSpec:
    """A spec that passed the schema: the `TuningJob`, the backend's validated options, and
    where every field is in its file (for diagnostics). What every backend method gets."""

    job: TuningJob
    """The spec's fields (`job.model.base`, `job.hyperparameters.epochs`, ...), interpolated values in place."""
    config: BaseModel
    """The backend's own options, validated by its `config_model`."""
    file: Path
    """The spec file."""
    document: int
    """0-based index of the YAML document in `file`."""
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict, repr=False)
    """Field path tuple -> (line, column), 1-based, for every node in the document."""
    redacted: dict[str, Any] = field(default_factory=dict, repr=False)
    """The spec as the user wrote it with `${env:...}` references kept: safe to store."""
    secret_digest: str = ""
    """sha256 over the values that were interpolated, so changing one changes the fingerprint."""
    data_hashes: dict[str, str] = field(default_factory=dict)
    """Data source path -> content hash, filled by data validation."""
    interpolations: list[tuple[str, str]] = field(default_factory=list, repr=False)
    """(`${env:...}` reference, value) pairs; values never leave the process (see `redact`)."""
    upstream: Any = None
    """For `model.base: run:<spec>`: the run it builds on (`tunespec.chains.UpstreamRun`, or
    `PendingUpstream` while that spec has yet to run in this command); set by `link_upstream`."""

    def redact(self, value: Any) -> Any:
        """`value` (JSON-like) with every interpolated value replaced by its `${env:...}`
        reference: apply this to anything stored, printed or written to artifacts."""
        return redact(value, self.interpolations)

    @property
    def name(self) -> str:
        """`metadata.name`."""
        return self.job.metadata.name

    @property
    def base_dir(self) -> Path:
        """The spec file's folder: relative paths in the spec are relative to it."""
        return self.file.parent

    def resolve_path(self, path: str) -> str:
        """A spec path made absolute against the spec's folder; URIs (`scheme://`) unchanged."""
        if "://" in path:
            return path
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    @property
    def output_root(self) -> str:
        """`output.path`, resolved: where `<spec name>/<run id>/` folders are published."""
        return self.resolve_path(self.job.output.path)

    def locate(self, path: str | tuple = ()) -> Location:
        """Location of a field, e.g. ``spec.locate("method.lora.rank")`` or
        ``spec.locate("data.train[1].path")``. A field the spec leaves to its default points
        at the nearest enclosing block that is written.

        `path` must name a field a spec can have (the spec's models, and the backend's
        `config_model` under `backend.`): a path that cannot exist is a bug in the caller.
        It falls back to the parent like a defaulted field, except under
        ``TUNESPEC_STRICT_PATHS=1`` (set for every pytest run by tunespec's pytest plugin),
        where it raises `UnknownSpecPath`, so a plugin's tests catch the typo."""
        parts = path if isinstance(path, tuple) else split_path(path)
        if os.environ.get(STRICT_PATHS_ENV) == "1" and not self.has_field(parts):
            raise UnknownSpecPath(f"spec.locate({join_path(parts)!r}): no spec field has this path")
        dotted = join_path(parts)
        probe = tuple(parts)
        while probe:
            if probe in self.positions:
                line, col = self.positions[probe]
                return Location(str(self.file), line, col, dotted or None)
            probe = probe[:-1]
        line, col = self.positions.get((), (None, None))
        return Location(str(self.file), line, col, dotted or None)

    def has_field(self, parts: tuple) -> bool:
        """True if `parts` can name a field of this spec (its backend block included)."""
        if parts[:1] == ("backend",) and len(parts) > 1:
            return parts[1] == "name" or names_a_field(type(self.config), parts[1:])
        if parts[:1] == ("tracking",) and len(parts) > 2 and isinstance(parts[1], int):
            return parts[2] == "name" or self._names_a_tracker_option(parts[1], parts[2:])
        return names_a_field(TuningJob, parts)

    def _names_a_tracker_option(self, index: int, parts: tuple) -> bool:
        from tunespec.plugins.host import plugin_host

        if index >= len(self.job.tracking):
            return False
        tracker = plugin_host().trackers().get(self.job.tracking[index].name)
        return tracker is not None and names_a_field(tracker.config_model, parts)

    @property
    def fingerprint(self) -> str:
        """sha256 over the resolved spec, the interpolated values, the data content and the
        backend: equal fingerprints mean an identical job."""
        from tunespec.chains import fingerprint_part

        payload = {
            "spec": _fingerprinted_spec(self.job),
            "config": self.config.model_dump(mode="json"),
            "secrets": self.secret_digest,
            "data": dict(sorted(self.data_hashes.items())),
        }
        upstream = fingerprint_part(self)
        if upstream is not None:  # only for specs built on another spec's run
            payload["upstream"] = upstream
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _fingerprinted_spec(job: TuningJob) -> dict[str, Any]:
    """The spec as the fingerprint sees it. Fields added after a spec was first applied are
    left out while they hold the value that reproduces the old behaviour (a supervised
    objective), so upgrading tunespec does not make every applied spec look changed."""
    spec = job.model_dump(mode="json", by_alias=True)
    spec.pop("tracking", None)  # where a run is reported, not what is trained
    data = spec.get("data", {})
    if data.get("modality") != "document" or data.get("documents") == DocumentOptions().model_dump(mode="json"):
        data.pop("documents", None)  # PDF options: only document data has PDFs; at their defaults, left out too
    method = spec.get("method", {})
    if method.get("objective") == "sft" and method.get("preference") is None:
        method.pop("objective", None)
        method.pop("preference", None)
    return spec


def redact(value: Any, interpolations: list[tuple[str, str]]) -> Any:
    """`value` (a string or JSON-like data) with each interpolated value replaced by its
    `${env:...}` reference (see `tunespec.secrets`)."""
    pairs = {v: ref for ref, v in interpolations if len(v) >= secrets.MIN_SECRET_LENGTH}
    return secrets.redact(value, pairs) if pairs else value
