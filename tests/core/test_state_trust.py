"""The state database is never silently wrong or lost: one per project, never created by a
read-only command, damage detected and named, deleted runs noticed, cancel that stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _echo_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TUNESPEC_PLUGINS": "tests.core.echo_plugin", "PYTHONPATH": str(REPO), **extra}


def _apply_in_background(spec: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tunespec.cli.main", "apply", str(spec), "--output", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_echo_env(), cwd=cwd,
        # A shell starts background jobs with SIGINT ignored; cancel must work all the same.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )


def _wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _db(project) -> Path:
    return project.root / ".tunespec" / "state.db"


# One database per project ------------------------------------------------------------


@pytest.fixture
def repo(project, cli):
    """The README's layout: a git work tree whose specs live in specs/."""
    (project.root / ".git").mkdir()
    specs = project.root / "specs"
    specs.mkdir()
    shutil.move(project.root / "data", specs / "data")
    project.spec(file="specs/job.yaml")
    return project


def test_the_readme_workflow_keeps_one_database_at_the_top_of_the_repository(repo, cli, monkeypatch):
    monkeypatch.chdir(repo.root)
    assert cli("apply", "specs/").code == 0
    assert _db(repo).is_file() and not (repo.root / "specs" / ".tunespec").exists()
    from_root = cli("runs", "--output", "json").json["runs"]
    monkeypatch.chdir(repo.root / "specs")
    from_specs = cli("runs", "--output", "json").json["runs"]
    assert [r["run_id"] for r in from_root] == [r["run_id"] for r in from_specs] and len(from_root) == 1
    monkeypatch.chdir(repo.root)
    assert cli("status", "--output", "json").json["runs"][0]["status"] == "succeeded"
    assert sorted(p.name for p in repo.root.rglob("state.db")) == ["state.db"]


def test_read_only_commands_create_no_database_and_no_folder(cli, project, tmp_path, monkeypatch):
    spec = project.spec()
    monkeypatch.chdir(project.root)
    for argv in (("validate", spec), ("plan", spec), ("status", spec), ("status",), ("runs",), ("verify", project.root / "runs" / "x")):
        cli(*argv)
    assert not (project.root / ".tunespec").exists() and not (project.root / "runs").exists()
    typo = tmp_path / "typo"
    result = cli("validate", typo / "a.yaml", "--output", "json")
    assert result.code == 1 and result.json["diagnostics"][0]["code"] == "TS001"
    assert not typo.exists()
    assert cli("runs").code == 0 and "no runs recorded" in cli("runs").out


def test_cancel_from_the_root_finds_the_run_applied_from_specs(repo, cli, monkeypatch):
    spec = repo.root / "specs" / "job.yaml"
    spec.write_text(spec.read_text() + "  steps: 200\n  step_seconds: 0.05\n")
    proc = _apply_in_background(spec, repo.root)
    try:
        _wait_for(lambda: _db(repo).exists() and cli("runs", "--state", _db(repo), "--output", "json").json["runs"])
        monkeypatch.chdir(repo.root)
        cancelled = cli("cancel", "echo-job", "--output", "json")
        assert cancelled.code == 0, cancelled.text
        assert cancelled.json["run"]["status"] == "cancelled" and cancelled.json["stopped"]
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert json.loads(out)["runs"][0]["action"] == "cancelled"


# Cancel stops the run ----------------------------------------------------------------


def _steps_done(project) -> int:
    logs = list((project.root / "runs" / "echo-job").glob(".*.partial/steps.txt"))
    return len(logs[0].read_text().splitlines()) if logs else 0


def test_cancel_stops_a_local_run_driven_by_another_process_and_publishes_it(cli, project, monkeypatch):
    monkeypatch.chdir(project.root)
    spec = project.spec(backend_extra="  steps: 400\n  step_seconds: 0.05\n")
    proc = _apply_in_background(spec, project.root)
    try:
        _wait_for(lambda: _steps_done(project) >= 3)
        cancelled = cli("cancel", "echo-job", "--output", "json")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert cancelled.code == 0 and cancelled.json["run"]["status"] == "cancelled"
    applied = json.loads(out)["runs"][0]
    assert applied["action"] == "cancelled" and proc.returncode == 1
    run_dir = Path(applied["run_dir"])
    steps = (run_dir / "steps.txt").read_text().splitlines()
    assert 0 < len(steps) < 400, "training stopped part-way"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "cancelled"
    assert cli("verify", run_dir).code == 0
    # nothing keeps running, and the cancelled run is not resumed as if interrupted
    time.sleep(0.3)
    assert (run_dir / "steps.txt").read_text().splitlines() == steps
    runs = cli("runs", "--state", _db(project), "--output", "json").json["runs"]
    assert [r["status"] for r in runs] == ["cancelled"]
    assert cli("plan", spec, "--output", "json").json["specs"][0]["change"]["action"] == "replace"


def test_cancel_of_an_interrupted_run_publishes_it_as_cancelled(cli, project, monkeypatch):
    monkeypatch.chdir(project.root)
    marker = project.root / "started"
    spec = project.spec(backend_extra=f"  steps: 400\n  step_seconds: 0.05\n  marker: {marker}\n")
    proc = _apply_in_background(spec, project.root)
    _wait_for(marker.exists)
    proc.kill()
    proc.wait()
    cancelled = cli("cancel", "echo-job", "--output", "json")
    assert cancelled.code == 0 and cancelled.json["run"]["status"] == "cancelled"
    run_dir = Path(cancelled.json["run"]["run_dir"])
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "cancelled"
    assert not list(run_dir.parent.glob(".*.partial"))


