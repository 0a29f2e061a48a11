"""RunDirectory: how a run's files become visible all at once, or not at all.

A run is written into a hidden staging folder beside its final place,
``<root>/<spec>/.<run_id>.partial/``. The staging folder survives a crash, so checkpoints
written there let an interrupted run resume. `finalize` writes `spec.yaml`, then
`manifest.json` listing every file with size and sha256, then renames the folder to
``<root>/<spec>/<run_id>/``: readers either see a complete run or none.

Before the manifest is written, every text file of the run is scrubbed of interpolated
`${env:...}` values (`tunespec.secrets`): libraries write files tunespec does not control
(peft's `adapter_config.json` and `README.md` record the base model's resolved path), and
none of them may carry a secret into a published run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import orjson

from tunespec import secrets
from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest, OutputFile

CHUNK = 1 << 20


class RunDirectory:
    def __init__(self, root: str | Path, spec_name: str, run_id: str):
        self.root = Path(root)
        self.spec_name = spec_name
        self.run_id = run_id
        self.final_path = self.root / spec_name / run_id
        self.path = self.root / spec_name / f".{run_id}.partial"

    @classmethod
    def staged_at(cls, path: str | Path, spec_name: str, run_id: str) -> "RunDirectory":
        """A run whose staging folder is `path` itself (what `tunespec run-job --run-dir`
        writes into, on the machine that runs the job)."""
        run_dir = cls(Path(path).parent, spec_name, run_id)
        run_dir.path = Path(path)
        return run_dir

    def create(self) -> "RunDirectory":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def is_final(self) -> bool:
        return (self.final_path / MANIFEST_FILE).is_file()

    def finalize(self, manifest: Manifest, spec_yaml: str) -> Path:
        """Write spec.yaml and manifest.json and publish the run with one rename."""
        _write_atomic(self.path / "spec.yaml", spec_yaml.encode())
        scrub_secrets(self.path)
        manifest = manifest.model_copy(update={"files": list(hash_tree(self.path))})
        _write_atomic(self.path / MANIFEST_FILE, manifest_bytes(manifest))
        if self.final_path.exists():  # a previous finalize of this same run crashed after renaming? keep the new one
            shutil.rmtree(self.final_path)
        os.replace(self.path, self.final_path)
        return self.final_path


# Files larger than this are weights or data, not text a library wrote a path into.
SCRUB_MAX_BYTES = 16 << 20


def scrub_secrets(folder: Path) -> None:
    """Replace interpolated values by their references in every text file under `folder`
    (UTF-8 files up to SCRUB_MAX_BYTES; binary files are left as they are)."""
    if not secrets.known():
        return
    for file in folder.rglob("*"):
        if not file.is_file() or file.is_symlink() or file.stat().st_size > SCRUB_MAX_BYTES:
            continue
        data = file.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        clean = secrets.redact_bytes(data)
        if clean != data:
            _write_atomic(file, clean)


def output_root_problem(root: str) -> str | None:
    """Why runs cannot be written under the local folder `root`, or None. Looks only
    (creates nothing): the nearest existing folder on the way must be a writable folder
    on a writable file system. Remote roots (`gs://`) are checked when written."""
    if "://" in root:
        return None
    probe = Path(root)
    while not probe.exists():
        if probe.is_symlink():
            return f"{probe} is a broken symbolic link"
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return "it is a file, not a folder" if probe == Path(root) else f"{probe} is a file, not a folder"
    if os.statvfs(probe).f_flag & os.ST_RDONLY:
        return f"{probe} is on a read-only file system"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def manifest_bytes(manifest: Manifest) -> bytes:
    return orjson.dumps(manifest.model_dump(mode="json"), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def hash_tree(folder: Path) -> Iterator[OutputFile]:
    """Every file under `folder` except the manifest, sorted, with size and sha256."""
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if rel == MANIFEST_FILE:
            continue
        yield OutputFile(path=rel, size=file.stat().st_size, sha256=sha256_file(file))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step or epoch, flushed as it is written.

    On resume, `truncate_after(step)` drops lines logged after the checkpoint the run
    resumes from, so the log has each step once.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "ab") as f:
            f.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_bytes().splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:  # a line cut by a crash
                continue
        return out

    def truncate_after(self, step: int) -> None:
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        _write_atomic(self.path, b"".join(orjson.dumps(r) + b"\n" for r in kept))
