"""Fixtures for the data layer: specs built directly as ResolvedSpec objects, data files
written into tmp_path, and a real Cloud Storage emulator for gs:// sources."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from tunespec.diagnostics import Diagnostics
from tunespec.spec.model import TuningJob
from tunespec.spec.resolve import ResolvedSpec


class NoOptions(BaseModel):
    """Stands in for a backend's config model: the data layer never reads it."""


def make_spec(base_dir: Path, train: Any, validation: Any = None, hyperparameters: dict | None = None, method: dict | None = None,
              **data: Any) -> ResolvedSpec:
    """A ResolvedSpec whose file lives in `base_dir`, so relative data paths resolve there."""
    doc: dict[str, Any] = {
        "apiVersion": "tunespec.dev/v1",
        "kind": "TuningJob",
        "metadata": {"name": "data-test"},
        "model": {"base": "tiny"},
        "data": {"train": train, **({"validation": validation} if validation is not None else {}), **data},
        "hyperparameters": hyperparameters or {},
        "method": method or {},
        "backend": {"name": "local"},
    }
    return ResolvedSpec(job=TuningJob.model_validate(doc), config=NoOptions(), file=base_dir / "spec.yaml", document=0)


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def gemini(*turns: tuple[str, str], system: str | None = None) -> dict:
    record: dict[str, Any] = {"contents": [{"role": role, "parts": [{"text": text}]} for role, text in turns]}
    if system is not None:
        record["systemInstruction"] = {"parts": [{"text": system}]}
    return record


def openai(*turns: tuple[str, str]) -> dict:
    return {"messages": [{"role": role, "content": text} for role, text in turns]}


@pytest.fixture
def diagnostics() -> Diagnostics:
    return Diagnostics(max_per_code=50)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _gcs_emulator_host():
    """A gcp-storage-emulator process (in memory), started once for the session."""
    port = _free_port()
    exe = Path(sys.executable).parent / "gcp-storage-emulator"
    proc = subprocess.Popen(
        [str(exe), "start", "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("gcp-storage-emulator did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def gcs_emulator(_gcs_emulator_host, monkeypatch):
    """A google-cloud-storage Client on the emulator, with anonymous credentials;
    STORAGE_EMULATOR_HOST points tunespec's gs:// source there for this test only."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", _gcs_emulator_host)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())
