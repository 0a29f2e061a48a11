"""`tunespec run-job`: the remote side of a remote backend. It runs one spec into the run
folder it is given, resolves `${env:...}` from the job's environment (what is shipped must
run), and leaves no interpolated value in what it writes (what is stored keeps references)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_run_job_runs_a_spec_into_the_given_folder(cli, project, tmp_path):
    spec = project.spec(backend_extra="  steps: 4\n")
    run_dir = tmp_path / "somewhere" / ".run-42.partial"
    result = cli("run-job", spec, "--run-dir", run_dir, "--output", "json")
    assert result.code == 0, result.text
    assert result.json["result"]["status"] == "succeeded"
    assert (run_dir / "steps.txt").read_text().splitlines() == [f"step {i}" for i in range(1, 5)]
    stored = json.loads((run_dir / "result.json").read_text())
    assert stored["status"] == "succeeded" and stored["metrics"]["steps"] == 4
    assert not (project.root / ".tunespec").exists(), "run-job keeps no state: the side that started the job owns the run"


def test_run_job_resumes_what_the_folder_holds(cli, project, tmp_path):
    spec = project.spec(backend_extra="  steps: 5\n")
    run_dir = tmp_path / ".run-43.partial"
    run_dir.mkdir()
    (run_dir / "steps.txt").write_text("step 1\nstep 2\n")  # a pod that was restarted
    result = cli("run-job", spec, "--run-dir", run_dir, "--output", "json")
    assert result.json["result"]["metrics"]["resumed_from"] == 2


def test_what_is_shipped_runs_and_what_is_stored_keeps_references(project, tmp_path):
    """The job gets the spec with references and their values as environment variables (a
    Kubernetes Secret, a Ray runtime_env): the values are used, and appear in no file."""
    secret_dir = tmp_path / "marker-dir-5e1d"
    secret_dir.mkdir()
    spec = project.spec(backend_extra="  marker: ${env:TS_JOB_MARKER_DIR}/started\n")
    spec.write_text(spec.read_text().replace("name: echo-job", "name: echo-job\n  description: token ${env:TS_JOB_TOKEN}"))
    run_dir = tmp_path / ".run-44.partial"
    env = {**os.environ, "TUNESPEC_PLUGINS": "tests.core.echo_plugin", "PYTHONPATH": str(REPO),
           "TS_JOB_MARKER_DIR": str(secret_dir), "TS_JOB_TOKEN": "token-value-77aa"}
    done = subprocess.run([sys.executable, "-m", "tunespec", "run-job", str(spec), "--run-dir", str(run_dir), "--output", "json"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert (secret_dir / "started").is_file(), "the shipped reference was resolved where the job runs"
    for file in run_dir.rglob("*"):
        assert b"token-value-77aa" not in file.read_bytes() and b"marker-dir-5e1d" not in file.read_bytes(), file
    assert "token-value-77aa" not in done.stdout + done.stderr and "marker-dir-5e1d" not in done.stdout + done.stderr

    unset = {k: v for k, v in env.items() if k != "TS_JOB_TOKEN"}
    missing = subprocess.run([sys.executable, "-m", "tunespec", "run-job", str(spec), "--run-dir", str(run_dir), "--output", "json"],
                             capture_output=True, text=True, env=unset)
    assert missing.returncode == 1
    assert [d["code"] for d in json.loads(missing.stdout)["diagnostics"]] == ["TS106"]


def test_run_job_refuses_a_backend_that_runs_elsewhere(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", "gs://bucket/staging")
    monkeypatch.delenv("TUNESPEC_PLUGINS")
    from tunespec.plugins.host import reset_plugin_host

    reset_plugin_host()
    result = cli("run-job", REPO / "specs" / "vertex" / "text.yaml", "--run-dir", tmp_path / ".x.partial", "--output", "json")
    assert result.code == 1
    [problem] = result.json["diagnostics"]
    assert problem["code"] == "TS302" and "starts remote jobs" in problem["message"] and problem["location"]["path"] == "backend.name"
    assert not (tmp_path / ".x.partial").exists()


def test_python_dash_m_tunespec_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "tunespec", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("tunespec ")
