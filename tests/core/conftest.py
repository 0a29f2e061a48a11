"""Fixtures for core tests: the echo test backend, a project folder, and a CLI runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tunespec.testing import run_cli
from tunespec.plugins.host import reset_plugin_host

HERE = Path(__file__).parent
TRAIN = HERE / "invalid_specs" / "data" / "train.jsonl"

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: tiny-model
data:
  train: data/train.jsonl
hyperparameters:
  epochs: {epochs}
backend:
  name: echo
{backend_extra}"""


@pytest.fixture(autouse=True)
def echo_backend(monkeypatch):
    """Every core test sees the echo backend, loaded the way a plugin author loads theirs."""
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin")
    reset_plugin_host()
    yield
    reset_plugin_host()


@pytest.fixture
def cli():
    """`cli("plan", spec, "--output", "json")` runs the CLI in-process (the kit's `run_cli`):
    code, out, err, json; a traceback fails the test."""
    return run_cli


@pytest.fixture
def project(tmp_path):
    """A folder with training data; `project.spec(...)` writes a spec into it."""

    class Project:
        root = tmp_path

        def spec(self, name: str = "echo-job", epochs: int = 2, backend_extra: str = "", file: str = "spec.yaml") -> Path:
            path = tmp_path / file
            path.write_text(SPEC.format(name=name, epochs=epochs, backend_extra=backend_extra))
            return path

    (tmp_path / "data").mkdir()
    shutil.copy(TRAIN, tmp_path / "data" / "train.jsonl")
    return Project()
