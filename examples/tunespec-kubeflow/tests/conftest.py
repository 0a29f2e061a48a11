"""Fixtures: a fake cluster behind `kubectl` on PATH, and a project folder with a spec."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from tunespec.testing import SECRET_ENV, TRAIN_RECORDS

HERE = Path(__file__).parent


def install_fake_kubectl(folder: Path) -> dict[str, str]:
    """Put a `kubectl` backed by fake_kubectl.py first on PATH; returns the env to use."""
    bin_dir, cluster = folder / "bin", folder / "cluster"
    bin_dir.mkdir(parents=True, exist_ok=True)
    cluster.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(HERE)!r})\nimport fake_kubectl\nsys.exit(fake_kubectl.main(sys.argv[1:]))\n")
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_KUBE_DIR": str(cluster)}


@pytest.fixture
def cluster(tmp_path, monkeypatch) -> Path:
    """A fake cluster reachable through kubectl for this test; returns its folder."""
    for name, value in install_fake_kubectl(tmp_path / "kube").items():
        monkeypatch.setenv(name, value)
    return tmp_path / "kube" / "cluster"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A spec folder with data; `project.spec(**backend_options)` writes spec.yaml."""
    from tunespec.plugins.host import LOAD_ENV, PluginHost, reset_plugin_host

    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN_RECORDS))
    monkeypatch.setenv(SECRET_ENV, "s3cret-value-for-tests")
    monkeypatch.delenv("TUNESPEC_STATE", raising=False)
    if "kubeflow" not in PluginHost().backends():  # not pip-installed: load it from source
        monkeypatch.setenv(LOAD_ENV, "tunespec_kubeflow.plugin")
    reset_plugin_host()

    class Project:
        path = root
        state = root / ".tunespec" / "state.db"

        def spec(self, **options) -> Path:
            spec = {
                "apiVersion": "tunespec.dev/v1",
                "kind": "TuningJob",
                "metadata": {"name": "triage", "labels": {"team": "ml", "token": "${env:" + SECRET_ENV + "}"}},
                "model": {"base": "HuggingFaceTB/SmolLM2-135M-Instruct"},
                "data": {"train": "data/train.jsonl"},
                "backend": {"name": "kubeflow", "image": "registry.example.com/ml/tunespec:0.1",
                            "secret_env": {SECRET_ENV: {"secret": "triage", "key": "token"}}, **options},
            }
            path = root / "spec.yaml"
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            return path

    yield Project()
    reset_plugin_host()
