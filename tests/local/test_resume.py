"""Interrupted runs: SIGKILL and Ctrl-C leave a run that the next `apply` finishes, with
the same steps and the same data order as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local.conftest import PEFT, subprocess_env

pytestmark = pytest.mark.slow

STEPS = 120


def interruptible() -> None:
    """`preexec_fn`: SIGINT at its default in the child whatever this process inherited
    (an ignored SIGINT survives exec, and the child would then ignore Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_apply(spec: Path, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tunespec.cli.main", "apply", str(spec), "--yes"],
        env=subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=interruptible,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"apply exited before the interruption:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def staging(project) -> Path:
    [folder] = (project.root / "runs" / "tiny-job").glob(".*.partial")
    return folder


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def uninterrupted_run(project, cli, tmp_path_factory) -> list[dict]:
    """The same spec and data, run straight through in another folder."""
    import shutil

    other = tmp_path_factory.mktemp("straight")
    for name in ("train.jsonl", "validation.jsonl", "tunespec.yaml"):
        shutil.copy(project.root / name, other / name)
    code, output = cli("apply", other / "tunespec.yaml", "--yes")
    assert code == 0, output
    [run] = [p for p in (other / "runs" / "tiny-job").iterdir() if not p.name.startswith(".")]
    return metrics(run)


def test_sigkill_then_apply_resumes_with_same_steps_and_order(project, cli, tmp_path, tmp_path_factory):
    # LoRA dropout draws from the RNG every step: the resumed steps must draw what the
    # uninterrupted run drew (nothing between the restore and the next step may use it).
    spec = project.spec(steps=STEPS, checkpoint_every=10, method=PEFT.replace("dropout: 0.0", "dropout: 0.1"))
    proc = start_apply(spec, tmp_path)
    try:
        wait_for(lambda: list((project.root / "runs" / "tiny-job").glob(".*.partial/checkpoints/step-*")), proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    checkpoints = sorted((staging(project) / "checkpoints").glob("step-*"))
    assert checkpoints and int(checkpoints[-1].name.split("-")[1]) < STEPS

    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    assert "resum" in output
    [run] = project.runs()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == STEPS
    assert 0 < manifest["metrics"]["resumed_from_step"] < STEPS
    records = metrics(run)
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # each step once, none lost or repeated
    assert cli("verify", run)[0] == 0

    # Same batches in the same order, same RNG: the losses match a run never interrupted.
    straight = uninterrupted_run(project, cli, tmp_path_factory)
    assert [r["train_loss"] for r in records] == pytest.approx([r["train_loss"] for r in straight], rel=1e-4, abs=1e-5)
    # and the cumulative token count carries over the resume
    assert [r["tokens"] for r in records] == [r["tokens"] for r in straight]


def test_ctrl_c_checkpoints_the_last_step_and_apply_finishes(project, cli, tmp_path):
    spec = project.spec(steps=STEPS, checkpoint_every=0)  # no periodic checkpoints: only Ctrl-C saves
    proc = start_apply(spec, tmp_path)
    try:
        wait_for(lambda: any((p / "metrics.jsonl").exists() and len((p / "metrics.jsonl").read_text().splitlines()) >= 3
                             for p in (project.root / "runs" / "tiny-job").glob(".*.partial")), proc)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Traceback" not in output
    [checkpoint] = (staging(project) / "checkpoints").glob("step-*")
    interrupted_at = json.loads((checkpoint / "checkpoint.json").read_text())["step"]
    assert 3 <= interrupted_at < STEPS

    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = project.runs()
    assert json.loads((run / "manifest.json").read_text())["metrics"]["resumed_from_step"] == interrupted_at
    assert [r["step"] for r in metrics(run)] == list(range(1, STEPS + 1))


class _RunsCodeWhenUnpickled:
    """What a tampered checkpoint would hold: unpickling it creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_tampered_checkpoint_is_refused_without_running_its_code(project, cli, tmp_path):
    import torch

    spec = project.spec(steps=STEPS, checkpoint_every=10)
    proc = start_apply(spec, tmp_path)
    try:
        wait_for(lambda: list((project.root / "runs" / "tiny-job").glob(".*.partial/checkpoints/step-*/state.pt")), proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    marker = tmp_path / "code-ran"
    for state in (staging(project) / "checkpoints").glob("step-*/state.pt"):
        torch.save({"step": 10, "model": _RunsCodeWhenUnpickled(marker)}, state)

    code, output = cli("apply", spec, "--yes")
    assert not marker.exists(), "resuming unpickled the checkpoint and ran its code"
    assert code == 1
    assert "TS311" in output and "cannot be loaded safely" in output and "state.pt" in output
    [run] = project.runs()
    assert json.loads((run / "manifest.json").read_text())["status"] == "failed"  # published, with why
    # and applying again starts a clean run instead of the tampered one
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    assert not marker.exists()
