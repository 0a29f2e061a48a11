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

from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest
from tunespec.artifacts.check import StoredFile, check_run
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
            "TS307", f"cannot open Cloud Storage: {str(exc).splitlines()[0]}", Location(subject="Cloud Storage"),
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
    """`tunespec verify gs://...`: the same check as for a local run (`check_run`), over the
    objects under `uri`; hashes are streamed, in constant memory."""
    bucket_name, prefix = split_uri(uri)
    bucket = _client(client).bucket(bucket_name)
    base = f"{prefix}/" if prefix else ""
    try:
        blobs = {b.name[len(base) :]: b for b in bucket.list_blobs(prefix=base, retry=_retry())}
        manifest_bytes = blobs[MANIFEST_FILE].download_as_bytes(retry=_retry()) if MANIFEST_FILE in blobs else None
    except Exception as exc:
        diags = Diagnostics()
        diags.error("TS308", f"cannot read {uri}: {type(exc).__name__}: {exc}", Location(f"{uri.rstrip('/')}/{MANIFEST_FILE}"))
        return None, diags
    files = {rel: StoredFile(blob.size, lambda blob=blob: sha256_blob(blob)) for rel, blob in blobs.items()}
    hint = "a run is complete only once its manifest.json is uploaded (it goes last)"
    return check_run(uri, manifest_bytes, files, missing_manifest_hint=hint)


def manifest_exists(uri: str, client: Any = None) -> bool:
    """True if the run at `uri` has its manifest.json (uploaded last: the run is complete)."""
    bucket_name, prefix = split_uri(uri)
    name = f"{prefix}/{MANIFEST_FILE}" if prefix else MANIFEST_FILE
    try:
        return _client(client).bucket(bucket_name).blob(name).exists(retry=_retry())
    except DiagnosticError:
        raise
    except Exception as exc:
        raise DiagnosticError(Diagnostic("TS308", f"cannot read {uri}: {type(exc).__name__}: {exc}", Location(f"{uri.rstrip('/')}/{MANIFEST_FILE}"))) from None


def read_gcs_manifest(uri: str, client: Any = None) -> bytes | None:
    """The bytes of the run's manifest.json at `uri`, or None when it has none."""
    bucket_name, prefix = split_uri(uri)
    blob = _client(client).bucket(bucket_name).blob(f"{prefix}/{MANIFEST_FILE}" if prefix else MANIFEST_FILE)
    try:
        return blob.download_as_bytes(retry=_retry())
    except Exception as exc:
        from google.api_core.exceptions import NotFound

        if isinstance(exc, NotFound):
            return None
        raise DiagnosticError(Diagnostic("TS308", f"cannot read {uri}: {type(exc).__name__}: {exc}", Location(f"{uri.rstrip('/')}/{MANIFEST_FILE}"))) from None


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


__all__ = ["manifest_exists", "sha256_blob", "split_uri", "upload_run", "verify_gcs_run"]
