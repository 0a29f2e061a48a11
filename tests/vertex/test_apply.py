"""`tunespec apply/status/cancel/verify` with the vertex backend against emulated services:
the real GenAiTuningServiceClient talks to tests/vertex/emulator.py and the real storage
client to gcp-storage-emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest

from tunespec import secrets
from tunespec_vertex.labels import RUN_LABEL

pytestmark = pytest.mark.slow  # starts emulators; a few seconds in all


def resolved(stored: str) -> Path:
    """A run folder as the CLI prints it (an interpolated output root stays a ${env:...}
    reference in every output) made a path again, as a script would with its environment."""
    return Path(secrets.expand(stored)[0])


@pytest.fixture
def env(project, gcs, tuning, monkeypatch, tmp_path):
    """Example specs pointed at the emulated bucket; a state store in the test folder."""
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", f"gs://{gcs.bucket}/tunespec")
    return type("Env", (), {"project": project, "gcs": gcs, "tuning": tuning, "state": tmp_path / "state.db"})


def _apply(cli, env, spec, *extra):
    return cli("apply", spec, "--yes", "--output", "json", "--state", env.state, *extra)


def _staged_lines(env, uri):
    name = uri.removeprefix(f"gs://{env.gcs.bucket}/")
    return [json.loads(line) for line in env.gcs.read(name).splitlines()]


def test_text_spec_stages_data_creates_one_job_and_writes_a_verifiable_run(cli, env):
    result = _apply(cli, env, env.project.example("text"))
    assert result.code == 0, result.out + result.err
    run = result.json["runs"][0]
    assert run["result"]["status"] == "succeeded"

    [create] = env.tuning.creates()
    body = create.body
    assert body["labels"][RUN_LABEL] == run["run"]["run_id"]
    train_uri = body["supervisedTuningSpec"]["trainingDatasetUri"]
    assert train_uri.startswith(f"gs://{env.gcs.bucket}/tunespec/datasets/") and train_uri.endswith(".jsonl")
    assert "<sha256>" not in json.dumps(body)
    lines = _staged_lines(env, train_uri)
    assert len(lines) == 20  # at least the service's documented minimum of 16 examples
    assert lines[0]["systemInstruction"]["parts"] == [{"text": "Answer with the capital city only."}]
    assert [c["role"] for c in lines[0]["contents"]] == ["user", "model"]
    assert len(_staged_lines(env, body["supervisedTuningSpec"]["validationDatasetUri"])) == 2

    run_dir = resolved(run["run_dir"])
    manifest = orjson.loads((run_dir / "manifest.json").read_bytes())
    outputs = manifest["outputs"]
    job_name = outputs["tuning_job"]
    job_id = job_name.rsplit("/", 1)[1]
    assert job_name.endswith(f"/locations/us-central1/tuningJobs/{job_id}")
    assert outputs["tuned_model"].endswith(f"/models/{job_id}@1")
    assert outputs["endpoint"].endswith(f"/endpoints/{job_id}")
    assert [c["epoch"] for c in outputs["checkpoints"]] == [1, 2, 3]
    assert manifest["metrics"]["tuning_step_count"] == 30
    assert json.loads((run_dir / "request.json").read_text())["labels"][RUN_LABEL] == run["run"]["run_id"]
    assert cli("verify", run_dir).code == 0


def test_image_media_are_uploaded_once_in_parallel_and_referenced_as_gs_uris(cli, env):
    result = _apply(cli, env, env.project.example("image"))
    assert result.code == 0
    body = env.tuning.creates()[0].body
    lines = _staged_lines(env, body["supervisedTuningSpec"]["trainingDatasetUri"])
    uris = [p["fileData"]["fileUri"] for line in lines for p in line["contents"][0]["parts"] if "fileData" in p]
    assert len(uris) == 18 and len(set(uris)) == 3  # 3 images, each used by 6 examples, uploaded once
    assert all(u.startswith(f"gs://{env.gcs.bucket}/tunespec/media/") and u.endswith(".png") for u in uris)
    red = (env.project.root / "data" / "images" / "red.png").read_bytes()
    assert env.gcs.read(uris[0].removeprefix(f"gs://{env.gcs.bucket}/")) == red
    assert len(env.gcs.names("tunespec/media/")) == 3
    manifest = orjson.loads((resolved(result.json["runs"][0]["run_dir"]) / "manifest.json").read_bytes())
    assert manifest["outputs"]["staging"] == {"uploaded": 4, "already_staged": 0}  # 3 images + the dataset
    # the bucket came from ${env:TUNESPEC_VERTEX_BUCKET}: artifacts keep the reference, not the value
    staged_name = body["supervisedTuningSpec"]["trainingDatasetUri"].rsplit("/", 1)[1]
    recorded = manifest["outputs"]["datasets"]["train"]
    assert recorded.startswith("${env:TUNESPEC_VERTEX_BUCKET") and recorded.endswith("}/datasets/" + staged_name)

    # a second run with the same data (a changed hyperparameter) uploads nothing
    bucket = env.gcs.client.bucket(env.gcs.bucket)
    before = {b.name: b.generation for b in bucket.list_blobs(prefix="tunespec/")}
    spec = env.project.example("image")
    spec.write_text(spec.read_text().replace("epochs: 2", "epochs: 3"))
    again = _apply(cli, env, spec)
    assert again.code == 0
    assert {b.name: b.generation for b in bucket.list_blobs(prefix="tunespec/")} == before
    manifest = orjson.loads((resolved(again.json["runs"][0]["run_dir"]) / "manifest.json").read_bytes())
    assert manifest["outputs"]["staging"] == {"uploaded": 0, "already_staged": 4}


@pytest.mark.parametrize("modality", ["audio", "document"])
def test_audio_and_document_specs_run_end_to_end(cli, env, modality):
    result = _apply(cli, env, env.project.example(modality))
    assert result.code == 0, result.out + result.err
    body = env.tuning.creates()[0].body
    mime = {"audio": "audio/wav", "document": "application/pdf"}[modality]
    parts = [p for line in _staged_lines(env, body["supervisedTuningSpec"]["trainingDatasetUri"]) for p in line["contents"][0]["parts"]]
    assert {p["fileData"]["mimeType"] for p in parts if "fileData" in p} == {mime}
    assert all(p["fileData"]["fileUri"].startswith("gs://") for p in parts if "fileData" in p)


def test_gemini_jsonl_in_cloud_storage_is_used_in_place(cli, env):
    source = env.project.root / "data" / "image-train.jsonl"
    gemini = source.read_text().replace('"images/', f'"gs://{env.gcs.bucket}/images/')
    bucket = env.gcs.client.bucket(env.gcs.bucket)
    bucket.blob("data/train.jsonl").upload_from_string(gemini)
    for png in (env.project.root / "data" / "images").glob("*.png"):
        bucket.blob(f"images/{png.name}").upload_from_filename(str(png))
    spec = env.project.example("image")
    spec.write_text(spec.read_text().replace("data/image-train.jsonl", f"gs://{env.gcs.bucket}/data/train.jsonl"))
    result = _apply(cli, env, spec)
    assert result.code == 0, result.out + result.err
    body = env.tuning.creates()[0].body
    assert body["supervisedTuningSpec"]["trainingDatasetUri"] == f"gs://{env.gcs.bucket}/data/train.jsonl"
    assert not env.gcs.names("tunespec/")  # nothing staged


def test_continued_tuning_of_a_tuned_model_end_to_end(cli, env):
    from tests.vertex.conftest import spec_text

    tuned = "projects/test-project/locations/us-central1/models/4242@1"
    text = spec_text(name="continued", base=tuned, backend="  checkpoint_id: '2'\n  pre_tuned_base_model: gemini-2.5-flash\n  poll_interval: 0.05\n")
    spec = env.project.spec("continued.yaml", text.replace("gs://placeholder-bucket", f"gs://{env.gcs.bucket}"))
    result = _apply(cli, env, spec)
    assert result.code == 0, result.out + result.err
    body = env.tuning.creates()[0].body
    assert body["preTunedModel"] == {"tunedModelName": tuned, "checkpointId": "2"} and "baseModel" not in body
    assert result.json["runs"][0]["result"]["outputs"]["tuned_model"].endswith("@1")


def test_open_model_full_tuning_end_to_end(cli, env):
    from tests.vertex.conftest import spec_text

    text = spec_text(name="llama-full", base="meta/llama3_1@llama-3.1-8b", extra="method: full\nhyperparameters:\n  learning_rate: 0.00001\n",
                     backend="  output_uri: gs://out-bucket/llama\n  poll_interval: 0.05\n")
    spec = env.project.spec("llama.yaml", text.replace("gs://placeholder-bucket", f"gs://{env.gcs.bucket}"))
    result = _apply(cli, env, spec)
    assert result.code == 0, result.out + result.err
    body = env.tuning.creates()[0].body
    assert body["supervisedTuningSpec"]["tuningMode"] == 1  # TUNING_MODE_FULL: the REST client sends enums as numbers
    assert body["supervisedTuningSpec"]["hyperParameters"]["learningRate"] == 1e-05
    assert result.json["runs"][0]["result"]["outputs"]["output_uri"] == "gs://out-bucket/llama"


def test_an_unchanged_dataset_is_not_uploaded_twice(cli, env):
    spec = env.project.example("text")
    assert _apply(cli, env, spec).code == 0
    bucket = env.gcs.client.bucket(env.gcs.bucket)
    before = {b.name: b.generation for b in bucket.list_blobs(prefix="tunespec/datasets/")}
    spec.write_text(spec.read_text().replace("epochs: 3", "epochs: 5"))  # a new run, same data
    result = _apply(cli, env, spec)
    assert result.code == 0
    after = {b.name: b.generation for b in bucket.list_blobs(prefix="tunespec/datasets/")}
    assert after == before
    manifest = orjson.loads((resolved(result.json["runs"][0]["run_dir"]) / "manifest.json").read_bytes())
    assert manifest["outputs"]["staging"] == {"uploaded": 0, "already_staged": 2}
    first, second = (c.body["supervisedTuningSpec"] for c in env.tuning.creates())
    assert first["trainingDatasetUri"] == second["trainingDatasetUri"]
    assert int(second["hyperParameters"]["epochCount"]) == 5  # int64 travels as a JSON string


def test_a_create_whose_answer_is_lost_is_retried_without_a_second_job(cli, env):
    env.tuning.drop_create_responses = 1  # the service creates the job, the client never hears back
    result = _apply(cli, env, env.project.example("text"))
    assert result.code == 0, result.out + result.err
    assert len(env.tuning.creates()) == 1  # the retry found the job instead of creating again
    assert len(env.tuning.jobs) == 1 and len(_lists(env)) == 2
    assert result.json["runs"][0]["result"]["status"] == "succeeded"


def test_a_create_that_times_out_after_the_service_accepted_it_is_not_duplicated(cli, env):
    env.tuning.slow_create_responses = 1  # answers after 2 s; the client gives up after 0.5 s
    spec = env.project.example("text")
    spec.write_text(spec.read_text().replace("  poll_interval: 0.05\n", "  poll_interval: 0.05\n  timeout: 0.5\n"))
    result = _apply(cli, env, spec)
    assert result.code == 0, result.out + result.err
    assert len(env.tuning.jobs) == 1 and len(env.tuning.creates()) == 1
    assert len(_lists(env)) == 2  # before creating, and again after the timeout (which found the job)
    assert result.json["runs"][0]["result"]["status"] == "succeeded"


def _lists(env):
    """Lookups of the run's own job (by its run label; apply also looks for a live job of the same fingerprint)."""
    return [r for r in env.tuning.requests if r.method == "GET" and r.path.endswith("/tuningJobs")
            and RUN_LABEL in (r.query.get("filter") or [""])[0]]


