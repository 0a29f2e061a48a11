"""RunDirectory: how a run's files become visible all at once, or not at all.

A run is written into a hidden staging folder beside its final place,
``<root>/<spec>/.<run_id>.partial/``. The staging folder survives a crash, so checkpoints
written there let an interrupted run resume. `finalize` writes `spec.yaml`, then
`manifest.json` listing every file with size and sha256, then renames the folder to
``<root>/<spec>/<run_id>/``: readers either see a complete run or none.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import orjson

from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest, OutputFile

CHUNK = 1 << 20


class RunDirectory:
    def __init__(self, root: str | Path, spec_name: str, run_id: str):
        self.root = Path(root)
        self.spec_name = spec_name
        self.run_id = run_id
        self.final_path = self.root / spec_name / run_id
        self.path = self.root / spec_name / f".{run_id}.partial"

    def create(self) -> "RunDirectory":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def is_final(self) -> bool:
        return (self.final_path / MANIFEST_FILE).is_file()

    def finalize(self, manifest: Manifest, spec_yaml: str) -> Path:
        """Write spec.yaml and manifest.json and publish the run with one rename."""
        _write_atomic(self.path / "spec.yaml", spec_yaml.encode())
        manifest = manifest.model_copy(update={"files": list(hash_tree(self.path))})
        _write_atomic(self.path / MANIFEST_FILE, manifest_bytes(manifest))
        if self.final_path.exists():  # a previous finalize of this same run crashed after renaming? keep the new one
            shutil.rmtree(self.final_path)
        os.replace(self.path, self.final_path)
        return self.final_path


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
