"""Finding the published run a command names: a run folder, a run id, or a spec name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunespec.artifacts import MANIFEST_FILE, Manifest, read_manifest
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location

if TYPE_CHECKING:
    from tunespec.state import StateStore


@dataclass
class PublishedRun:
    """A finished run as its folder publishes it: what `predict` and `export` work from."""

    run_dir: Path
    """The run's folder (holds manifest.json)."""
    manifest: Manifest
    """Its manifest."""

    @property
    def run_id(self) -> str:
        """The run's id (`manifest.run_id`)."""
        return self.manifest.run_id

    def has(self, folder: str) -> bool:
        """True when the run published `folder` (`adapter`, `model`): some file under it is in the manifest."""
        return any(f.path.startswith(f"{folder}/") for f in self.manifest.files)


def find_run(target: str, state: "StateStore | None") -> PublishedRun:
    """The succeeded run `target` names: a run folder (with manifest.json), else a run id
    or a spec name (its latest run) recorded in `state`. Anything else is a TS401; a run
    that did not succeed is a TS407."""
    from tunespec import secrets

    where = Location(subject=target)
    path = Path(target)
    if (path / MANIFEST_FILE).is_file():
        run_dir = path
    else:
        record = (state.get_run(target) or state.latest_run(target)) if state is not None else None
        if record is None:
            what = "no run folder, run id or spec name" if state is not None else "no run folder (and no state database to look run ids up in)"
            raise DiagnosticError(Diagnostic("TS401", f"{what} {target!r}", where, "give a run folder, or a run id / spec name from `tunespec runs`"))
        run_dir = Path(secrets.expand(record.run_dir)[0])
        if record.status != "succeeded":
            raise DiagnosticError(Diagnostic("TS407", f"run {record.run_id} of {record.spec_name} is {record.status}: only a succeeded run has a tuned model",
                                             where, "apply the spec until a run succeeds (`tunespec status`)"))
    manifest = read_manifest(run_dir)
    if manifest is None:
        raise DiagnosticError(Diagnostic("TS500", f"{run_dir}/{MANIFEST_FILE} is missing or does not parse", where, f"`tunespec verify {run_dir}` says why"))
    if manifest.status != "succeeded":
        raise DiagnosticError(Diagnostic("TS407", f"run {manifest.run_id} is {manifest.status}: only a succeeded run has a tuned model", where,
                                         "pick a succeeded run (`tunespec runs`)"))
    return PublishedRun(run_dir, manifest)
