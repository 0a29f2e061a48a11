"""The one check of a run against its manifest, whatever the storage holds it.

A storage kind (a local folder, `gs://`) only says which files it holds and how to hash
one (`StoredFile`); `check_run` does the rest: the manifest parses, every file it lists
exists with its size and sha256, and nothing unlisted is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import orjson
from pydantic import ValidationError

from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest
from tunespec.diagnostics import Diagnostics, Location


@dataclass
class StoredFile:
    """A file as a storage holds it: its size, and how to hash it (only done when the size
    matches, since hashing reads every byte)."""

    size: int
    sha256: Callable[[], str]


def check_run(
    root: str, manifest_bytes: bytes | None, files: dict[str, StoredFile], missing_manifest_hint: str | None = None
) -> tuple[Manifest | None, Diagnostics]:
    """Check `files` (relative path -> StoredFile, the manifest included or not) against the
    manifest read from `manifest_bytes` (None: there is none)."""
    diags = Diagnostics(max_per_code=50)
    where = Location(f"{root.rstrip('/')}/{MANIFEST_FILE}")
    if manifest_bytes is None:
        diags.error("TS500", f"no {MANIFEST_FILE} in {root}", where, missing_manifest_hint)
        return None, diags
    try:
        manifest = Manifest.model_validate(orjson.loads(manifest_bytes))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        diags.error("TS500", f"{MANIFEST_FILE} is not a valid manifest: {exc}".splitlines()[0], where)
        return None, diags
    for entry in manifest.files:
        stored = files.get(entry.path)
        loc = Location(f"{root.rstrip('/')}/{entry.path}", path=f"files[{entry.path}]")
        if stored is None:
            diags.error("TS502", f"listed file is missing: {entry.path}", loc, "the run is incomplete; re-run apply")
        elif stored.size != entry.size:
            diags.error("TS501", f"size of {entry.path} is {stored.size}, manifest says {entry.size}", loc)
        elif stored.sha256() != entry.sha256:
            diags.error("TS501", f"sha256 of {entry.path} does not match the manifest", loc, "the file was modified or corrupted")
    listed = {entry.path for entry in manifest.files}
    for rel in sorted(set(files) - listed - {MANIFEST_FILE}):
        diags.error("TS503", f"file not listed in the manifest: {rel}", Location(f"{root.rstrip('/')}/{rel}"))
    return manifest, diags
