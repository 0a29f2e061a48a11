"""`tunespec export`: a run's tuned model as a standalone folder beside the run.

The export is published like a run: staged in a hidden folder, given its own
manifest.json (the run's, with its own files and `outputs.export`), renamed into place as
`<spec>/<run id>-<format>/`. The run itself is not touched but for one entry added to its
manifest's `exports` (the manifest is not among the files it checksums, so `verify` of the
run still holds).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tunespec.artifacts import MANIFEST_FILE, Manifest, RunDirectory
from tunespec.artifacts.rundir import manifest_bytes, write_atomic
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location

if TYPE_CHECKING:
    from tunespec.backend import Backend
    from tunespec.progress import Progress
    from tunespec.results import PublishedRun


def export_folder(run: "PublishedRun", format: str) -> Path:
    return run.run_dir.parent / f"{run.run_id}-{format}"


def export_run(run: "PublishedRun", backend: "Backend", format: str, progress: "Progress", force: bool = False) -> Path:
    """Export `run` as `format`; returns the export's folder."""
    from tunespec.state.store import now_iso

    if format not in backend.export_formats:
        offered = ", ".join(backend.export_formats) or "none"
        raise DiagnosticError(Diagnostic("TS408", f"backend {backend.name!r} cannot export its runs as {format!r} (it offers: {offered})",
                                         Location(subject=run.run_id), "see `tunespec export --help` and docs/cli.md"))
    final = export_folder(run, format)
    if (final / MANIFEST_FILE).is_file() and not force:
        raise DiagnosticError(Diagnostic("TS007", f"{final} exists already", Location(str(final)), "pass --force to export again"))
    staged = RunDirectory(run.run_dir.parent.parent, run.manifest.spec_name, f"{run.run_id}-{format}")
    shutil.rmtree(staged.path, ignore_errors=True)
    staged.create()
    try:
        facts = backend.export(run, format, staged.path, progress)
        created = now_iso()
        export = {"format": format, "source_run_id": run.run_id, "source_run_dir": str(run.run_dir), "created_at": created, **facts}
        manifest = run.manifest.model_copy(update={"outputs": {"export": export}, "evaluation": run.manifest.evaluation,
                                                   "tracking": {}, "exports": []})
        spec_yaml = (run.run_dir / "spec.yaml").read_text() if (run.run_dir / "spec.yaml").is_file() else ""
        folder = staged.finalize(manifest, spec_yaml)
    except BaseException:
        shutil.rmtree(staged.path, ignore_errors=True)
        raise
    _record_in_run(run, {"format": format, "path": folder.name, "created_at": created})
    return folder


def _record_in_run(run: "PublishedRun", entry: dict[str, Any]) -> None:
    path = run.run_dir / MANIFEST_FILE
    manifest = orjson.loads(path.read_bytes())
    manifest["exports"] = [e for e in manifest.get("exports", []) if e.get("format") != entry["format"]] + [entry]
    write_atomic(path, manifest_bytes(Manifest.model_validate(manifest)))