def test_transient_service_errors_are_retried(cli, env):
    env.tuning.unavailable = {"list": 1, "create": 1, "get": 1}
    result = _apply(cli, env, env.project.example("document"))
    assert result.code == 0, result.out + result.err
    assert env.tuning.unavailable == {"list": 0, "create": 0, "get": 0}  # each was hit, then retried
    assert len(env.tuning.jobs) == 1 and len(env.tuning.creates()) == 2  # the 503 create created nothing


def test_a_request_the_service_refuses_fails_the_run_with_a_diagnostic(cli, env):
    env.tuning.refuse_creates = "adapter size is not supported for this model"
    result = _apply(cli, env, env.project.example("image"))
    assert result.code == 1
    assert "TS308" in result.out and "adapter size is not supported" in result.out
    run = result.json["runs"][0]
    manifest = orjson.loads((resolved(run["run_dir"]) / "manifest.json").read_bytes())
    assert manifest["status"] == "failed"
    assert "adapter size is not supported" in json.dumps(manifest["error"])
    assert len(env.tuning.creates()) == 1  # permanent: not retried


def test_a_converted_dataset_over_the_size_limit_is_not_uploaded(cli, env):
    spec = env.project.example("text")  # 3,373 bytes of OpenAI records become ~4,000 bytes of Gemini JSONL
    spec.write_text(spec.read_text().replace("  poll_interval: 0.05\n", "  poll_interval: 0.05\n  catalog:\n    data_rules:\n      max_file_bytes: 3600\n"))
    result = _apply(cli, env, spec)
    assert result.code == 1
    assert "TS217" in result.out and "3,600" in result.out
    assert not env.tuning.creates() and not env.gcs.names("tunespec/datasets/")


