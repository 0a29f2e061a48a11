"""Fixtures for the local backend's tests: a tiny model, a small chat data set, a project
folder with a spec, and a CLI runner. The model is random-initialised (tunespec.testing),
so training runs in seconds; nothing here touches a model hub."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tunespec.cli.main import main
from tunespec.plugins.host import reset_plugin_host

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart"

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: {model}
data:
  train: train.jsonl
  validation: validation.jsonl
  max_seq_length: 256
method:
{method}
hyperparameters:
  max_steps: {steps}
  batch_size: 4
  micro_batch_size: 2
  learning_rate: {lr}
  seed: 7
evaluation:
  metrics: [json_field_match, exact_match, json_valid]
  max_examples: 6
  max_new_tokens: 6
backend:
  name: local
  device: cpu
  num_threads: 1
  checkpoint_every: {checkpoint_every}
{backend_extra}"""

PEFT = "  type: peft\n  lora: {rank: 4, alpha: 8, dropout: 0.0}"
FULL = "  type: full"


def records(path: Path, n: int) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[:n]]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Llama with a tokenizer trained on the quickstart texts (short sequences)."""
    from tunespec.testing import make_tiny_model

    corpus = [m["content"] for r in records(QUICKSTART / "train.jsonl", 200) for m in r["messages"]]
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus=corpus, vocab_size=600)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Model cache in a temp folder; the hub unreachable (as on a CI machine); a fresh
    plugin host so the local plugin is found through its entry point."""
    monkeypatch.setenv("TUNESPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))  # an empty hub cache, whatever this machine has
    reset_plugin_host()
    yield
    reset_plugin_host()


@pytest.fixture
def project(tmp_path, tiny_model):
    """A folder with train/validation data (quickstart subset); `project.spec(...)` writes a spec."""

    class Project:
        root = tmp_path

        def spec(self, name="tiny-job", method=PEFT, steps=6, lr=0.01, checkpoint_every=2, model=None, backend_extra="") -> Path:
            path = tmp_path / "tunespec.yaml"
            path.write_text(SPEC.format(name=name, model=model or tiny_model, method=method, steps=steps, lr=lr,
                                        checkpoint_every=checkpoint_every, backend_extra=backend_extra))
            return path

        def runs(self, name="tiny-job") -> list[Path]:
            folder = tmp_path / "runs" / name
            return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []

    for split, n in (("train", 32), ("validation", 6)):
        (tmp_path / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records(QUICKSTART / f"{split}.jsonl", n))
        )
    return Project()


@pytest.fixture
def cli(capsys):
    def run(*argv) -> tuple[int, str]:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        output = captured.out + captured.err
        assert "Traceback" not in output
        return code, output

    return run


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TUNESPEC_CACHE_DIR"] = str(tmp_path / "cache")
    env["HF_HUB_OFFLINE"] = "1"
    return env
