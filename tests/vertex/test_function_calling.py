"""Function-calling tuning on Vertex: accepted for the Gemini models whose catalog entry
says so, refused for the others, and staged with every top-level field of each example."""

from __future__ import annotations

import json

import orjson
import pytest

from tests.data.test_function_calls import CALL
from tests.vertex.conftest import spec_text


def _write_data(project) -> None:
    second = orjson.loads(orjson.dumps(CALL))
    second["contents"][0]["parts"][0]["text"] = "Weather in Rome?"
    lines = [CALL, second]
    (project.root / "data" / "tools-train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def _spec(project, base: str, backend: str = "") -> object:
    _write_data(project)
    text = spec_text(name="tools", base=base, backend=backend).replace("data/text-train.jsonl", "data/tools-train.jsonl")
    return project.spec("tools.yaml", text)


def test_function_calling_examples_validate_for_a_gemini_model(project):
    checked = project.check(_spec(project, "gemini-2.5-flash"))
    assert checked.ok, [str(d) for d in checked.diagnostics]


def test_function_calling_examples_are_refused_for_a_model_without_it(project):
    checked = project.check(_spec(project, "meta/llama3_1@llama-3.1-8b", backend="  output_uri: gs://out/llama\n"))
    problems = [d for d in checked.diagnostics if d.is_error]
    assert problems and all(d.code == "TS203" for d in problems)
    assert "functionCall" in problems[0].message and problems[0].location.line == 1


@pytest.mark.slow
def test_staging_keeps_every_top_level_field_of_an_example(cli, project, gcs, tuning, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", f"gs://{gcs.bucket}/tunespec")
    spec = _spec(project, "gemini-2.5-flash", backend="  poll_interval: 0.05\n")
    spec.write_text(spec.read_text().replace("gs://placeholder-bucket/tunespec", f"gs://{gcs.bucket}/tunespec"))
    result = cli("apply", spec, "--yes", "--output", "json", "--state", tmp_path / "state.db")
    assert result.code == 0, result.out + result.err
    uri = tuning.creates()[0].body["supervisedTuningSpec"]["trainingDatasetUri"]
    staged = [json.loads(line) for line in gcs.read(uri.removeprefix(f"gs://{gcs.bucket}/")).splitlines()]
    source = [json.loads(line) for line in (project.root / "data" / "tools-train.jsonl").read_text().splitlines()]
    assert staged == source  # tools, generationConfig.mediaResolution, function parts: all kept