def test_a_refused_label_filter_falls_back_to_client_side_filtering(cli, env):
    env.tuning.reject_label_filter = True
    env.tuning.drop_create_responses = 1
    env.tuning.page_size = 1  # several pages to walk
    assert _apply(cli, env, env.project.example("image")).code == 0
    assert len(env.tuning.jobs) == 1


def test_a_failed_job_exits_1_with_its_error_in_the_manifest(cli, env):
    env.tuning.outcome_for["vertex-text-capitals"] = "failed"
    result = _apply(cli, env, env.project.example("text"))
    assert result.code == 1
    run = result.json["runs"][0]
    assert run["result"]["status"] == "failed"
    manifest = orjson.loads((resolved(run["run_dir"]) / "manifest.json").read_bytes())
    assert manifest["status"] == "failed"
    assert manifest["error"]["message"] == env.tuning.failure.message
    assert manifest["error"]["state"] == "JOB_STATE_FAILED"
    assert cli("verify", run["run_dir"]).code == 0


def test_no_wait_then_status_finishes_the_run(cli, env):
    spec = env.project.example("audio")
    spec.write_text(spec.read_text().replace("  poll_interval: 0.05\n", "  poll_interval: 0.05\n  wait: false\n"))
    result = _apply(cli, env, spec)
    assert result.code == 0, result.out + result.err
    run = result.json["runs"][0]
    assert run["result"]["status"] in ("pending", "running")
    assert run["run"]["remote_id"].endswith("/tuningJobs/1000")
    statuses = []
    deadline = time.monotonic() + 60  # poll for the state, generously: the machine may be loaded
    while time.monotonic() < deadline:
        out = cli("status", spec, "--output", "json", "--state", env.state)
        statuses.append(json.dumps(out.json))
        if "succeeded" in statuses[-1]:
            break
    assert "succeeded" in statuses[-1], statuses
    assert len(env.tuning.creates()) == 1


