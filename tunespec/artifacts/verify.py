"""`tunespec verify RUN`: prove a run directory is complete and intact, and `is_published`:
does a run's folder still hold its manifest.

Local folders are read here; `gs://` runs through `tunespec.artifacts.gcs` (imported only
for them). Both go through the same `check_run`.
"""

from __future__ import annotations

from pathlib import Path

from tunespec.artifacts.check import StoredFile, check_run
from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest
from tunespec.artifacts.rundir import sha256_file
from tunespec.diagnostics import Diagnostics


def verify_run(run: str | Path) -> tuple[Manifest | None, Diagnostics]:
    """Verify a local run directory or a `gs://` run. Returns the manifest (if readable) and
    the problems found."""
    if str(run).startswith("gs://"):
        from tunespec.artifacts.gcs import verify_gcs_run

        return verify_gcs_run(str(run))
    folder = Path(run)
    manifest_path = folder / MANIFEST_FILE
    files = {
        p.relative_to(folder).as_posix(): StoredFile(p.stat().st_size, lambda p=p: sha256_file(p))
        for p in folder.rglob("*")
        if p.is_file()
    }
    manifest_bytes = manifest_path.read_bytes() if manifest_path.is_file() else None
    hint = "a run directory holds manifest.json; staging folders (.<run>.partial) are unfinished runs"
    return check_run(str(folder), manifest_bytes, files, missing_manifest_hint=hint)


def is_published(run: str | Path) -> bool:
    """True if the run folder (local or `gs://`) holds its manifest.json."""
    if str(run).startswith("gs://"):
        from tunespec.artifacts.gcs import manifest_exists

        return manifest_exists(str(run))
    return (Path(run) / MANIFEST_FILE).is_file()


def read_manifest(run: str | Path) -> Manifest | None:
    """A published run's manifest (local or `gs://`), parsed against the schema; None when
    the run has none or it does not parse (`verify_run` says why). Nothing else is read or
    hashed: this is how another spec's result is found, cheaply, on every `plan`."""
    try:
        if str(run).startswith("gs://"):
            from tunespec.artifacts.gcs import read_gcs_manifest

            data = read_gcs_manifest(str(run))
        else:
            path = Path(run) / MANIFEST_FILE
            data = path.read_bytes() if path.is_file() else None
        return Manifest.model_validate_json(data) if data is not None else None
    except (OSError, ValueError):
        return None
