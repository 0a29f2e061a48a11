"""The catalog against Google's published tables (tests/vertex/google_tables.py, written
down from Google's pages, not from catalog.yaml): a wrong entry fails here, and the
emulator holds every job to the same tables, so a wrong catalog also fails end to end."""

from __future__ import annotations

import pytest

from tests.vertex import google_tables as G
from tests.vertex.conftest import spec_text
from tunespec_vertex.catalog import builtin_catalog


def _check(project, **kwargs):
    return project.check(project.spec("job.yaml", spec_text(**kwargs)))


def _errors(checked, code=None):
    return [d for d in checked.diagnostics if d.is_error and (code is None or d.code == code)]


@pytest.mark.parametrize("model", sorted(G.GEMINI))
def test_gemini_entries_match_googles_tables(model):
    entry = builtin_catalog().lookup(model)[1]
    assert set(entry.adapter_sizes) == G.GEMINI[model]["adapter_sizes"]
    assert set(entry.regions) == G.GEMINI[model]["regions"]
    assert entry.methods == ["peft"] and entry.retired is None


@pytest.mark.parametrize("model", sorted(G.OPEN_MODELS))
def test_open_model_entries_match_googles_tables(model):
    entry = builtin_catalog().lookup(model)[1]
    table = G.OPEN_MODELS[model]
    assert set(entry.methods) == set(table["modes"])
    assert {m: entry.sequence_limit(m) for m in entry.methods} == table["modes"]
    assert set(entry.modalities) == table["modalities"]
    assert set(entry.regions) == G.OPEN_MODEL_REGIONS and entry.output_uri


def test_every_tunable_model_of_the_catalog_is_in_googles_tables():
    assert set(builtin_catalog().tunable_ids()) == set(G.GEMINI) | set(G.OPEN_MODELS)


@pytest.mark.parametrize("model", G.RETIRED)
def test_retired_models_are_refused_naming_the_replacement(project, model):
    [problem] = _errors(_check(project, base=model))
    assert problem.code == "TS310" and "retired" in problem.message
    replacement = problem.hint.split("`")[1]
    assert replacement in G.GEMINI
    assert "catalog" not in problem.hint


def test_tuning_is_refused_on_the_global_endpoint(project):
    assert not G.TUNING_ON_GLOBAL_ENDPOINT
    [problem] = _errors(_check(project, location="global"))
    assert problem.code == "TS305" and "global" in problem.message and "us-central1" in problem.hint


@pytest.mark.parametrize(("model", "method"), [("meta/llama3-2@llama-3.2-1b-instruct", "peft"),
                                               ("meta/llama4@llama-4-scout-17b-16e-instruct", "full")])
def test_a_tuning_mode_the_model_lacks_is_refused(project, model, method):
    [problem] = _errors(_check(project, base=model, extra=f"method: {method}\n", backend="  output_uri: gs://out/m\n"))
    assert problem.code == "TS302" and problem.location.path == "method.type"


def test_the_sequence_limit_in_hints_is_the_models_own(project):
    checked = _check(project, base="meta/llama3_1@llama-3.1-8b", backend="  output_uri: gs://out/m\n")  # PEFT: 4,096
    [warning] = [d for d in checked.diagnostics if d.code == "TS304"]
    assert "4,096" in warning.message and "4096" in warning.hint
    assert checked.plan.job["max_tokens_per_example"] == 4096
    scout = _check(project, base="meta/llama4@llama-4-scout-17b-16e-instruct", modality="image", backend="  output_uri: gs://out/m\n")
    assert scout.plan.job["max_tokens_per_example"] == 2048


@pytest.mark.slow
def test_a_wrong_catalog_entry_is_caught_by_the_emulator(cli, project, gcs, tuning, monkeypatch, tmp_path):
    """A catalog that wrongly allows adapter size 16 for 2.5 Pro plans fine, and the
    emulator, which follows Google's table, refuses the job as the service would."""
    monkeypatch.setenv("TUNESPEC_VERTEX_BUCKET", f"gs://{gcs.bucket}/tunespec")
    wrong = "  catalog:\n    models:\n      gemini-2.5-pro:\n        adapter_sizes: [1, 2, 4, 8, 16]\n"
    text = spec_text(base="gemini-2.5-pro", extra="method:\n  type: peft\n  lora:\n    rank: 16\n", backend=wrong)
    spec = project.spec("wrong.yaml", text.replace("gs://placeholder-bucket", f"gs://{gcs.bucket}"))
    result = cli("apply", spec, "--yes", "--output", "json", "--state", tmp_path / "state.db")
    assert result.code == 1
    assert "adapter size 16 is not supported for gemini-2.5-pro" in result.out


@pytest.mark.parametrize("modality", ["text", "image", "audio", "document"])
def test_example_specs_have_the_documented_minimum_of_training_examples(project, modality):
    checked = project.check(project.example(modality))
    assert checked.data.splits["train"].examples >= G.MIN_TRAINING_EXAMPLES
