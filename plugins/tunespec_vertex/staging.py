"""Staging: local datasets and media become objects in the staging bucket, each uploaded once.

A split with local sources (or several sources, or a non-Gemini format) is streamed through
tunespec's data layer, converted to Gemini JSONL, and stored under its content hash:
`gs://BUCKET/PREFIX/datasets/<sha256>.jsonl`. Media files referenced by a local path are
uploaded to `.../media/<sha256><ext>` and the references rewritten to those URIs. An
object that already exists is not uploaded again, so an unchanged dataset is never sent
twice, and a retried apply reuses what an earlier attempt uploaded.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from tunespec import Diagnostic, DiagnosticError, Progress, ResolvedSpec
from tunespec.artifacts import sha256_file
from tunespec.data import Conversation, iter_conversations, write_gemini_jsonl

from tunespec_vertex.clients import call, retry_policy
from tunespec_vertex.compile import staged_dataset_uri
from tunespec_vertex.config import VertexConfig

CHUNK = 8 << 20  # resumable upload chunk: progress moves per chunk


class _Counting:
    """A read-only file wrapper that moves a progress task as the upload reads it."""

    def __init__(self, raw: BinaryIO, task: Any):
        self._raw, self._task = raw, task

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._task.advance(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class Stager:
    """Uploads into one staging bucket, remembering what it already checked this run."""

    def __init__(self, storage: Any, config: VertexConfig, spec: ResolvedSpec, progress: Progress, max_file_bytes: int | None = None):
        self.config = config
        self.max_file_bytes = max_file_bytes
        self.spec = spec
        self.progress = progress
        bucket, self.prefix = config.bucket_and_prefix
        self.bucket = storage.bucket(bucket)
        self._media: dict[str, str] = {}  # local path -> gs:// URI
        self.uploaded: list[str] = []
        self.reused: list[str] = []

    def object_name(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def upload(self, local: Path, name: str, content_type: str, label: str) -> str:
        """Upload `local` as `name` unless it already exists; returns its gs:// URI."""
        blob = self.bucket.blob(name, chunk_size=CHUNK)
        uri = f"gs://{self.bucket.name}/{name}"
        if call(f"check {uri}", lambda: blob.exists(retry=retry_policy())):
            self.reused.append(uri)
            self.progress.log(f"{label}: already staged at {uri}")
            return uri
        size = local.stat().st_size
        with self.progress.task(f"upload {label}", total=size) as task, open(local, "rb") as raw:
            # if_generation_match=0: never overwrite (content-addressed names are immutable).
            call(f"upload {uri}", lambda: _upload(blob, _Counting(raw, task), size, content_type))
        self.uploaded.append(uri)
        self.progress.log(f"{label}: uploaded {size:,} bytes to {uri}")
        return uri

    def stage_split(self, split: str) -> str:
        """Convert a split to Gemini JSONL, upload it under its hash, return its gs:// URI."""
        with tempfile.TemporaryDirectory(prefix="tunespec-vertex-") as tmp:
            path = Path(tmp) / f"{split}.jsonl"
            with open(path, "wb") as out:
                write_gemini_jsonl(iter_conversations(self.spec, split), out, map_uri=self.map_uri)  # type: ignore[arg-type]
            self.check_size(path, split)
            digest = sha256_file(path)
            name = staged_dataset_uri(self.config, digest)[len(f"gs://{self.bucket.name}/") :]
            return self.upload(path, name, "application/jsonl", f"{split} dataset")

    def check_size(self, path: Path, split: str) -> None:
        """The converted file must fit the service's limit (Gemini JSONL can outgrow its source)."""
        limit = self.max_file_bytes
        size = path.stat().st_size
        if limit is not None and size > limit:
            raise DiagnosticError(Diagnostic(
                "TS217", f"{split} data converted to Gemini JSONL is {size:,} bytes, over Vertex's {limit:,}-byte limit",
                self.spec.locate(f"data.{split}"), "use fewer or shorter examples, or reference media by URI instead of inlining it",
            ))

    def map_uri(self, uri: str, conv: Conversation) -> str:
        """A local file reference becomes the gs:// URI of its uploaded copy."""
        return self.stage_media(uri, conv.file) if _is_local(uri) else uri

    def stage_media(self, uri: str, data_file: str | None) -> str:
        local = self.local_media_path(uri, data_file)
        key = str(local)
        if key not in self._media:
            digest = sha256_file(local)
            name = self.object_name("media", digest + local.suffix.lower())
            mime_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
            self._media[key] = self.upload(local, name, mime_type, local.name)
        return self._media[key]

    def local_media_path(self, uri: str, data_file: str | None) -> Path:
        """A local reference, relative to its data file's folder, else to the spec's."""
        raw = uri.removeprefix("file://")
        candidates = [Path(raw)] if os.path.isabs(raw) else []
        if not candidates:
            if data_file and "://" not in data_file:
                candidates.append(Path(data_file).parent / raw)
            candidates.append(self.spec.base_dir / raw)
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
        raise DiagnosticError(Diagnostic(
            "TS214", f"referenced file {uri!r} does not exist", self.spec.locate("data"),
            "local paths are relative to the data file or the spec; run `tunespec validate`",
        ))


def _upload(blob: Any, stream: Any, size: int, content_type: str) -> None:
    from google.api_core.exceptions import PreconditionFailed

    try:
        blob.upload_from_file(stream, size=size, content_type=content_type, if_generation_match=0, retry=retry_policy())
    except PreconditionFailed:  # uploaded meanwhile by a concurrent apply: same bytes, same name
        pass


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")