def test_status_without_the_environment_the_spec_used_says_which_variable(cli, env, monkeypatch):
    spec = env.project.example("text")
    text = spec.read_text().replace("  poll_interval: 0.05\n", "  wait: false\n")
    spec.write_text(text.replace("${env:GOOGLE_CLOUD_PROJECT:-my-project}", "${env:GOOGLE_CLOUD_PROJECT}"))
    assert _apply(cli, env, spec).code == 0
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    result = cli("status", "--output", "json", "--state", env.state)
    assert result.code == 0
    [run] = result.json["runs"]
    assert run["status"] in ("pending", "running")  # unknown is not failed
    from tunespec.plugins.host import plugin_host
    from tunespec.state import StateStore

    refreshed = plugin_host().backends()["vertex"].status(StateStore(env.state).get_run(run["run_id"]))
    assert refreshed.status == run["status"]
    assert "TS106" in refreshed.message and "GOOGLE_CLOUD_PROJECT" in refreshed.message


def test_cancel_stops_a_running_job(cli, env):
    spec = env.project.example("text")
    spec.write_text(spec.read_text().replace("  poll_interval: 0.05\n", "  wait: false\n"))
    assert _apply(cli, env, spec).code == 0
    result = cli("cancel", "vertex-text-capitals", "--output", "json", "--state", env.state)
    assert result.code == 0, result.out + result.err
    assert result.json["run"]["status"] == "cancelled"
    assert result.json["run"]["remote_id"].endswith("/tuningJobs/1000")
    [job] = env.tuning.jobs.values()
    assert job.state.name == "JOB_STATE_CANCELLED"
    assert any(r.path.endswith(":cancel") for r in env.tuning.requests)


