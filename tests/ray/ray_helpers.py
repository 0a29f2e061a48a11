"""Helpers for the ray backend's tests: write a small spec, resolve it like the CLI does,
run the CLI in-process, read a run folder."""

from __future__ import annotations

import json
from pathlib import Path

from tunespec.plugins.host import PluginHost
from tunespec.spec.loader import load_documents
from tunespec.spec.schema import validate_document

REPO = Path(__file__).resolve().parents[2]
QUICKSTART_DATA = REPO / "specs" / "quickstart" / "train.jsonl"

NO_EVALUATION = "evaluation:\n  compare_base: false\n  validation_loss: false\n  metrics: []\n"


def resolve_spec(file: Path):
    """Load and schema-validate one spec file: (ResolvedSpec | None, diagnostics)."""
    documents, problems = load_documents(file)
    assert documents, problems
    spec, problems = validate_document(documents[0], PluginHost())
    return spec, problems


def write_spec(folder: Path, backend: str, *, model: str = "./model", extra: str = "", name: str = "ray-test",
               hyper: str = "", data: str = "train.jsonl", validation: str | None = None,
               evaluation: str = NO_EVALUATION) -> Path:
    """A small LoRA spec file in `folder` with the given `backend:` block (YAML, indented 2)."""
    validation_line = f"  validation: {validation}\n" if validation else ""
    text = f"""\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: {model}
data:
  train: {data}
{validation_line}  max_seq_length: 128
method:
  type: peft
  lora: {{rank: 4, alpha: 8, dropout: 0.0}}
hyperparameters:
  learning_rate: 0.005
  batch_size: 4
  lr_scheduler: constant
  warmup_ratio: 0.0
  seed: 7
{hyper}{evaluation}backend:
{backend}
{extra}"""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def apply(spec_file: Path) -> int:
    """`tunespec apply <spec> --yes`, in this process (so it reuses the session's Ray cluster)."""
    from tunespec.cli.main import main

    return main(["apply", str(spec_file), "--yes", "--state", str(spec_file.parent / ".tunespec" / "state.db")])


def only_run(spec_file: Path, name: str) -> Path:
    """The one published run folder of spec `name` beside `spec_file`."""
    runs = [p for p in (spec_file.parent / "runs" / name).iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


def losses(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
