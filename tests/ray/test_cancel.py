"""`tunespec cancel` stops an embedded-Ray run that another process drives: the driver
stops training, publishes the run as cancelled and shuts its cluster down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ray_helpers import REPO, write_spec
from tunespec.testing import run_cli

pytestmark = pytest.mark.slow


def test_cancel_stops_an_embedded_ray_run_and_publishes_it(tiny_project, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project, ignore=shutil.ignore_patterns("runs", ".tunespec", "*.yaml"))
    spec = write_spec(project, "  name: ray\n  num_workers: 2\n  num_cpus: 2\n  checkpoint_every_steps: 5", name="ray-cancel",
                      hyper="  max_steps: 5000\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    apply = subprocess.Popen([sys.executable, "-m", "tunespec.cli.main", "apply", str(spec), "--yes", "--output", "json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=project)
    try:
        deadline = time.monotonic() + 300
        while not [c for c in project.glob("runs/ray-cancel/.*.partial/checkpoints/**/checkpoint_*")]:  # Ray Train's first checkpoint
            assert apply.poll() is None, apply.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.5)
        monkeypatch.chdir(project)
        cancelled = run_cli("cancel", "ray-cancel", "--output", "json")
        out, err = apply.communicate(timeout=120)
    finally:
        apply.kill()
    assert cancelled.code == 0 and cancelled.json["stopped"], cancelled.text
    outcome = json.loads(out)["runs"][0]
    assert outcome["action"] == "cancelled" and apply.returncode == 1, err[-2000:]
    assert "SIGTERM received" not in err  # Ray's own handler would have aborted the driver
    manifest = json.loads((project / "runs" / "ray-cancel" / outcome["run"]["run_id"] / "manifest.json").read_text())
    assert manifest["status"] == "cancelled" and manifest["backend"] == "ray"
    assert run_cli("verify", project / "runs" / "ray-cancel" / outcome["run"]["run_id"]).code == 0
