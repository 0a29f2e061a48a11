"""ResolvedSpec: a validated TuningJob tied to its file, ready for the backend.

It knows where it came from (file, document index, source positions) so any later step
can point a diagnostic at the spec line that caused it, and it resolves relative paths
against the spec file's folder. The fingerprint (resolved spec + data content + backend)
is set once data has been hashed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from tunespec import secrets
from tunespec.diagnostics import Location
from tunespec.spec.model import TuningJob


@dataclass
class ResolvedSpec:
    job: TuningJob
    config: BaseModel
    """The backend's own options, validated by its `config_model`."""
    file: Path
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
        return self.job.metadata.name

    @property
    def base_dir(self) -> Path:
        return self.file.parent

    def resolve_path(self, path: str) -> str:
        """A spec path made absolute against the spec's folder; URIs (`scheme://`) unchanged."""
        if "://" in path:
            return path
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    @property
    def output_root(self) -> str:
        return self.resolve_path(self.job.output.path)

    def locate(self, path: str | tuple = ()) -> Location:
        """Location of a field, e.g. ``spec.locate("method.lora.rank")``. Falls back to the
        nearest enclosing node that exists (a defaulted field points at its parent block)."""
        parts = path if isinstance(path, tuple) else _split_path(path)
        dotted = _join_path(parts)
        probe = tuple(parts)
        while probe:
            if probe in self.positions:
                line, col = self.positions[probe]
                return Location(str(self.file), line, col, dotted or None)
            probe = probe[:-1]
        line, col = self.positions.get((), (None, None))
        return Location(str(self.file), line, col, dotted or None)

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


def _split_path(path: str) -> tuple:
    """"a.b[0].c" -> ("a", "b", 0, "c")."""
    parts: list[Any] = []
    for chunk in path.split("."):
        if not chunk:
            continue
        name, *indices = chunk.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i.rstrip("]")) for i in indices)
    return tuple(parts)


def _join_path(parts: tuple | list) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
