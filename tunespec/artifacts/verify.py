"""`tunespec verify RUN`: prove a run directory is complete and intact."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import ValidationError

from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest
from tunespec.artifacts.rundir import sha256_file
from tunespec.diagnostics import Diagnostics, Location


def verify_run(run: str | Path) -> tuple[Manifest | None, Diagnostics]:
    """Check the manifest schema, that every listed file exists with its size and sha256,
    and that no unlisted file is present. Returns the manifest (if readable) and problems."""
    if str(run).startswith("gs://"):
        from tunespec.artifacts.gcs import verify_gcs_run

        return verify_gcs_run(str(run))
    diags = Diagnostics(max_per_code=50)
    folder = Path(run)
    manifest_path = folder / MANIFEST_FILE
    where = Location(str(manifest_path))
    if not manifest_path.is_file():
        hint = "a run directory holds manifest.json; staging folders (.<run>.partial) are unfinished runs"
        diags.error("TS500", f"no {MANIFEST_FILE} in {folder}", where, hint)
        return None, diags
    try:
        manifest = Manifest.model_validate(orjson.loads(manifest_path.read_bytes()))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        diags.error("TS500", f"{MANIFEST_FILE} is not a valid manifest: {exc}".splitlines()[0], where)
        return None, diags
    listed = set()
    for entry in manifest.files:
        listed.add(entry.path)
        file = folder / entry.path
        loc = Location(str(file), path=f"files[{entry.path}]")
        if not file.is_file():
            diags.error("TS502", f"listed file is missing: {entry.path}", loc, "the run is incomplete; re-run apply")
            continue
        size = file.stat().st_size
        if size != entry.size:
            diags.error("TS501", f"size of {entry.path} is {size}, manifest says {entry.size}", loc)
        elif sha256_file(file) != entry.sha256:
            diags.error("TS501", f"sha256 of {entry.path} does not match the manifest", loc, "the file was modified or corrupted")
    for file in folder.rglob("*"):
        rel = file.relative_to(folder).as_posix()
        if file.is_file() and rel != MANIFEST_FILE and rel not in listed:
            diags.error("TS503", f"file not listed in the manifest: {rel}", Location(str(file)))
    return manifest, diags
