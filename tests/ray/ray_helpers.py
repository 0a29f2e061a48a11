"""Helpers for the ray backend's tests: write a small spec, resolve it like the CLI does."""

from __future__ import annotations

from pathlib import Path

from tunespec.plugins.host import PluginHost
from tunespec.spec.loader import load_documents
from tunespec.spec.schema import validate_document

REPO = Path(__file__).resolve().parents[2]
QUICKSTART_DATA = REPO / "specs" / "quickstart" / "train.jsonl"


def resolve_spec(file: Path):
    """Load and schema-validate one spec file: (ResolvedSpec | None, diagnostics)."""
    documents, problems = load_documents(file)
    assert documents, problems
    spec, problems = validate_document(documents[0], PluginHost())
    return spec, problems


def write_spec(folder: Path, backend: str, *, model: str = "./model", extra: str = "", name: str = "ray-test",
               hyper: str = "", data: str = "train.jsonl") -> Path:
    """A small spec file in `folder` with the given `backend:` block (YAML text, indented 2)."""
    text = f"""\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: {model}
data:
  train: {data}
  max_seq_length: 128
method:
  type: peft
  lora: {{rank: 4, alpha: 8, dropout: 0.0}}
hyperparameters:
  learning_rate: 0.005
  batch_size: 4
  lr_scheduler: constant
  warmup_ratio: 0.0
  seed: 7
{hyper}evaluation:
  compare_base: false
  validation_loss: false
  metrics: []
backend:
{backend}
{extra}"""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path
