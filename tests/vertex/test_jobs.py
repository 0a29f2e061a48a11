"""The job life cycle at the backend's own level: resume after a crash, every terminal
state, permanent API errors as diagnostics."""

from __future__ import annotations

import pytest

from tunespec import DiagnosticError, Progress, RunContext
from tunespec.artifacts import RunDirectory
from tunespec.pipeline import check_spec
from tunespec.plugins.host import plugin_host
from tunespec_vertex import jobs
from tunespec_vertex.backend import to_proto
from tunespec_vertex.clients import Connection, tuning_client
from tunespec_vertex.labels import RUN_LABEL

pytestmark = pytest.mark.slow


@pytest.fixture
def ready(project, gcs, tuning, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", f"gs://{gcs.bucket}/tunespec")

    def context(modality: str, run_id: str, recorded: list[str]) -> RunContext:
        checked = check_spec(project.load(project.example(modality)), plugin_host(), None, Progress(enabled=False))
        assert checked.ok
        return RunContext(
            run_id=run_id, spec=checked.spec, plan=checked.plan, data=checked.data,
            run_dir=RunDirectory(tmp_path / "runs", checked.spec.name, run_id).create(),
            progress=Progress(enabled=False), record_remote_id=recorded.append,
        )

    return context


def test_apply_after_a_crash_follows_the_job_it_already_created(ready, tuning, gcs):
    backend = plugin_host().backends()["vertex"]
    recorded: list[str] = []
    first = ready("image", "run-0001", recorded)
    first.spec.config.wait = False  # the first attempt submits, then "crashes"
    submitted = backend.apply(first)
    assert submitted.status in ("pending", "running")
    uploads = gcs.names("tunespec/")
    again = ready("image", "run-0001", recorded)
    result = backend.apply(again)
    assert result.status == "succeeded"
    assert len(tuning.creates()) == 1
    assert recorded == [submitted.remote_id, submitted.remote_id]
    assert gcs.names("tunespec/") == uploads  # nothing staged again either


@pytest.mark.parametrize(
    ("outcome", "status", "has_error"),
    [("succeeded", "succeeded", False), ("failed", "failed", True), ("expired", "failed", True), ("partially_succeeded", "succeeded", False)],
)
def test_every_terminal_state_maps_to_a_run_status(tuning, outcome, status, has_error):
    tuning.default_outcome = outcome
    conn = Connection("test-project", "us-central1", tuning.endpoint, True, 5)
    client = tuning_client(conn)
    body = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"},
            "labels": {RUN_LABEL: outcome.replace("_", "-")}}
    job, created = jobs.submit(client, conn.parent, to_proto(body), outcome.replace("_", "-"), 5)
    assert created
    final = jobs.wait_for(client, job.name, 0.01, 5, Progress(enabled=False))
    result = jobs.result_of(final)
    assert result.status == status
    assert (result.error is not None) == has_error
    assert result.outputs["state"] == final.state.name.removeprefix("JOB_STATE_")
    if outcome == "partially_succeeded":
        assert "partially" in result.message and result.outputs["tuned_model"]


def test_a_request_the_service_refuses_is_a_diagnostic_not_a_traceback(tuning):
    conn = Connection("test-project", "us-central1", tuning.endpoint, True, 5)
    client = tuning_client(conn)
    body = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "/local/path.jsonl"}}
    with pytest.raises(DiagnosticError) as caught:
        jobs.submit(client, conn.parent, to_proto(body), "r-1", 5)
    [problem] = caught.value.diagnostics
    assert problem.code == "TS308" and "gs://" in problem.message
    with pytest.raises(DiagnosticError) as missing:
        jobs.get_job(client, conn.parent + "/tuningJobs/999", 5)
    assert missing.value.diagnostics[0].code == "TS308" and "not found" in missing.value.diagnostics[0].message


def test_emulator_rejects_bodies_that_do_not_parse_into_the_proto(tuning):
    import requests

    url = f"{tuning.endpoint}/v1beta1/projects/p/locations/us-central1/tuningJobs"
    bad = requests.post(url, json={"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"adapterSize": 8}}, timeout=5)
    assert bad.status_code == 400 and "adapterSize" in bad.text
    ok = requests.post(url, json={"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}, timeout=5)
    assert ok.status_code == 200 and ok.json()["state"] == "JOB_STATE_PENDING"