def test_a_run_driven_from_another_host_is_not_cancelled_from_here(cli, project, monkeypatch):
    monkeypatch.chdir(project.root)
    spec = project.spec()
    cli("apply", spec)
    with sqlite3.connect(_db(project)) as db:
        db.execute("UPDATE runs SET status = 'running', owner_host = 'build-42', owner_pid = 4242")
    refused = cli("cancel", "echo-job")
    assert refused.code == 1
    assert "TS400" in refused.err and "build-42" in refused.err


def test_a_reused_pid_is_not_taken_for_the_owner(cli, project):
    """The owner is recorded with its start time: another process that got the same pid
    later (here: this test process) does not keep the run 'in flight' forever."""
    spec = project.spec()
    cli("apply", spec)
    with sqlite3.connect(_db(project)) as db:
        db.execute("UPDATE runs SET status = 'running', owner_pid = ?, owner_started = '1'", (os.getpid(),))
    assert cli("plan", spec, "--output", "json").json["specs"][0]["change"]["action"] == "resume"


# Damaged databases --------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "half":
        path.write_bytes(data[: len(data) // 2 + 100])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "pages":
        path.write_bytes(data[:4096] + os.urandom(len(data) - 4096))
    elif how == "foreign":
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE notes (text TEXT)")


@pytest.mark.parametrize("how", ["empty", "half", "garbage", "pages", "foreign"])
def test_a_damaged_database_is_named_never_read_as_no_runs(cli, project, how):
    spec = project.spec()
    assert cli("apply", spec).code == 0
    cli("runs", "--state", _db(project)).code  # a clean close: everything is in the main file
    _damage(_db(project), how)
    for argv in (("status", spec), ("runs", "--state", _db(project)), ("plan", spec), ("apply", spec)):
        result = cli(*argv, "--output", "json")
        assert result.code == 1, (argv, result.text)
        [problem] = [d for d in result.json["diagnostics"] if d["code"] == "TS402"]
        assert str(_db(project)) in problem["message"] and problem["hint"]
    # apply kept a copy of the last good database, and the hint says how to restore it
    assert "mv" in problem["hint"] and ".bak" in problem["hint"]
    shutil.copy(_db(project).with_name("state.db.bak"), _db(project))
    for leftover in _db(project).parent.glob("state.db-*"):
        leftover.unlink()
    assert cli("plan", spec, "--output", "json").json["specs"][0]["change"]["action"] == "no-op"


def test_a_database_from_before_this_schema_is_migrated(cli, project):
    spec = project.spec()
    _db(project).parent.mkdir()
    with sqlite3.connect(_db(project)) as db:  # tunespec 0.1's schema, with one run
        db.executescript("""
            CREATE TABLE runs (run_id TEXT PRIMARY KEY, spec_name TEXT NOT NULL, spec_file TEXT NOT NULL,
              fingerprint TEXT NOT NULL, backend TEXT NOT NULL, status TEXT NOT NULL, remote_id TEXT,
              output_root TEXT NOT NULL, run_dir TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
              owner_host TEXT, owner_pid INTEGER, message TEXT, spec TEXT, plan TEXT, data TEXT);
            CREATE TABLE file_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
            INSERT INTO runs VALUES ('old-run', 'echo-job', 'x.yaml', 'f', 'echo', 'failed', NULL, '/r', '/r/echo-job/old-run',
              '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', NULL, NULL, 'old', NULL, NULL, NULL);
        """)
    assert cli("apply", spec).code == 0
    runs = cli("runs", "--output", "json", "--state", _db(project)).json["runs"]
    assert [r["run_id"] for r in runs][-1] == "old-run" and len(runs) == 2


# Runs whose folder is gone ------------------------------------------------------------


def test_a_deleted_run_folder_is_missing_and_runs_again(cli, project):
    spec = project.spec()
    run_dir = Path(cli("apply", spec, "--output", "json").json["runs"][0]["run_dir"])
    shutil.rmtree(run_dir)
    status = cli("status", spec, "--output", "json")
    assert status.code == 1 and status.json["runs"][0]["status"] == "missing"
    planned = cli("plan", spec, "--output", "json")
    assert planned.code == 2
    change = planned.json["specs"][0]["change"]
    assert change["action"] == "replace" and "missing" in change["changed"][0]
    again = cli("apply", spec, "--output", "json").json["runs"][0]
    assert again["action"] == "started" and Path(again["run_dir"]).is_dir()


# Output paths that cannot hold runs ---------------------------------------------------


def test_an_output_path_that_is_a_file_is_located_before_any_run(cli, project):
    (project.root / "results").write_text("not a folder")
    spec = project.spec(backend_extra="output:\n  path: results/latest\n")
    for command in ("validate", "apply"):
        result = cli(command, spec, "--output", "json")
        assert result.code == 1
        [problem] = [d for s in result.json["specs"] for d in s["diagnostics"] if d["code"] == "TS123"]
        assert problem["location"]["line"] == 14 and "is a file" in problem["message"]
    assert not _db(project).exists() or not cli("runs", "--state", _db(project), "--output", "json").json["runs"]


def test_an_output_path_on_a_read_only_mount_is_located_before_any_run(project, tmp_path):
    """In a private mount namespace (unshare), `output.path` is on a read-only tmpfs."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("user namespaces (unshare -rm) are not available here")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    spec = project.spec(backend_extra=f"output:\n  path: {readonly}/runs\n")
    script = (f"mount -t tmpfs -o ro tmpfs {readonly} && "
              f"{sys.executable} -m tunespec.cli.main apply {spec} --output json --state {tmp_path / 'state.db'}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=_echo_env(), cwd=project.root)
    assert done.returncode == 1, done.stderr
    [problem] = [d for s in json.loads(done.stdout)["specs"] for d in s["diagnostics"] if d["code"] == "TS123"]
    assert "read-only" in problem["message"] and problem["location"]["line"] == 14
