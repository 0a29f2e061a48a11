"""Run directories in Cloud Storage: upload a finalised run, and verify one in place.

A `gs://` output root is staged locally and finalised there (manifest.json and all), then
uploaded here: every other file first, manifest.json last. Cloud Storage has no rename,
so the manifest's presence is what marks a run complete: a reader that finds
`<run>/manifest.json` finds every file it lists. Re-uploading after a crash is safe
(objects are overwritten with the same bytes; the manifest goes last again).

Credentials: Application Default Credentials, or anonymous ones when STORAGE_EMULATOR_HOST
points at an emulator (the storage client's own rule). google.cloud.storage is imported
inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import orjson
from pydantic import ValidationError

from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest
from tunespec.diagnostics import Diagnostic, DiagnosticError, Diagnostics, Location

CHUNK = 1 << 20


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/a/b/` -> ("bucket", "a/b")."""
    if not uri.startswith("gs://"):
        raise ValueError(f"not a gs:// URI: {uri}")
    bucket, _, prefix = uri[len("gs://") :].partition("/")
    return bucket, prefix.strip("/")


def _client(client: Any | None) -> Any:
    if client is not None:
        return client
    from google.cloud import storage

    try:
        return storage.Client()
    except Exception as exc:  # DefaultCredentialsError, or no project found
        raise DiagnosticError(Diagnostic(
            "TS307", f"cannot open Cloud Storage: {str(exc).splitlines()[0]}", Location(),
            "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
        )) from None


def upload_run(local_dir: str | Path, uri: str, client: Any = None, on_file: Callable[[str, int], None] | None = None) -> str:
    """Upload a finalised local run directory to `uri` (gs://bucket/.../<spec>/<run id>).
    Files go first, manifest.json last. Returns `uri`."""
    folder = Path(local_dir)
    if not (folder / MANIFEST_FILE).is_file():
        raise DiagnosticError(Diagnostic("TS500", f"{folder} has no {MANIFEST_FILE}: only finalised runs are uploaded", Location(str(folder))))
    bucket_name, prefix = split_uri(uri)
    bucket = _client(client).bucket(bucket_name)
    manifest = folder / MANIFEST_FILE
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != manifest)
    for file in [*files, manifest]:
        rel = file.relative_to(folder).as_posix()
        blob = bucket.blob(f"{prefix}/{rel}" if prefix else rel)
        try:
            blob.upload_from_filename(str(file), retry=_retry())
        except Exception as exc:
            raise DiagnosticError(Diagnostic(
                "TS308", f"uploading {rel} to {uri} failed: {type(exc).__name__}: {exc}", Location(str(file)),
                "the run is kept locally; re-running the upload is safe (manifest.json goes last)",
            )) from None
        if on_file is not None:
            on_file(rel, file.stat().st_size)
    return uri


def verify_gcs_run(uri: str, client: Any = None) -> tuple[Manifest | None, Diagnostics]:
    """`tunespec verify gs://...`: the manifest parses, every listed object exists with its
    size and sha256 (streamed, constant memory), and no unlisted object is present."""
    diags = Diagnostics(max_per_code=50)
    bucket_name, prefix = split_uri(uri)
    bucket = _client(client).bucket(bucket_name)
    base = f"{prefix}/" if prefix else ""
    manifest_uri = f"{uri.rstrip('/')}/{MANIFEST_FILE}"
    where = Location(manifest_uri)
    try:
        blobs = {b.name[len(base) :]: b for b in bucket.list_blobs(prefix=base, retry=_retry())}
    except Exception as exc:
        diags.error("TS308", f"cannot list {uri}: {type(exc).__name__}: {exc}", where)
        return None, diags
    if MANIFEST_FILE not in blobs:
        diags.error("TS500", f"no {MANIFEST_FILE} at {uri}", where,
                    "a run is complete only once its manifest.json is uploaded (it goes last)")
        return None, diags
    try:
        manifest = Manifest.model_validate(orjson.loads(blobs[MANIFEST_FILE].download_as_bytes(retry=_retry())))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        diags.error("TS500", f"{MANIFEST_FILE} is not a valid manifest: {exc}".splitlines()[0], where)
        return None, diags
    listed = set()
    for entry in manifest.files:
        listed.add(entry.path)
        blob = blobs.get(entry.path)
        loc = Location(f"{uri.rstrip('/')}/{entry.path}", path=f"files[{entry.path}]")
        if blob is None:
            diags.error("TS502", f"listed file is missing: {entry.path}", loc, "the upload is incomplete; re-run it")
        elif blob.size != entry.size:
            diags.error("TS501", f"size of {entry.path} is {blob.size}, manifest says {entry.size}", loc)
        elif sha256_blob(blob) != entry.sha256:
            diags.error("TS501", f"sha256 of {entry.path} does not match the manifest", loc, "the object was modified or corrupted")
    for rel in sorted(set(blobs) - listed - {MANIFEST_FILE}):
        diags.error("TS503", f"file not listed in the manifest: {rel}", Location(f"{uri.rstrip('/')}/{rel}"))
    return manifest, diags


def sha256_blob(blob: Any) -> str:
    """sha256 of an object's bytes, streamed (Cloud Storage keeps md5/crc32c, not sha256)."""
    digest = hashlib.sha256()
    with blob.open("rb", chunk_size=CHUNK, retry=_retry()) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


__all__ = ["sha256_blob", "split_uri", "upload_run", "verify_gcs_run"]
