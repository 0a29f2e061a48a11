"""Staging: local datasets and media become objects in the staging bucket, each uploaded once.

A split with local sources (or several sources, or a non-Gemini format) is streamed through
tunespec's data layer, converted to Gemini JSONL, and stored under its content hash:
`gs://BUCKET/PREFIX/datasets/<sha256>.jsonl`. Media files referenced by a local path are
stored as `.../media/<sha256><ext>` and the references rewritten to those URIs. An object
that already exists is not uploaded again, so an unchanged dataset is never sent twice,
and a retried apply reuses what an earlier attempt uploaded.

Media are staged in a first pass over the split: every distinct local file is hashed, the
bucket's media folder is listed once (not one existence check per file), and the missing
files are uploaded by a pool of threads. A multimodal dataset has up to hundreds of
thousands of files, and one request after another would take hours.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from tunespec import Diagnostic, DiagnosticError, Progress, ResolvedSpec
from tunespec.artifacts import sha256_file
from tunespec.data import Conversation, iter_conversations, write_gemini_jsonl

from tunespec_vertex.clients import call, retry_policy
from tunespec_vertex.compile import staged_dataset_uri
from tunespec_vertex.config import VertexConfig

CHUNK = 8 << 20  # resumable upload chunk: progress moves per chunk
UPLOAD_THREADS = 8


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
    """Uploads into one staging bucket, remembering what it staged this run."""

    def __init__(self, storage: Any, config: VertexConfig, spec: ResolvedSpec, progress: Progress, max_file_bytes: int | None = None):
        self.config = config
        self.spec = spec
        self.progress = progress
        self.max_file_bytes = max_file_bytes
        bucket, self.prefix = config.bucket_and_prefix
        self.bucket = storage.bucket(bucket)
        self._media: dict[Path, str] = {}  # local file -> gs:// URI of its copy
        self._located: dict[tuple[str, str], Path] = {}  # (reference, data file) -> local file
        self.uploaded: list[str] = []
        self.reused: list[str] = []

    def object_name(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket.name}/{name}"

    # -- datasets --------------------------------------------------------------------------
    def stage_split(self, split: str) -> str:
        """Convert a split to Gemini JSONL, upload it under its hash, return its gs:// URI."""
        self.stage_media(split)
        with tempfile.TemporaryDirectory(prefix="tunespec-vertex-") as tmp:
            path = Path(tmp) / f"{split}.jsonl"
            with open(path, "wb") as out:
                write_gemini_jsonl(iter_conversations(self.spec, split), out, map_uri=self.map_uri)  # type: ignore[arg-type]
            self.check_size(path, split)
            name = staged_dataset_uri(self.config, sha256_file(path))[len(self.uri("")) :]
            blob = self.bucket.blob(name, chunk_size=CHUNK)
            if call(f"check {self.uri(name)}", lambda: blob.exists(retry=retry_policy())):
                self.reused.append(self.uri(name))
                self.progress.log(f"{split} dataset: already staged at {self.uri(name)}")
            else:
                self.upload(path, blob, "application/jsonl", f"upload {split} dataset")
                self.progress.log(f"{split} dataset: uploaded {path.stat().st_size:,} bytes to {self.uri(name)}")
            return self.uri(name)

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
        return self._media[self.locate(uri, conv.file)] if _is_local(uri) else uri

    # -- media -----------------------------------------------------------------------------
    def stage_media(self, split: str) -> None:
        """Upload every local file the split references that the bucket does not hold yet."""
        files = {
            self.locate(part.uri, conv.file)
            for conv in iter_conversations(self.spec, split)  # type: ignore[arg-type]
            for _, part in conv.parts()
            if part.kind == "file" and part.uri and _is_local(part.uri)
        } - self._media.keys()
        if not files:
            return
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            names = dict(zip(files, pool.map(self.media_name, files)))
            prefix = self.object_name("media") + "/"
            existing = call(f"list {self.uri(prefix)}", lambda: {
                b.name for b in self.bucket.list_blobs(prefix=prefix, fields="items(name),nextPageToken", retry=retry_policy())
            })
            missing = sorted(f for f in files if names[f] not in existing)
            self.reused.extend(self.uri(names[f]) for f in files if names[f] in existing)
            total = sum(f.stat().st_size for f in missing)
            with self.progress.task(f"upload {len(missing)} media files", total=total) as task:
                for _ in pool.map(lambda f: self.upload(f, self.bucket.blob(names[f]), _mime(f), task=task), missing):
                    pass
        if missing:
            self.progress.log(f"media: uploaded {len(missing):,} files ({total:,} bytes) to {self.uri(prefix)}")
        if len(files) > len(missing):
            self.progress.log(f"media: {len(files) - len(missing):,} files already staged")
        self._media.update({f: self.uri(names[f]) for f in files})

    def media_name(self, local: Path) -> str:
        return self.object_name("media", sha256_file(local) + local.suffix.lower())

    def locate(self, uri: str, data_file: str | None) -> Path:
        """A local reference, relative to its data file's folder, else to the spec's."""
        key = (uri, str(Path(data_file).parent) if data_file else "")
        if key not in self._located:
            self._located[key] = self._find(uri, data_file)
        return self._located[key]

    def _find(self, uri: str, data_file: str | None) -> Path:
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

    # -- one upload --------------------------------------------------------------------------
    def upload(self, local: Path, blob: Any, content_type: str, label: str = "", task: Any = None) -> None:
        """Upload one file (never overwriting: names are content hashes, so immutable)."""
        from google.api_core.exceptions import PreconditionFailed

        size = local.stat().st_size

        def send(progress_task: Any) -> None:
            with open(local, "rb") as raw:
                try:
                    blob.upload_from_file(_Counting(raw, progress_task), size=size, content_type=content_type,
                                          if_generation_match=0, retry=retry_policy())
                except PreconditionFailed:  # uploaded meanwhile by a concurrent apply: same bytes
                    pass

        if task is not None:
            call(f"upload {self.uri(blob.name)}", lambda: send(task))
        else:
            with self.progress.task(label, total=size) as own:
                call(f"upload {self.uri(blob.name)}", lambda: send(own))
        self.uploaded.append(self.uri(blob.name))


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")
