"""Detached runs through the real Ray Jobs API: a head node with its dashboard (`ray start
--head`, in its own processes, apart from the session's embedded cluster), then `tunespec
apply` (submits and returns), `status` (follows the job and publishes the run when it has
succeeded), `verify`, and `cancel` (stops a submitted job)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tunespec.testing import run_cli

from ray_helpers import only_run, write_spec

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
STATUS_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head_node():
    """A 2-CPU Ray head node with the dashboard (the Jobs API server) on free local ports.
    Started with `--block` in its own process group, so teardown stops exactly this cluster
    (a bare `ray stop` would also stop every other Ray on the machine)."""
    temp_dir = tempfile.mkdtemp(prefix="tsrj-")  # short: Ray's socket paths have a length limit
    dashboard_port = _free_port()
    ports = {name: _free_port() for name in ("port", "ray-client-server-port", "node-manager-port",
                                              "object-manager-port", "dashboard-agent-listen-port",
                                              "dashboard-agent-grpc-port", "metrics-export-port",
                                              "runtime-env-agent-port")}
    # The job's entrypoint is `python -m tunespec_ray.remote ...`: as for a user with the venv
    # activated, `python` is this venv's.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    command = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
               "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
               "--temp-dir", temp_dir, "--disable-usage-stats",
               *[arg for name, port in ports.items() for arg in (f"--{name}", str(port))]]
    log = open(Path(temp_dir) / "ray-start.log", "wb")
    head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        _wait_for_dashboard(address, head, Path(temp_dir) / "ray-start.log")
        yield address
    finally:
        _stop(head)
        _reap(temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_dashboard(address: str, head: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"`ray start --head` exited with {head.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the Ray dashboard at {address} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM lets `ray start --block` stop the processes it started; then make sure."""
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait(timeout=10)


def _reap(temp_dir: str, timeout: float = 15) -> None:
    """Ray workers run in sessions of their own and exit a moment after their raylet: wait
    for every process of this cluster (its command line names our temp dir), then kill any
    left by pid."""
    deadline = time.monotonic() + timeout
    while (pids := _cluster_pids(temp_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cluster_pids(temp_dir: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and temp_dir.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def _status(spec: Path, state: Path) -> dict:
    """The spec's latest run as `status -o json` shows it, refreshed from the Ray job. `status`
    exits 1 exactly when that run failed or was cancelled (what CI keys on)."""
    result = run_cli("status", spec, "--state", state, "-o", "json")
    (run,) = json.loads(result.out)["runs"]
    assert result.code == (1 if run["status"] in {"failed", "cancelled"} else 0), result.text
    return run


def _submitted(apply_result) -> dict:
    """The one run `apply -o json` started: its RunResult."""
    assert apply_result.code == 0, apply_result.text
    (outcome,) = json.loads(apply_result.out)["runs"]
    return outcome["result"]


def _wait_for(spec: Path, state: Path, done: set[str]) -> dict:
    deadline = time.monotonic() + STATUS_TIMEOUT_S
    while True:
        run = _status(spec, state)
        if run["status"] in done or time.monotonic() > deadline:
            return run
        time.sleep(2)


def _ray_job_end(address: str, job_id: str, timeout: float = 30) -> str:
    """The Ray job's final state, as the cluster reports it."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = time.monotonic() + timeout
    while not (status := client.get_job_status(job_id)).is_terminal() and time.monotonic() < deadline:
        time.sleep(1)
    return str(status)


def test_a_detached_run_is_submitted_followed_published_and_cancelled(head_node, tiny_project, tmp_path):
    project = tmp_path / "project"  # the folder the job uploads (working_dir): the spec and its data
    shutil.copytree(tiny_project, project, ignore=shutil.ignore_patterns("runs", ".tunespec", "*.yaml"))
    storage = tmp_path / "storage"  # same machine: a local path every node reads
    backend = (f"  name: ray\n  address: {head_node}\n  wait: false\n  num_workers: 1\n"
               f"  storage_path: {storage}")
    spec = write_spec(project, backend, name="ray-jobs", hyper="  max_steps: 2\n")
    state = project / ".tunespec" / "state.db"

    # apply submits and returns at once: the run is running, its remote id is the Ray job's.
    submitted = _submitted(run_cli("apply", spec, "--yes", "--state", state, "-o", "json"))
    assert submitted["status"] == "running", submitted
    job_id = submitted["remote_id"]
    assert job_id.startswith("tunespec-ray-jobs-") and submitted["outputs"]["ray_job"] == job_id, submitted
    assert _status(spec, state)["remote_id"] == job_id

    finished = _wait_for(spec, state, {"succeeded", "failed", "cancelled"})
    assert finished["status"] == "succeeded", finished
    published = only_run(spec, "ray-jobs")
    verified = run_cli("verify", published)
    assert verified.code == 0, verified.text
    manifest = json.loads((published / "manifest.json").read_text())
    assert manifest["backend"] == "ray" and manifest["status"] == "succeeded"
    assert manifest["metrics"]["steps"] == 2
    assert (published / "adapter" / "adapter_config.json").is_file()

    # A second submission, stopped at once: the Ray job ends STOPPED and the run cancelled.
    resubmitted = _submitted(run_cli("apply", spec, "--yes", "--force", "--state", state, "-o", "json"))
    assert resubmitted["status"] == "running" and resubmitted["remote_id"] != job_id, resubmitted
    cancelled = run_cli("cancel", "ray-jobs", "--state", state)
    assert cancelled.code == 0, cancelled.text
    after = _status(spec, state)
    assert after["status"] == "cancelled" and after["remote_id"] == resubmitted["remote_id"], after
    # ...and the job really stopped on the cluster (it would otherwise hold its workers).
    assert _ray_job_end(head_node, resubmitted["remote_id"]) == "STOPPED"
    # The cancelled run is published too, as a complete record with its status (so `runs`
    # never points at a folder that does not exist).
    cancelled_dir = Path(after["run_dir"])
    assert cancelled_dir != published and cancelled_dir.parent == published.parent
    assert json.loads((cancelled_dir / "manifest.json").read_text())["status"] == "cancelled"
    assert run_cli("verify", cancelled_dir).code == 0
