"""`validate`, `plan` and `plugins` must stay fast: they never import torch, ray, peft,
transformers or the Google clients. Checked in a fresh interpreter per command, against
what a bare interpreter already has (a namespace .pth puts `google` there at start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "peft", "transformers", "accelerate", "google", "grpc", "pyarrow", "numpy",
         "mlflow", "wandb", "tensorboard", "tensorboardX", "sqlalchemy")

PROBE = """
import json, sys
baseline = set(sys.modules)
from tunespec.cli.main import main
code = main(sys.argv[1:])
new = sorted(m for m in set(sys.modules) - baseline if m.split('.')[0] in %r)
print("@@" + json.dumps({"code": code, "heavy": new}))
""" % (HEAVY,)


def _example_specs() -> list[Path]:
    """Every example spec whose data is local (reading gs:// data needs the storage client)."""
    from tunespec.pipeline import find_spec_files

    specs = []
    for path in find_spec_files([REPO / "specs"])[0]:
        if "gs://" not in path.read_text().split("data:", 1)[-1].split("backend:", 1)[0]:
            specs.append(path)
    return specs


# The Vertex examples read their project and bucket from the environment, as users run them.
EXAMPLE_ENV = {"GOOGLE_CLOUD_PROJECT": "tunespec-example", "TUNESPEC_VERTEX_BUCKET": "gs://tunespec-example-staging"}


def run_probe(*argv: str) -> dict:
    env = {**os.environ, **EXAMPLE_ENV}
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("@@"))
    return json.loads(line[2:])


def test_there_are_example_specs_for_each_builtin_backend():
    backends = {p.relative_to(REPO / "specs").parts[0] for p in _example_specs()}
    assert {"quickstart", "ray", "vertex"} <= backends


@pytest.fixture(scope="session")
def example_models() -> None:
    """Examples whose base model is assembled by their own build_model.py (the multimodal
    ones: no such model downloads here) get it built once, as their README says to.
    Validate and plan read only the model's config and processor, so an encoder that the
    script would pretrain for minutes is left untrained here."""
    for script in sorted((REPO / "specs").glob("*/build_model.py")):
        if not (script.parent / "model" / "config.json").is_file():
            quick = ["--pretrain-steps", "0"] if "--pretrain-steps" in script.read_text() else []
            subprocess.run([sys.executable, str(script), *quick], check=True, cwd=REPO, capture_output=True, timeout=600)


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("spec", _example_specs(), ids=lambda p: str(p.relative_to(REPO / "specs")))
def test_validate_and_plan_import_nothing_heavy(command, spec, tmp_path, example_models):
    # A spec built on another (`base: run:<spec>`) is checked with its folder, as users run
    # a chain: alone, with no run of its upstream recorded, it is rightly TS125.
    target = spec.parent if "base: run:" in spec.read_text() else spec
    result = run_probe(command, str(target), "--output", "json", "--state", str(tmp_path / "state.db"))
    assert result["code"] in (0, 2), f"{command} {spec} failed"
    assert result["heavy"] == []


def test_plugins_imports_nothing_heavy():
    result = run_probe("plugins", "--output", "json")
    assert result["code"] == 0 and result["heavy"] == []


def test_a_spec_with_trackers_validates_and_plans_without_their_libraries(tmp_path):
    """mlflow, wandb and tensorboard are imported when a run is sent, never to check a spec."""
    spec = tmp_path / "tracked.yaml"
    spec.write_text((REPO / "specs" / "vertex" / "text.yaml").read_text().replace("data/text-", str(REPO / "specs" / "vertex" / "data" / "text-"))
                    + "tracking:\n  - mlflow\n  - {name: wandb, mode: offline}\n  - tensorboard\n")
    for command in ("validate", "plan"):
        result = run_probe(command, str(spec), "--output", "json", "--state", str(tmp_path / "state.db"))
        assert result["code"] in (0, 2) and result["heavy"] == []
