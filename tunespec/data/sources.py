"""Data sources: where data files live and how their bytes are streamed.

A source is any object with the `DataSource` shape, registered through the
``tunespec_data_sources`` hook; the first source whose ``handles(path)`` is true reads a
location. Built-ins:

- `LocalSource`: files and directories on this machine (paths already made absolute
  against the spec file by ``ResolvedSpec.resolve_path``; ``file://`` accepted).
- `GCSSource`: ``gs://bucket/object`` and ``gs://bucket/prefix/`` through
  google-cloud-storage, imported inside the methods so validating local data never pays
  for it. ``STORAGE_EMULATOR_HOST`` (gcp-storage-emulator, fake-gcs-server) is honoured
  with anonymous credentials.

Sources only move bytes. Decompression (``.gz``) and parsing happen in
`tunespec.data.readers`, the same for every source.
"""

from __future__ import annotations

import os
import stat as _stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol, runtime_checkable

from tunespec.diagnostics import Diagnostic, DiagnosticError, Location

# File names a directory or prefix listing picks up as data files.
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz", ".parquet")


@dataclass(frozen=True, slots=True)
class FileStat:
    """What a source knows about a file without reading it.

    digest:   a content hash the store already keeps (e.g. ``md5:...`` of a Cloud Storage
              object), used instead of hashing the bytes; None for local files.
    inode:    the file's inode number (local files; None for remote sources)
    ctime_ns: the inode's change time (local files; None for remote sources). Unlike the
              mtime, no user can set it back, so with the inode it tells a file changed in
              place from an unchanged one (the content hash cache keys on both).
    """

    path: str
    size: int
    mtime_ns: int | None = None
    digest: str | None = None
    inode: int | None = None
    ctime_ns: int | None = None


class NotARegularFile(OSError):
    """A local data path that exists but is not a regular file (a device, a FIFO, a
    socket): never opened, as reading it could block or never end."""


@runtime_checkable
class DataSource(Protocol):
    name: str

    def handles(self, path: str) -> bool:
        """True if this source reads `path` (cheap: look at the scheme, no I/O)."""

    def list(self, path: str) -> list[str]:
        """The data files at `path`: ``[path]`` for a file, the data files under a
        directory or prefix (sorted). Raise `FileNotFoundError` if nothing is there."""

    def stat(self, path: str) -> FileStat | None:
        """Size, modification time and any stored digest of one file; None if missing."""

    def open(self, path: str) -> BinaryIO:
        """A binary stream of the file's raw bytes (still compressed for ``.gz``)."""


def is_data_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(DATA_SUFFIXES)


