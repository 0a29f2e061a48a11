"""plan/apply/status/verify through the CLI, with the echo backend: the state machine a
user relies on (create, no-op, replace, in-flight, resume) and the artifact contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import yaml


def test_plan_then_apply_then_noop(cli, project):
    spec = project.spec()
    plan = cli("plan", spec, "--output", "json")
    assert plan.code == 2  # changes
    assert plan.json["specs"][0]["change"]["action"] == "create"
    assert plan.json["specs"][0]["plan"]["job"]["epochs"] == 2

    applied = cli("apply", spec, "--output", "json")
    assert applied.code == 0
    run = applied.json["runs"][0]
    assert run["action"] == "started" and run["result"]["status"] == "succeeded"
    run_dir = Path(run["run_dir"])
    assert run_dir == project.root / "runs" / "echo-job" / run["run"]["run_id"]
    assert (run_dir / "steps.txt").read_text().count("step") == 3

    assert cli("plan", spec).code == 0  # no changes
    again = cli("apply", spec, "--output", "json")
    assert again.code == 0 and again.json["runs"][0]["action"] == "no-op"
    assert len(list((project.root / "runs" / "echo-job").iterdir())) == 1


def test_changed_spec_is_a_replace_naming_the_field(cli, project):
    spec = project.spec(epochs=2)
    assert cli("apply", spec).code == 0
    project.spec(epochs=5)
    plan = cli("plan", spec, "--output", "json").json["specs"][0]["change"]
    assert plan["action"] == "replace"
    assert plan["changed"] == ["hyperparameters.epochs"]
    assert cli("apply", spec).code == 0
    assert len(list((project.root / "runs" / "echo-job").iterdir())) == 2


def test_changed_data_changes_the_fingerprint(cli, project):
    spec = project.spec()
    assert cli("apply", spec).code == 0
    data = project.root / "data" / "train.jsonl"
    data.write_text(data.read_text().replace("hello", "hello there"))
    change = cli("plan", spec, "--output", "json").json["specs"][0]["change"]
    assert change["action"] == "replace"
    assert any(c.startswith("data content") for c in change["changed"])


def test_force_runs_again(cli, project):
    spec = project.spec()
    cli("apply", spec)
    assert cli("apply", spec, "--force", "--output", "json").json["runs"][0]["action"] == "started"


def test_manifest_lists_every_file_and_verify_catches_tampering(cli, project):
    spec = project.spec()
    run_dir = Path(cli("apply", spec, "--output", "json").json["runs"][0]["run_dir"])
    manifest = orjson.loads((run_dir / "manifest.json").read_bytes())
    assert manifest["schema_version"] == 1 and manifest["status"] == "succeeded"
    assert {f["path"] for f in manifest["files"]} == {"spec.yaml", "steps.txt"}
    assert manifest["backend"] == "echo" and manifest["data"]["splits"]["train"]["examples"] == 2
    assert cli("verify", run_dir).code == 0

    (run_dir / "steps.txt").write_text("step 1\nstep 2\nstep X\n")
    bad = cli("verify", run_dir, "--output", "json")
    assert bad.code == 1 and [d["code"] for d in bad.json["runs"][0]["diagnostics"]] == ["TS501"]
    (run_dir / "extra.bin").write_bytes(b"x")
    (run_dir / "steps.txt").unlink()
    codes = sorted(d["code"] for d in cli("verify", run_dir, "--output", "json").json["runs"][0]["diagnostics"])
    assert codes == ["TS502", "TS503"]


def test_failed_run_exits_1_and_records_the_error(cli, project):
    spec = project.spec(backend_extra="  outcome: failed\n")
    result = cli("apply", spec, "--output", "json")
    assert result.code == 1
    run_dir = Path(result.json["runs"][0]["run_dir"])
    manifest = orjson.loads((run_dir / "manifest.json").read_bytes())
    assert manifest["status"] == "failed" and manifest["error"] == {"message": "asked to fail"}
    assert cli("verify", run_dir).code == 0  # a failed run is still a complete, checkable record
    # a failed run is not a success: apply tries again
    assert cli("apply", spec, "--output", "json").json["runs"][0]["action"] == "started"


def test_secrets_from_env_are_kept_as_references(cli, project, monkeypatch):
    monkeypatch.setenv("ECHO_SECRET_BASE", "hunter2-model")
    spec = project.spec()
    spec.write_text(spec.read_text().replace("base: tiny-model", "base: ${env:ECHO_SECRET_BASE}"))
    run_dir = Path(cli("apply", spec, "--output", "json").json["runs"][0]["run_dir"])
    for file in run_dir.rglob("*"):
        if file.is_file():
            assert b"hunter2" not in file.read_bytes(), file
    assert yaml.safe_load((run_dir / "spec.yaml").read_text())["model"]["base"] == "${env:ECHO_SECRET_BASE}"
    assert b"hunter2" not in (project.root / ".tunespec" / "state.db").read_bytes()
    for output in ("human", "json"):
        shown = cli("plan", spec, "--output", output)
        assert "hunter2" not in shown.out + shown.err and "ECHO_SECRET_BASE" in shown.out
    # the value still counts: changing it changes the job
    monkeypatch.setenv("ECHO_SECRET_BASE", "another-model")
    assert cli("plan", spec, "--output", "json").json["specs"][0]["change"]["action"] == "replace"


def _apply_process(spec: Path, root: Path) -> subprocess.Popen:
    env = {**os.environ, "TUNESPEC_PLUGINS": "tests.core.echo_plugin", "PYTHONPATH": str(Path.cwd())}
    return subprocess.Popen(
        [sys.executable, "-m", "tunespec.cli.main", "apply", str(spec), "--output", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root,
    )


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_concurrent_applies_start_one_run(project):
    marker, release = project.root / "started", project.root / "release"
    # the first run holds after step 1 until the second apply has answered, however slow the machine
    spec = project.spec(backend_extra=f"  steps: 4\n  marker: {marker}\n  hold_until: {release}\n")
    first = _apply_process(spec, project.root)
    _wait_for(marker)
    second = _apply_process(spec, project.root)
    out2, _ = second.communicate(timeout=120)
    release.touch()
    out1, _ = first.communicate(timeout=120)
    assert json.loads(out2)["runs"][0]["action"] == "in-flight"
    assert json.loads(out1)["runs"][0]["result"]["status"] == "succeeded"
    assert len(list((project.root / "runs" / "echo-job").iterdir())) == 1


def test_killed_apply_resumes_the_same_run(cli, project):
    marker = project.root / "started"
    spec = project.spec(backend_extra=f"  steps: 6\n  step_seconds: 0.3\n  marker: {marker}\n")
    proc = _apply_process(spec, project.root)
    _wait_for(marker)
    time.sleep(0.8)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = list((project.root / "runs" / "echo-job").glob(".*.partial"))
    assert len(partial) == 1, "the interrupted run stays staged, not published"
    done_before = len((partial[0] / "steps.txt").read_text().splitlines())
    assert 0 < done_before < 6

    assert cli("plan", spec, "--output", "json").json["specs"][0]["change"]["action"] == "resume"
    result = cli("apply", spec, "--output", "json").json["runs"][0]
    assert result["action"] == "resumed"
    assert result["result"]["metrics"]["resumed_from"] == done_before
    run_dir = Path(result["run_dir"])
    assert (run_dir / "steps.txt").read_text().splitlines() == [f"step {i}" for i in range(1, 7)]
    assert not list((project.root / "runs" / "echo-job").glob(".*.partial"))


def test_status_and_runs(cli, project):
    spec = project.spec()
    cli("apply", spec)
    status = cli("status", spec, "--output", "json").json["runs"]
    assert [r["status"] for r in status] == ["succeeded"]
    runs = cli("runs", "--state", project.root / ".tunespec" / "state.db", "--output", "json").json["runs"]
    assert len(runs) == 1 and runs[0]["spec_name"] == "echo-job"


def test_billable_job_needs_yes_without_a_terminal(cli, project):
    spec = project.spec(backend_extra="  billable: true\n")
    refused = cli("apply", spec)
    assert refused.code == 1
    assert "TS003" in refused.err and "--yes" in refused.err
    assert not (project.root / "runs").exists()
    assert cli("apply", spec, "--yes").code == 0


def test_applying_a_folder_again_ignores_the_run_directories_inside_it(cli, project):
    """The default output (./runs beside the spec) holds a copy of the spec in every run;
    applying the folder again must not read those copies as specs."""
    spec = project.spec()
    assert cli("apply", project.root).code == 0
    assert list((project.root / "runs").rglob("spec.yaml"))
    again = cli("apply", project.root, "--output", "json")
    assert again.code == 0 and [r["action"] for r in again.json["runs"]] == ["no-op"]
