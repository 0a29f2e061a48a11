"""`tunespec predict` of a Vertex run calls its tuned endpoint (emulated generateContent,
the real google-genai client); export is refused with a diagnostic."""

from __future__ import annotations

import json

import pytest

from tunespec import secrets

from tests.vertex.test_apply import _apply, env, resolved  # noqa: F401  (the env fixture)

pytestmark = pytest.mark.slow


def test_predict_calls_the_runs_tuned_endpoint(cli, env, tmp_path):
    applied = _apply(cli, env, env.project.example("text"))
    assert applied.code == 0, applied.err
    run_dir = resolved(applied.json["runs"][0]["run_dir"])
    endpoint = secrets.expand(json.loads((run_dir / "manifest.json").read_text())["outputs"]["endpoint"])[0]
    validation = env.project.root / "data" / "text-validation.jsonl"
    out = tmp_path / "answers.jsonl"
    result = cli("predict", run_dir, "--input", validation, "--out", out, "--batch-size", 2, "--max-new-tokens", 20)
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    records = [json.loads(line) for line in validation.read_text().splitlines()]
    assert len(lines) == len(records) == 2
    endpoint_id = endpoint.rsplit("/", 1)[1]
    for line, record in zip(lines, records):
        question = next(m["content"] for m in reversed(record["messages"]) if m["role"] == "user")
        assert line["output"] == f"{endpoint_id} says: {question.upper()}"  # this endpoint answered this prompt
        assert line["reference"] == record["messages"][-1]["content"]
    calls = [r for r in env.tuning.requests if r.path.endswith(":generateContent")]
    assert {c.path for c in calls} == {f"/v1beta1/{endpoint}:generateContent"}
    assert calls[0].body["systemInstruction"]["parts"] == [{"text": "Answer with the capital city only."}]
    assert calls[0].body["generationConfig"]["maxOutputTokens"] == 20

    exported = cli("export", run_dir, "--to", "merged")
    assert exported.code == 1 and "TS408" in exported.err  # the tuned model lives in the service


def test_a_vertex_run_is_tracked_with_what_the_job_reported(cli, env, tmp_path):
    """Trackers run when tunespec publishes the run, so a managed job is tracked like a
    local one: here TensorBoard gets the spec and the manifest naming the tuned endpoint."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = env.project.example("text")
    spec.write_text(spec.read_text() + f"tracking:\n  - name: tensorboard\n    path: {tmp_path / 'tb'}\n")
    applied = _apply(cli, env, spec)
    assert applied.code == 0, applied.err
    run_id = applied.json["runs"][0]["run"]["run_id"]
    events = EventAccumulator(str(tmp_path / "tb" / "vertex-text-capitals" / run_id), size_guidance={"tensors": 0})
    events.Reload()
    manifest = json.loads(events.Tensors("manifest/text_summary")[0].tensor_proto.string_val[0].decode().replace("\n    ", "\n"))
    assert manifest["run_id"] == run_id and manifest["outputs"]["endpoint"].endswith("/endpoints/" + manifest["outputs"]["tuning_job"].rsplit("/", 1)[1])
    assert manifest["metrics"]["tuning_step_count"] == 30
