"""A job that exists is never lost and never doubled: a failed poll keeps the run in flight
with its job name (status follows it, cancel stops it, apply does not start another), a
live job of the same spec is adopted, and the errors users meet (403, 404, 429, 400) come
back as the diagnostics documented for them."""

from __future__ import annotations

import time

import pytest

from tunespec import DiagnosticError, Progress
from tunespec_vertex import jobs
from tunespec_vertex.backend import to_proto
from tunespec_vertex.clients import Connection, tuning_client

pytestmark = pytest.mark.slow


@pytest.fixture
def env(project, gcs, tuning, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", f"gs://{gcs.bucket}/tunespec")
    return type("Env", (), {"project": project, "gcs": gcs, "tuning": tuning, "state": tmp_path / "state.db"})


def _apply(cli, env, spec, state=None):
    return cli("apply", spec, "--yes", "--output", "json", "--state", state or env.state)


def _same_job(recorded: str, name: str) -> bool:
    """The recorded name keeps the project as its ${env:...} reference (secrets never stored)."""
    return recorded.split("/locations/")[1] == name.split("/locations/")[1]


def _status_until(cli, env, spec, wanted: str, timeout: float = 60.0) -> dict:
    """`tunespec status` until the run reaches `wanted` (polling, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        out = cli("status", spec, "--output", "json", "--state", env.state)
        [run] = out.json["runs"]
        seen.append(run["status"])
        if run["status"] == wanted:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run never became {wanted}: {seen}")


def test_a_403_while_waiting_keeps_the_run_in_flight_with_its_job(cli, env):
    env.tuning.failing["get"] = [403]  # the credentials expire during a multi-hour wait
    spec = env.project.example("text")
    result = _apply(cli, env, spec)
    assert result.code == 0, result.out + result.err
    [run] = result.json["runs"]
    assert run["result"]["status"] == "running"
    [job_name] = env.tuning.jobs
    assert _same_job(run["run"]["remote_id"], job_name)
    assert "Permission 'aiplatform.tuningJobs.get' denied" in run["result"]["message"]
    assert "TS307" in run["result"]["message"]

    again = _apply(cli, env, spec)  # the run is in flight: no second billable job
    assert again.code == 0 and again.json["runs"][0]["action"] == "in-flight"
    assert len(env.tuning.creates()) == 1

    finished = _status_until(cli, env, spec, "succeeded")
    assert _same_job(finished["remote_id"], job_name)
    assert len(env.tuning.creates()) == 1


def test_a_run_whose_poll_failed_can_be_cancelled(cli, env):
    env.tuning.failing["get"] = [403]
    spec = env.project.example("text")
    assert _apply(cli, env, spec).code == 0
    result = cli("cancel", "vertex-text-capitals", "--output", "json", "--state", env.state)
    assert result.code == 0, result.out + result.err
    assert result.json["run"]["status"] == "cancelled"
    [job] = env.tuning.jobs.values()
    assert job.state.name == "JOB_STATE_CANCELLED"


def test_apply_adopts_a_live_job_of_the_same_spec_instead_of_starting_another(cli, env, tmp_path):
    spec = env.project.example("text")
    env.tuning.failing["get"] = [403]  # the first apply loses sight of its job, which runs on
    first = _apply(cli, env, spec, tmp_path / "lost-state.db")  # a state database later lost
    assert first.code == 0 and first.json["runs"][0]["result"]["status"] == "running"
    [job_name] = env.tuning.jobs
    result = _apply(cli, env, spec)  # another machine, or the state database was deleted
    assert result.code == 0, result.out + result.err
    [run] = result.json["runs"]
    assert run["result"]["status"] == "succeeded"
    assert _same_job(run["run"]["remote_id"], job_name)
    assert len(env.tuning.creates()) == 1


def test_a_finished_job_of_the_same_spec_is_not_adopted(cli, env, tmp_path):
    spec = env.project.example("text")
    assert _apply(cli, env, spec, tmp_path / "other.db").code == 0
    assert _apply(cli, env, spec).code == 0  # a new run on purpose: the earlier job had ended
    assert len(env.tuning.creates()) == 2


def test_a_429_on_create_names_the_quota_at_once(cli, env):
    env.tuning.concurrent_jobs_quota = 1
    busy = env.project.example("image")
    busy.write_text(busy.read_text().replace("  poll_interval: 0.05\n", "  poll_interval: 0.05\n  wait: false\n"))
    assert _apply(cli, env, busy).code == 0
    result = _apply(cli, env, env.project.example("text"))
    assert result.code == 1
    assert "TS314" in result.out and "Concurrent tuning jobs per region" in result.out
    assert "Quotas" in result.out  # how to raise it
    assert len(env.tuning.creates()) == 2  # the refused create was not retried


@pytest.mark.parametrize(("code", "operation", "diagnostic", "hint"), [
    (403, "create", "TS307", "roles/aiplatform.user"),
    (400, "create", "TS308", "tunespec plan"),
    (429, "create", "TS314", "Quotas"),
    (403, "get", "TS307", "roles/aiplatform.user"),
    (404, "get", "TS308", "backend.project"),
])
def test_rest_errors_map_to_their_documented_diagnostics(tuning, code, operation, diagnostic, hint):
    from tests.vertex.google_tables import ERROR_TEXT

    conn = Connection("test-project", "us-central1", tuning.endpoint, True, 5)
    client = tuning_client(conn)
    body = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}
    tuning.failing[operation] = [code]
    with pytest.raises(DiagnosticError) as caught:
        if operation == "create":
            jobs.submit(client, conn.parent, to_proto(body), "r-1", 5, initial_delay=0.01)
        else:
            jobs.get_job(client, conn.parent + "/tuningJobs/1", 5)
    [problem] = caught.value.diagnostics
    assert problem.code == diagnostic and hint in (problem.hint or "")
    assert ERROR_TEXT[code].split("'")[0].split("{")[0] in problem.message
    assert len(tuning.creates()) == (1 if operation == "create" else 0)


def test_a_job_goes_through_the_states_a_real_job_does(tuning):
    conn = Connection("test-project", "us-central1", tuning.endpoint, True, 5)
    client = tuning_client(conn)
    body = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}
    failing = dict(body, tunedModelDisplayName="will-fail")
    tuning.outcome_for["will-fail"] = "failed"
    job, _ = jobs.submit(client, conn.parent, to_proto(body), "r-1", 5)
    states = [jobs.state_name(job)] + [jobs.state_name(jobs.get_job(client, job.name, 5)) for _ in range(4)]
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    bad, _ = jobs.submit(client, conn.parent, to_proto(failing), "r-2", 5)
    final = jobs.wait_for(client, bad.name, 0.01, 5, Progress(enabled=False))
    assert jobs.state_name(final) == "JOB_STATE_FAILED" and final.error.message


def test_cancel_while_the_service_is_still_cancelling_is_followed_by_status(cli, env):
    env.tuning.cancel_steps = 3  # the service takes a while to stop the job
    spec = env.project.example("text")
    spec.write_text(spec.read_text().replace("  poll_interval: 0.05\n", "  wait: false\n"))
    assert _apply(cli, env, spec).code == 0
    result = cli("cancel", "vertex-text-capitals", "--output", "json", "--state", env.state)
    assert result.code == 0, result.out + result.err
    assert result.json["run"]["status"] == "running" and "CANCELLING" in result.json["run"]["message"]
    finished = _status_until(cli, env, spec, "cancelled")
    assert _same_job(finished["remote_id"], next(iter(env.tuning.jobs)))


def test_a_429_from_google_genai_is_the_same_quota_diagnostic_and_is_not_retried():
    """Preference jobs are created through google-genai, whose errors are its own classes."""
    from google.genai import errors

    from tunespec_vertex.clients import QUOTA_FALLBACK, diagnose, quota_exceeded

    exc = errors.ClientError(429, {"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}})
    assert quota_exceeded(exc)
    [problem] = diagnose(exc, "create tuning job").diagnostics
    assert problem.code == "TS314" and QUOTA_FALLBACK in problem.message  # no quota details: Google's documented quota
