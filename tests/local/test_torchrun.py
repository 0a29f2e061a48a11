"""`torchrun -m tunespec run-job`: the local trainer joins the process group torchrun sets
up (what a Kubeflow PyTorchJob or a multi-GPU machine runs). Two CPU processes over gloo
train the same steps on the same data as one process, and rank 0 writes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.local.conftest import subprocess_env

pytestmark = pytest.mark.slow


def _losses(run_dir) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_torchrun_processes_train_like_one(project, tmp_path, cli):
    spec = project.spec(steps=6, checkpoint_every=3)
    env = {**subprocess_env(tmp_path), "OMP_NUM_THREADS": "1"}
    together = tmp_path / "runs" / ".two.partial"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
         "-m", "tunespec", "run-job", str(spec), "--run-dir", str(together)],
        capture_output=True, text=True, env=env, cwd=project.root, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((together / "result.json").read_text())
    assert result["status"] == "succeeded" and result["metrics"]["steps"] == 6
    assert (together / "adapter" / "adapter_config.json").is_file()
    assert result["evaluation"]["tuned"]["examples"] == 6  # rank 0 evaluated, once

    alone = tmp_path / "runs" / ".one.partial"
    code, output = cli("run-job", spec, "--run-dir", alone)
    assert code == 0, output
    # The data order depends only on the seed, never on the number of processes: the same
    # global batches, so the same losses (up to floating-point reduction order).
    assert _losses(together) == pytest.approx(_losses(alone), rel=1e-3, abs=1e-4)
