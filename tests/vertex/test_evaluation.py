"""`evaluation` becomes the job's evaluationConfig where the model and region have it, and
the job's evaluation results and data statistics land in the manifest's evaluation."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.vertex.conftest import spec_text
from tunespec import secrets

EVALUATION = "evaluation:\n  metrics: [exact_match, json_valid]\n  max_new_tokens: 64\n"


def _text_spec(project, location="us-central1", extra=EVALUATION, bucket="gs://placeholder-bucket/tunespec"):
    text = spec_text(name="evaluated", location=location, extra=extra).replace(
        "data/text-train.jsonl", "data/text-train.jsonl\n  validation: data/text-validation.jsonl")
    return project.spec("evaluated.yaml", text.replace("gs://placeholder-bucket/tunespec", bucket))


def test_evaluation_compiles_to_an_evaluation_config(project):
    checked = project.check(_text_spec(project))
    assert checked.ok, [str(d) for d in checked.diagnostics]
    config = checked.plan.job["body"]["supervisedTuningSpec"]["evaluationConfig"]
    assert config == {
        "metrics": [{"exactMatchSpec": {}, "aggregationMetrics": ["AVERAGE"]}],
        "outputConfig": {"gcsDestination": {"outputUriPrefix": "gs://placeholder-bucket/tunespec/evaluations/"}},
        "inferenceGenerationConfig": {"maxOutputTokens": 64},
    }
    warnings = [d for d in checked.diagnostics if d.code == "TS303"]
    assert any("json_valid" in d.message for d in warnings)
    from tunespec_vertex.backend import to_proto

    assert to_proto(checked.plan.job["body"]).supervised_tuning_spec.evaluation_config.metrics[0].aggregation_metrics


def test_no_evaluation_config_where_the_region_lacks_it(project):
    checked = project.check(_text_spec(project, location="europe-west4"))
    assert "evaluationConfig" not in checked.plan.job["body"]["supervisedTuningSpec"]
    assert any(d.code == "TS303" and "europe-west4" in d.message for d in checked.diagnostics)


@pytest.mark.slow
def test_the_jobs_evaluation_lands_in_the_manifest(cli, project, gcs, tuning, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", f"gs://{gcs.bucket}/tunespec")
    spec = _text_spec(project, bucket=f"gs://{gcs.bucket}/tunespec")
    spec.write_text(spec.read_text() + "  poll_interval: 0.05\n")
    result = cli("apply", spec, "--yes", "--output", "json", "--state", tmp_path / "state.db")
    assert result.code == 0, result.out + result.err
    run_dir = secrets.expand(result.json["runs"][0]["run_dir"])[0]
    evaluation = orjson.loads((Path(run_dir) / "manifest.json").read_bytes())["evaluation"]
    assert evaluation["tuned"] == {"exact_match": tuning.exact_match_score}
    assert evaluation["tuning_data_stats"]["supervised_tuning_data_stats"]["tuning_step_count"]
    [run] = evaluation["vertex_evaluation_runs"]
    assert run["evaluate_dataset_response"]["output_info"]["gcs_output_directory"].startswith(f"gs://{gcs.bucket}/tunespec/evaluations/")
