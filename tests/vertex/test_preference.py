"""Preference tuning on Vertex: the request google-genai sends is the body `plan` printed,
the emulator parses it strictly, and `run:` continues from the upstream's tuned model."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from tests.vertex.conftest import spec_text
from tests.vertex.emulator import EXTENDED_TUNING_JOB
from tunespec import secrets

pytestmark = pytest.mark.slow  # starts emulators


@pytest.fixture
def env(project, gcs, tuning, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", f"gs://{gcs.bucket}/tunespec")
    return type("Env", (), {"project": project, "gcs": gcs, "tuning": tuning, "state": tmp_path / "state.db"})


def canonical(body: dict) -> dict:
    """A request body as the service reads it (proto field names or JSON names alike)."""
    message = EXTENDED_TUNING_JOB()
    json_format.ParseDict(body, message)
    return json_format.MessageToDict(message)


def test_sft_then_preference_continues_the_tuned_model(cli, env):
    text, preference = env.project.example("text"), env.project.root / "preference.yaml"
    plan = cli("plan", text, preference, "--output", "json", "--state", env.state)
    assert plan.json["order"] == ["vertex-text-capitals", "vertex-text-preference"]
    planned = plan.json["specs"][1]["plan"]["job"]["body"]
    assert planned["preTunedModel"] == {"tunedModelName": "<the tuned model of run:vertex-text-capitals>"}
    assert planned["preferenceOptimizationSpec"]["hyperParameters"] == {"adapterSize": "ADAPTER_SIZE_FOUR", "epochCount": 2, "beta": 0.1}

    result = cli("apply", text, preference, "--yes", "--output", "json", "--state", env.state)
    assert result.code == 0, result.out + result.err
    sft, dpo = env.tuning.creates()
    assert "supervisedTuningSpec" in sft.body and "preferenceOptimizationSpec" in dpo.body
    sft_run, dpo_run = (secrets.expand(r["run_dir"])[0] for r in result.json["runs"])
    sft_manifest = json.loads(open(f"{sft_run}/manifest.json").read())
    # What google-genai sent is exactly the body tunespec recorded (placeholders filled;
    # the record keeps ${env:...} references, expanded here as a reader would).
    sent = json.loads(secrets.expand(open(f"{dpo_run}/request.json").read())[0])
    assert canonical(dpo.body) == canonical(sent)
    assert dpo.body["preTunedModel"]["tuned_model_name"] == secrets.expand(sft_manifest["outputs"]["tuned_model"])[0]
    train_uri = dpo.body["preferenceOptimizationSpec"]["trainingDatasetUri"]
    staged = [json.loads(line) for line in env.gcs.read(train_uri.removeprefix(f"gs://{env.gcs.bucket}/")).splitlines()]
    assert staged[2]["completions"] == [{"score": 1, "completion": {"role": "model", "parts": [{"text": "Nairobi"}]}},
                                        {"score": 0, "completion": {"role": "model", "parts": [{"text": "Mombasa"}]}}]
    manifest = json.loads(open(f"{dpo_run}/manifest.json").read())
    assert manifest["status"] == "succeeded" and manifest["outputs"]["tuned_model"]
    assert secrets.expand(manifest["outputs"]["datasets"]["train"])[0] == train_uri
    assert manifest["outputs"]["base_model"] == "gemini-2.5-flash"  # what the continued model was tuned from
    assert cli("verify", dpo_run).code == 0
    again = cli("plan", env.project.root / "text.yaml", preference, "--output", "json", "--state", env.state)
    assert [s["change"]["action"] for s in again.json["specs"]] == ["no-op", "no-op"]


def _problems(project, text: str) -> list[tuple[str, str]]:
    checked = project.check(project.spec("spec.yaml", text))
    return [(d.code, d.location.path) for d in checked.diagnostics if d.is_error]


def test_what_vertex_preference_tuning_cannot_do_is_refused_where_written(project):
    pairs = "data:\n  train: data/preference-train.jsonl\n"
    text = spec_text(base="gemini-2.5-pro", extra="method:\n  objective: preference\n  lora: {rank: 32}\n  preference: {loss: ipo, sft_weight: 1}\n")
    text = text.replace("data:\n  modality: text\n  train: data/text-train.jsonl\n", pairs)
    assert sorted(_problems(project, text)) == [
        ("TS302", "method.lora.rank"), ("TS302", "method.objective"), ("TS303", "method.preference.loss"),
        ("TS303", "method.preference.sft_weight"),
    ]


def test_conversations_are_not_preference_data_on_vertex(project):
    text = spec_text(extra="method:\n  objective: preference\n")
    problems = _problems(project, text)
    assert ("TS233", "$") in problems


def test_the_emulator_reads_what_google_genai_sends_and_refuses_what_the_service_would(tuning):
    """The emulator is only worth its tests if it holds google-genai's preference requests
    to the service's rules: a good one parses into the proto and comes back; the requests
    the service refuses are refused (a 400 google-genai raises as ClientError)."""
    import requests
    from google.genai import errors, types

    from tunespec_vertex.clients import Connection, genai_client

    client = genai_client(Connection("test-project", "us-central1", tuning.endpoint, True, 5))

    def tune(base: str = "gemini-2.5-flash", **config):
        return client.tunings.tune(base_model=base, training_dataset=types.TuningDataset(gcs_uri="gs://b/pairs.jsonl"),
                                   config=types.CreateTuningJobConfig(method="PREFERENCE_TUNING", **config))

    job = tune(adapter_size="ADAPTER_SIZE_EIGHT", beta=0.25, epoch_count=2, tuned_model_display_name="prefers")
    assert tuning.preference_specs[job.name] == {"trainingDatasetUri": "gs://b/pairs.jsonl",
                                                 "hyperParameters": {"adapterSize": "ADAPTER_SIZE_EIGHT", "beta": 0.25, "epochCount": "2"}}
    assert job.preference_optimization_spec.hyper_parameters.beta == 0.25  # and google-genai reads it back
    assert client.tunings.get(name=job.name).preference_optimization_spec.training_dataset_uri == "gs://b/pairs.jsonl"

    refused = {
        "gemini-2.5-pro": dict(base="gemini-2.5-pro"),
        "adapter size ADAPTER_SIZE_THIRTY_TWO": dict(adapter_size="ADAPTER_SIZE_THIRTY_TWO"),
        "beta must be positive": dict(beta=-0.1),
    }
    for message, arguments in refused.items():
        with pytest.raises(errors.ClientError) as caught:
            tune(**arguments)
        assert caught.value.code == 400 and message in str(caught.value), message

    url = f"{tuning.endpoint}/v1beta1/projects/p/locations/us-central1/tuningJobs"
    spec = {"trainingDatasetUri": "gs://b/pairs.jsonl"}
    for body, words in (
        ({"baseModel": "gemini-2.5-flash", "preferenceOptimizationSpec": {**spec, "hyperParameters": {"gamma": 1}}}, "gamma"),
        ({"baseModel": "gemini-2.5-flash", "preferenceOptimizationSpec": spec, "supervisedTuningSpec": spec}, "oneof"),
        ({"baseModel": "gemini-2.5-flash", "preferenceOptimizationSpec": {"trainingDatasetUri": "pairs.jsonl"}}, "gs://"),
    ):
        answer = requests.post(url, json=body, timeout=5)
        assert answer.status_code == 400 and words in answer.text, (body, answer.text)
    assert len(tuning.jobs) == 1
