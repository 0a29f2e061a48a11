"""Fixtures for the Vertex backend tests: emulated services, real clients.

- `tuning`: the tuning-service emulator (tests/vertex/emulator.py) on a free port, with
  TUNESPEC_VERTEX_API_ENDPOINT and TUNESPEC_VERTEX_ANONYMOUS=1 pointing the backend at it.
- `gcs`: `gcp-storage-emulator` (one process per session, in memory) with
  STORAGE_EMULATOR_HOST set, and a fresh bucket per test.
- `project`: a temporary copy of specs/vertex (the example specs and their data) with the
  environment they interpolate, and helpers to write specs and check them.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.vertex.emulator import TuningEmulator
from tunespec.plugins.host import plugin_host, reset_plugin_host

EXAMPLES = Path(__file__).resolve().parents[2] / "specs" / "vertex"
PROJECT_ID = "test-project"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def storage_emulator() -> Any:
    port = _free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    proc = subprocess.Popen(
        [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    host = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("gcp-storage-emulator did not start")
    yield host
    proc.terminate()
    proc.wait(timeout=10)


@dataclass
class GCS:
    host: str
    bucket: str
    client: Any

    def names(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client.bucket(self.bucket).list_blobs(prefix=prefix))

    def read(self, name: str) -> bytes:
        return self.client.bucket(self.bucket).blob(name).download_as_bytes()


@pytest.fixture
def gcs(storage_emulator, monkeypatch) -> GCS:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage_emulator)
    client = storage.Client(project=PROJECT_ID, credentials=AnonymousCredentials())
    bucket = f"stage-{uuid.uuid4().hex[:12]}"
    client.create_bucket(bucket)
    return GCS(storage_emulator, bucket, client)


@pytest.fixture
def tuning(monkeypatch) -> Any:
    emulator = TuningEmulator().start()
    monkeypatch.setenv("TUNESPEC_VERTEX_API_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("TUNESPEC_VERTEX_ANONYMOUS", "1")
    yield emulator
    emulator.stop()


@dataclass
class Project:
    root: Path

    def spec(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def example(self, modality: str) -> Path:
        return self.root / f"{modality}.yaml"

    def load(self, path: Path) -> Any:
        """The ResolvedSpec of a one-document spec file (asserts it loads cleanly)."""
        from tunespec.pipeline import load_specs

        specs, problems = load_specs([path], plugin_host())
        assert not [p for p in problems if p.is_error], [str(p) for p in problems]
        assert len(specs) == 1
        return specs[0]

    def check(self, path: Path) -> Any:
        """Everything `tunespec plan` does for one spec: data validation, backend checks, plan."""
        from tunespec.pipeline import check_spec
        from tunespec.progress import Progress

        return check_spec(self.load(path), plugin_host(), None, Progress(enabled=False))


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    root = tmp_path / "specs"
    shutil.copytree(EXAMPLES, root)
    for example in root.glob("*.yaml"):  # poll the emulator quickly
        example.write_text(re.sub(r"(\n  staging_bucket: .*\n)", r"\1  poll_interval: 0.05\n", example.read_text()))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT_ID)
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", "gs://placeholder-bucket/tunespec")
    monkeypatch.setenv("TUNESPEC_VERTEX_OUTPUT", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    reset_plugin_host()
    yield Project(root)
    reset_plugin_host()


@pytest.fixture
def cli():
    """The CLI in-process (the kit's `run_cli`): code, out, err, json; a traceback fails the test."""
    from tunespec.testing import run_cli

    return run_cli


SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: {base}
data:
  modality: {modality}
  train: data/text-train.jsonl
  max_seq_length: 131072
{extra}backend:
  name: vertex
  project: test-project
  location: {location}
  staging_bucket: gs://placeholder-bucket/tunespec
{backend}"""


def spec_text(name: str = "catalog-check", base: str = "gemini-2.5-flash", modality: str = "text", location: str = "us-central1",
              extra: str = "", backend: str = "") -> str:
    """A small Vertex spec; `extra` adds top-level blocks, `backend` adds backend options (2-space indented)."""
    return SPEC.format(name=name, base=base, modality=modality, location=location, extra=extra, backend=backend)


