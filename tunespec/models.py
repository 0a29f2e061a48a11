"""Model resolvers: from the spec's `model.base` string to something a trainer can load.

Resolvers are registered by plugins (`tunespec_model_resolvers` hook); the local backend
ships resolvers for a local folder, a hub id, a GGUF file and `package:` files. Resolving
only locates files: loading (torch, transformers) is the backend's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from tunespec.diagnostics import Diagnostic, DiagnosticError, Location


@dataclass(frozen=True)
class ResolvedModel:
    ref: str
    """The spec's `model.base`, as written."""
    kind: Literal["hf_folder", "hub", "gguf", "run"]
    location: str
    """Folder (hf_folder, gguf: the folder holding the file; run: the upstream run's
    `adapter/` folder) or hub id."""
    gguf_file: str | None = None
    """File name inside `location` when kind is gguf."""
    revision: str | None = None
    run_id: str | None = None
    """For kind `run` (`model.base: run:<spec>` whose run published an adapter): the run
    whose adapter, merged into the base it was trained on, is the model. None while that
    run is still to be made in this apply."""

    @property
    def display(self) -> str:
        if self.kind == "run":
            return f"{self.ref} (run {self.run_id}: its adapter merged into its base)" if self.run_id else f"{self.ref} (the run this apply makes first)"
        return f"{self.location}/{self.gguf_file}" if self.gguf_file else self.location


class ModelResolver(Protocol):
    name: str

    def handles(self, ref: str) -> bool:
        """True if this resolver understands `ref` (cheap: no I/O beyond a stat)."""

    def resolve(self, ref: str, base_dir: Path) -> ResolvedModel:
        """Locate the model; raise `DiagnosticError` (code TS306) with a hint when it cannot."""


def resolve_model(ref: str, base_dir: Path, where: Location | None = None) -> ResolvedModel:
    """Resolve `ref` with the first registered resolver that handles it (any plugin's).
    `where` locates the diagnostic (TS306) raised when none does."""
    from tunespec.plugins.host import plugin_host

    for resolver in plugin_host().model_resolvers():
        if resolver.handles(ref):
            return resolver.resolve(ref, base_dir)
    names = ", ".join(r.name for r in plugin_host().model_resolvers()) or "none installed"
    raise DiagnosticError(
        Diagnostic(
            "TS306",
            f"no model resolver understands `{ref}` (resolvers: {names})",
            where or Location(subject=f"model {ref}"),
            "use a folder, a .gguf file, `package:<pkg>/<file>` or an `org/name` hub id",
        )
    )