def test_examples_the_service_truncated_or_dropped_become_warnings(cli, env):
    env.tuning.truncated["vertex-text-capitals"] = [3]
    env.tuning.dropped["vertex-text-capitals"] = ["Example 4 has an unsupported role: function"]
    result = _apply(cli, env, env.project.example("text"))
    assert result.code == 0
    manifest = orjson.loads((resolved(result.json["runs"][0]["run_dir"]) / "manifest.json").read_bytes())
    truncated, dropped = manifest["outputs"]["warnings"]
    assert truncated["code"] == "TS215" and "truncated 1" in truncated["message"] and "[3]" in truncated["message"]
    assert dropped["code"] == "TS203" and "dropped 1" in dropped["message"] and "unsupported role" in dropped["message"]
    assert manifest["metrics"]["total_truncated_example_count"] == 1
    assert manifest["metrics"]["dropped_example_count"] == 1
    assert "2 data warnings" in result.json["runs"][0]["result"]["message"]


def test_missing_credentials_is_a_ts307_diagnostic(cli, env, monkeypatch, tmp_path):
    monkeypatch.delenv("TUNESPEC_VERTEX_ANONYMOUS")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    result = cli("apply", env.project.example("text"), "--yes", "--state", env.state)
    assert result.code == 1
    assert "TS307" in result.out + result.err
    assert "gcloud auth application-default login" in result.out + result.err
    assert not env.tuning.creates()


def test_run_with_a_gs_output_root_is_uploaded_and_verifies(cli, env, monkeypatch):
    monkeypatch.setenv("TUNESPEC_VERTEX_OUTPUT", f"gs://{env.gcs.bucket}/runs")
    result = _apply(cli, env, env.project.example("image"))
    assert result.code == 0, result.out + result.err
    location = secrets.expand(result.json["runs"][0]["run_dir"])[0]
    assert location.startswith(f"gs://{env.gcs.bucket}/runs/vertex-image-colours/")
    names = env.gcs.names("runs/")
    assert any(n.endswith("/manifest.json") for n in names) and any(n.endswith("/request.json") for n in names)
    assert cli("verify", location).code == 0
    # tampering is caught: sha256 of every object is checked against the manifest
    prefix = location.removeprefix(f"gs://{env.gcs.bucket}/")
    env.gcs.client.bucket(env.gcs.bucket).blob(f"{prefix}/request.json").upload_from_string(b"{}")
    assert cli("verify", location).code == 1