class LocalSource:
    name = "local"

    def handles(self, path: str) -> bool:
        return "://" not in path or path.startswith("file://")

    @staticmethod
    def _path(path: str) -> Path:
        return Path(path[len("file://") :] if path.startswith("file://") else path)

    def list(self, path: str) -> list[str]:
        p = self._path(path)
        if p.is_dir():
            files = sorted(str(f) for f in p.rglob("*") if f.is_file() and is_data_file(f.name) and not _hidden(f, p))
            if not files:
                raise FileNotFoundError(f"no data files ({', '.join(DATA_SUFFIXES)}) under {p}")
            return files
        if p.is_file():
            return [str(p)]
        if p.exists():
            raise NotARegularFile(f"{p} is {_kind(p)}, not a regular file")
        raise FileNotFoundError(f"{p} does not exist")

    def stat(self, path: str) -> FileStat | None:
        try:
            st = self._path(path).stat()
        except OSError:
            return None
        if _is_dir_mode(st.st_mode):
            return None
        return FileStat(path, st.st_size, st.st_mtime_ns, inode=st.st_ino, ctime_ns=st.st_ctime_ns)

    def open(self, path: str) -> BinaryIO:
        """The file's bytes; refuses anything but a regular file (checked on the open file,
        which is opened without blocking, so a path swapped for a FIFO cannot hang it)."""
        fd = os.open(self._path(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        try:
            st = os.fstat(fd)
            if not _stat.S_ISREG(st.st_mode):
                raise NotARegularFile(f"{path} is not a regular file")
            if hasattr(os, "O_NONBLOCK"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise


def _hidden(f: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in f.relative_to(root).parts)


def _is_dir_mode(mode: int) -> bool:
    return _stat.S_ISDIR(mode)


def _kind(p: Path) -> str:
    from tunespec.data.sniff import non_regular_kind

    try:
        return non_regular_kind(p.stat().st_mode) or "a regular file"
    except OSError:
        return "not readable"


class GCSSource:
    """Cloud Storage objects (``gs://bucket/name``) via google-cloud-storage."""

    name = "gcs"

    def __init__(self) -> None:
        self._client = None
        self._client_for: str | None = None

    def handles(self, path: str) -> bool:
        return path.startswith("gs://")

    @staticmethod
    def split(uri: str) -> tuple[str, str]:
        bucket, _, name = uri[len("gs://") :].partition("/")
        return bucket, name

    def client(self):
        # One client per endpoint: a test (or tool) that points STORAGE_EMULATOR_HOST
        # elsewhere gets a fresh client instead of a stale one.
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST", "")
        if self._client is None or self._client_for != endpoint:
            self._client_for = endpoint
            try:
                from google.cloud import storage  # heavy: imported only when gs:// data is read

                if os.environ.get("STORAGE_EMULATOR_HOST"):
                    from google.auth.credentials import AnonymousCredentials

                    self._client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"), credentials=AnonymousCredentials())
                else:
                    self._client = storage.Client()
            except ImportError as exc:
                raise DiagnosticError(
                    Diagnostic("TS200", f"reading gs:// data needs google-cloud-storage ({exc})", Location(subject="Cloud Storage"), "pip install 'tunespec[vertex]'")
                ) from None
            except Exception as exc:  # DefaultCredentialsError and friends
                raise DiagnosticError(
                    Diagnostic(
                        "TS200",
                        f"cannot connect to Cloud Storage: {exc}",
                        Location(subject="Cloud Storage"),
                        "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
                    )
                ) from None
        return self._client

    def list(self, path: str) -> list[str]:
        bucket, name = self.split(path)
        if name and not name.endswith("/"):
            if self.stat(path) is not None:
                return [path]
            name += "/"
        with _storage_errors(path):
            files = sorted(f"gs://{bucket}/{b.name}" for b in self.client().list_blobs(bucket, prefix=name or None) if is_data_file(b.name))
        if not files:
            raise FileNotFoundError(f"no object {path} and no data files under it")
        return files

    def stat(self, path: str) -> FileStat | None:
        bucket, name = self.split(path)
        if not name:
            return None
        with _storage_errors(path):
            try:
                blob = self.client().bucket(bucket).get_blob(name)
            except FileNotFoundError:  # the bucket itself does not exist
                return None
        if blob is None:
            return None
        mtime = int(blob.updated.timestamp() * 1e9) if blob.updated is not None else None
        # The stored MD5 (or CRC32C for composite objects) identifies the content, and the
        # generation changes on every overwrite: no need to download to fingerprint.
        digest = f"md5:{blob.md5_hash}" if blob.md5_hash else (f"crc32c:{blob.crc32c}:{blob.generation}" if blob.crc32c else None)
        return FileStat(path, blob.size or 0, mtime, digest)

    def open(self, path: str) -> BinaryIO:
        bucket, name = self.split(path)
        with _storage_errors(path):
            return self.client().bucket(bucket).blob(name).open("rb", chunk_size=8 * 1024 * 1024)


@contextmanager
def _storage_errors(path: str) -> Iterator[None]:
    """Cloud Storage errors as tunespec's: a missing bucket is FileNotFoundError, access
    and service errors a TS200 diagnostic (never a traceback)."""
    try:
        yield
    except (DiagnosticError, FileNotFoundError):
        raise
    except Exception as exc:
        from google.api_core import exceptions as gexc  # present whenever the client is

        if isinstance(exc, gexc.NotFound):
            raise FileNotFoundError(f"{path}: {exc.message}") from None
        hint = "check the bucket name and that your account may read it (roles/storage.objectViewer)" if isinstance(exc, gexc.Forbidden) else None
        raise DiagnosticError(Diagnostic("TS200", f"Cloud Storage error for {path}: {exc}", Location(path), hint)) from None


BUILTIN_SOURCES: list[DataSource] = [LocalSource(), GCSSource()]
