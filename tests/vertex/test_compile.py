"""What `tunespec plan` makes of a Vertex spec: the exact request body, a mapping for every
spec field, and located diagnostics from the model catalog. No service is involved."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.vertex.conftest import spec_text
from tunespec.spec.model import TuningJob
from tunespec_vertex.backend import to_proto
from tunespec_vertex.config import VertexConfig

EXPECTED = {
    "text": {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://placeholder-bucket/tunespec/datasets/<sha256>.jsonl",
            "validationDatasetUri": "gs://placeholder-bucket/tunespec/datasets/<sha256>.jsonl",
            "hyperParameters": {"adapterSize": "ADAPTER_SIZE_EIGHT", "epochCount": 3, "learningRateMultiplier": 1.0},
        },
        "tunedModelDisplayName": "vertex-text-capitals",
        "description": "Answer geography questions with the capital city only.",
        "labels": {"team": "ml-platform", "tunespec_spec": "vertex-text-capitals", "tunespec_run": "<run-id>"},
    },
    "image": {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://placeholder-bucket/tunespec/datasets/<sha256>.jsonl",
            "hyperParameters": {"adapterSize": "ADAPTER_SIZE_FOUR", "epochCount": 2},
        },
        "tunedModelDisplayName": "vertex-image-colours",
        "description": "Name the colour that fills an image.",
        "labels": {"tunespec_spec": "vertex-image-colours", "tunespec_run": "<run-id>"},
    },
    "audio": {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://placeholder-bucket/tunespec/datasets/<sha256>.jsonl",
            "hyperParameters": {"adapterSize": "ADAPTER_SIZE_SIXTEEN", "epochCount": 4, "learningRateMultiplier": 2.0},
        },
        "tunedModelDisplayName": "vertex-audio-tones",
        "description": "Classify a tone as high or low.",
        "labels": {"tunespec_spec": "vertex-audio-tones", "tunespec_run": "<run-id>"},
    },
    "document": {
        "baseModel": "gemini-2.5-pro",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://placeholder-bucket/tunespec/datasets/<sha256>.jsonl",
            "hyperParameters": {"adapterSize": "ADAPTER_SIZE_TWO", "epochCount": 3},
        },
        "tunedModelDisplayName": "vertex-document-invoices",
        "description": "Extract the total due from an invoice.",
        "labels": {"tunespec_spec": "vertex-document-invoices", "tunespec_run": "<run-id>"},
    },
}


@pytest.mark.parametrize("modality", ["text", "image", "audio", "document"])
def test_example_specs_compile_to_the_expected_request(project, modality):
    checked = project.check(project.example(modality))
    assert checked.ok, [str(d) for d in checked.diagnostics]
    assert not checked.diagnostics.warning_count, [str(d) for d in checked.diagnostics]
    plan = checked.plan
    body = plan.job["body"]
    fingerprint = body["labels"].pop("tunespec_fingerprint")
    assert fingerprint == checked.spec.fingerprint[:16]
    assert body == EXPECTED[modality]
    assert plan.billable
    assert plan.job["parent"] == "projects/test-project/locations/" + ("europe-west4" if modality == "document" else "us-central1")
    assert plan.job["staged_splits"] == (["train", "validation"] if modality == "text" else ["train"])
    assert "trained_tokens" in plan.summary


@pytest.mark.parametrize("modality", ["text", "image", "audio", "document"])
def test_plan_body_parses_into_the_v1beta1_proto(project, modality):
    body = project.check(project.example(modality)).plan.job["body"]
    job = to_proto(body)  # json_format.ParseDict, unknown fields refused
    hp = job.supervised_tuning_spec.hyper_parameters
    assert job.base_model == body["baseModel"]
    assert hp.adapter_size.name == body["supervisedTuningSpec"]["hyperParameters"]["adapterSize"]
    assert hp.epoch_count == body["supervisedTuningSpec"]["hyperParameters"]["epochCount"]
    assert dict(job.labels) == body["labels"]
    assert job.labels["tunespec_run"] == "<run-id>"


def _leaf_fields(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    from tunespec.spec.model import BackendSpec

    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        inner = next((a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if inner is BackendSpec or name in ("api_version", "kind"):
            continue
        if inner is not None and getattr(annotation, "__origin__", None) is not list:
            out.extend(_leaf_fields(inner, path + "."))
        else:
            out.append(path)
    return out


def test_every_spec_field_is_accounted_for_in_the_plan(project):
    plan = project.check(project.example("text")).plan
    mapped = {m.field for m in plan.mappings}
    spec_fields = set(_leaf_fields(TuningJob)) - {"data.fields.prompt", "data.fields.completion", "data.fields.system"}
    backend_fields = {f"backend.{name}" for name in VertexConfig.model_fields}
    missing = (spec_fields | backend_fields) - mapped
    assert not missing, f"spec fields the plan does not account for: {sorted(missing)}"
    by_field = {m.field: m for m in plan.mappings}
    assert by_field["method.lora.rank"].target == "supervisedTuningSpec.hyperParameters.adapterSize"
    assert by_field["method.lora.dropout"].target is None and "not sent" in by_field["method.lora.dropout"].note


def _check(project, **kwargs):
    return project.check(project.spec("job.yaml", spec_text(**kwargs)))


def _problems(checked, code):
    return [d for d in checked.diagnostics if d.code == code]


def _line_of(project, text):
    lines = (project.root / "job.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


@pytest.mark.parametrize(
    ("base", "rank", "allowed"),
    [("gemini-2.5-flash", 32, "1, 2, 4, 8, 16"), ("gemini-2.5-pro", 16, "1, 2, 4, 8"), ("gemini-3.5-flash", 3, "1, 2, 4, 8, 16")],
)
def test_adapter_size_outside_the_catalog_is_located_at_the_rank(project, base, rank, allowed):
    checked = _check(project, base=base, extra=f"method:\n  type: peft\n  lora:\n    rank: {rank}\n")
    [problem] = _problems(checked, "TS302")
    assert problem.is_error and checked.plan is None
    assert problem.location.path == "method.lora.rank"
    assert problem.location.line == _line_of(project, "rank:")
    assert allowed in problem.hint


def test_retired_model_names_its_replacement(project):
    checked = _check(project, base="gemini-2.0-flash-001")
    [problem] = _problems(checked, "TS310")
    assert problem.location.line == _line_of(project, "base:") and problem.location.path == "model.base"
    assert "2026-06-01" in problem.message and "gemini-2.5-flash" in problem.hint
    [lite] = _problems(_check(project, base="gemini-2.0-flash-lite-001"), "TS310")
    assert "gemini-2.5-flash-lite" in lite.hint


def test_unknown_model_suggests_the_closest_one(project):
    [problem] = _problems(_check(project, base="gemini-2.5-flsh"), "TS301")
    assert "gemini-2.5-flash" in problem.hint


def test_region_the_model_does_not_tune_in(project):
    checked = _check(project, base="gemini-3.5-flash", location="asia-northeast1")
    [problem] = _problems(checked, "TS305")
    assert problem.location.path == "backend.location" and problem.location.line == _line_of(project, "location:")
    assert "us-central1" in problem.hint and "europe-west4" in problem.hint
    assert not _problems(_check(project, base="gemini-2.5-flash", location="asia-northeast1"), "TS305")


KMS = "projects/test-project/locations/us-central1/keyRings/ring/cryptoKeys/key"


def test_cmek_only_where_the_catalog_allows_it(project):
    checked = _check(project, base="gemini-3.5-flash", backend=f"  encryption_key: {KMS}\n")
    [problem] = _problems(checked, "TS312")
    assert problem.location.path == "backend.encryption_key" and problem.location.line == _line_of(project, "encryption_key:")
    ok = _check(project, base="gemini-2.5-flash", backend=f"  encryption_key: {KMS}\n  service_account: tuner@test-project.iam.gserviceaccount.com\n")
    assert ok.ok
    assert ok.plan.job["body"]["encryptionSpec"] == {"kmsKeyName": KMS}
    assert ok.plan.job["body"]["serviceAccount"] == "tuner@test-project.iam.gserviceaccount.com"


def test_catalog_override_from_the_spec_and_from_a_file(project):
    override = "  catalog:\n    models:\n      gemini-3.5-flash:\n        regions: [us-central1, asia-northeast1]\n        cmek: true\n"
    checked = _check(project, base="gemini-3.5-flash", location="asia-northeast1", backend=override + f"  encryption_key: {KMS.replace('us-central1', 'asia-northeast1')}\n")
    assert checked.ok, [str(d) for d in checked.diagnostics]
    (project.root / "catalog.yaml").write_text(textwrap.dedent("""\
        models:
          acme-model-1:
            family: gemini
            methods: [peft]
            adapter_sizes: [4]
            regions: [us-central1]
        data_rules:
          max_examples: {validation: 1}
        """))
    checked = _check(project, base="acme-model-1", extra="method:\n  lora:\n    rank: 4\n", backend="  catalog_file: catalog.yaml\n")
    assert checked.ok, [str(d) for d in checked.diagnostics]
    assert checked.backend.data_rules(checked.spec).max_examples == {"validation": 1}
    broken = _check(project, backend="  catalog:\n    models:\n      gemini-2.5-flash:\n        adapter_sizes: many\n")
    [problem] = _problems(broken, "TS116")
    assert problem.location.path == "backend.catalog"


def test_warns_only_for_non_default_values_vertex_cannot_honour(project):
    quiet = _check(project, extra="method:\n  lora:\n    dropout: 0.05\n    rank: 8\nhyperparameters:\n  seed: 42\n")
    assert quiet.ok and not quiet.diagnostics.warning_count
    loud = _check(project, extra="method:\n  lora:\n    dropout: 0.1\n    alpha: 32\nhyperparameters:\n  seed: 7\n  packing: false\n  batch_size: 16\n")
    assert loud.ok
    warned = {d.location.path for d in loud.diagnostics if d.code == "TS303" and not d.is_error}
    assert warned == {"method.lora.dropout", "method.lora.alpha", "hyperparameters.seed", "hyperparameters.packing", "hyperparameters.batch_size"}
    assert len(loud.plan.warnings) == 5
    dropout = next(d for d in loud.diagnostics if d.location.path == "method.lora.dropout")
    assert dropout.location.line == _line_of(project, "dropout:")


def test_qlora_is_refused_at_the_quantization_field(project):
    checked = _check(project, extra="method:\n  type: peft\n  quantization: nf4\nhyperparameters:\n  activation_checkpointing: true\n")
    assert checked.plan is None
    [error] = [d for d in checked.diagnostics if d.is_error]
    assert error.code == "TS303" and error.location.path == "method.quantization"
    assert error.location.line == _line_of(project, "quantization:")
    assert "local or ray" in error.message
    [warning] = [d for d in checked.diagnostics if not d.is_error]
    assert warning.location.path == "hyperparameters.activation_checkpointing"


def test_fields_that_would_train_something_else_are_errors(project):
    checked = _check(project, extra="hyperparameters:\n  max_steps: 100\n  learning_rate: 0.0002\n")
    errors = {d.location.path: d for d in checked.diagnostics if d.is_error}
    assert set(errors) == {"hyperparameters.max_steps", "hyperparameters.learning_rate"}
    assert "learning_rate_multiplier" in errors["hyperparameters.learning_rate"].hint
    full = _check(project, extra="method: full\n")
    [problem] = _problems(full, "TS302")
    assert problem.location.path == "method.type" and "peft" in problem.hint


def test_open_model_full_tuning_with_learning_rate_batch_size_and_output_uri(project):
    checked = _check(
        project, base="meta/llama3_1@llama-3.1-8b",
        extra="method: full\nhyperparameters:\n  learning_rate: 0.00002\n  batch_size: 16\n  epochs: 2\n",
        backend="  output_uri: gs://out-bucket/llama\n  custom_base_model: gs://weights/llama-ft\n",
    )
    assert checked.ok, [str(d) for d in checked.diagnostics]
    body = checked.plan.job["body"]
    assert body["supervisedTuningSpec"]["tuningMode"] == "TUNING_MODE_FULL"
    assert body["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": 2, "learningRate": 2e-05, "batchSize": 16}
    assert body["outputUri"] == "gs://out-bucket/llama" and body["customBaseModel"] == "gs://weights/llama-ft"
    job = to_proto(body)
    assert job.supervised_tuning_spec.tuning_mode.name == "TUNING_MODE_FULL"
    images = _check(project, base="meta/llama3_1@llama-3.1-8b", modality="image", backend="  output_uri: gs://out-bucket/llama\n")
    [problem] = _problems(images, "TS303")
    assert problem.location.path == "data.modality" and problem.location.line == _line_of(project, "modality:")
    peft = _check(project, base="meta/llama3_1@llama-3.1-8b", extra="method:\n  lora:\n    rank: 16\n")
    [missing] = _problems(peft, "TS313")
    assert "output_uri" in missing.hint


def test_open_model_examples_longer_than_its_sequence_length_are_a_warning(project):
    long = {"messages": [{"role": "user", "content": "word " * 8000}, {"role": "assistant", "content": "ok"}]}
    import json

    (project.root / "data" / "long.jsonl").write_text(json.dumps(long) + "\n")
    text = spec_text(base="meta/llama3_1@llama-3.1-8b", backend="  output_uri: gs://out-bucket/llama\n")
    checked = project.check(project.spec("job.yaml", text.replace("data/text-train.jsonl", "data/long.jsonl")))
    assert checked.ok
    [warning] = _problems(checked, "TS215")
    assert warning.location.path == "data.train" and "4,096" in warning.message  # PEFT on Llama 3.1 8B: Google lists 4,096


def test_examples_over_max_seq_length_are_not_said_to_be_truncated(project):
    """Vertex has no truncation setting: an example over `data.max_seq_length` but within the
    service's limit trains whole, and TS215 says that (not "truncated", not "dropped")."""
    long = {"messages": [{"role": "user", "content": "word " * 2000}, {"role": "assistant", "content": "ok"}]}
    import json

    (project.root / "data" / "long.jsonl").write_text(json.dumps(long) + "\n")
    for modality in ("text", "image"):
        text = spec_text(modality=modality).replace("data/text-train.jsonl", "data/long.jsonl").replace("max_seq_length: 131072", "max_seq_length: 2048")
        checked = project.check(project.spec("job.yaml", text))
        [warning] = _problems(checked, "TS215")
        assert warning.location.line == 1 and not warning.is_error
        assert "over max_seq_length 2,048: this backend does not cut examples to max_seq_length" in warning.message
        assert "truncated" not in warning.message and "dropped" not in warning.message
        assert _problems(checked, "TS304")  # and the spec's max_seq_length is reported as not applied


def test_continued_tuning_of_a_tuned_model(project):
    tuned = "projects/test-project/locations/us-central1/models/4242@1"
    checked = _check(project, base=tuned, backend="  checkpoint_id: '2'\n  pre_tuned_base_model: gemini-2.5-flash\n")
    assert checked.ok, [str(d) for d in checked.diagnostics]
    body = checked.plan.job["body"]
    assert body["preTunedModel"] == {"tunedModelName": tuned, "checkpointId": "2"} and "baseModel" not in body
    assert to_proto(body).pre_tuned_model.checkpoint_id == "2"
    unknown_base = _check(project, base=tuned)
    assert unknown_base.ok and [d.location.path for d in _problems(unknown_base, "TS301")] == ["model.base"]
    bad = _check(project, base=tuned, extra="method:\n  lora:\n    rank: 16\n", backend="  pre_tuned_base_model: gemini-2.5-pro\n")
    assert _problems(bad, "TS302")
    stray = _check(project, backend="  checkpoint_id: '2'\n")
    assert [d.location.path for d in _problems(stray, "TS115")] == ["backend.checkpoint_id"]
    elsewhere = _check(project, base=tuned, location="europe-west4", backend="  pre_tuned_base_model: gemini-2.5-flash\n")
    [problem] = _problems(elsewhere, "TS305")
    assert problem.location.path == "backend.location" and "us-central1" in problem.hint


def test_labels_are_sanitised_and_validated(project):
    checked = _check(project, extra="", backend="  labels:\n    Cost Center: R&D 42\n")
    assert checked.ok
    labels = checked.plan.job["body"]["labels"]
    assert labels["cost-center"] == "r-d-42"
    bad = _check(project, backend="  labels:\n    9lives: x\n    tunespec_run: mine\n    owner: " + "x" * 64 + "\n")
    paths = sorted(d.location.path for d in _problems(bad, "TS116"))
    assert paths == ["backend.labels.9lives", "backend.labels.owner", "backend.labels.tunespec_run"]


def test_missing_staging_bucket_for_local_data(project):
    text = spec_text().replace("  staging_bucket: gs://placeholder-bucket/tunespec\n", "")
    checked = project.check(project.spec("job.yaml", text))
    [problem] = _problems(checked, "TS313")
    assert problem.location.path == "data.train" and "staging_bucket" in problem.hint


def test_gemini_jsonl_already_in_cloud_storage_is_used_as_is(project):
    from tunespec.data import DataFile, DataReport
    from tunespec_vertex.compile import compile_job

    uri = "gs://data-bucket/train.jsonl"
    spec = project.load(project.spec("job.yaml", spec_text().replace("data/text-train.jsonl", uri)))

    def report(fmt: str) -> DataReport:
        file = DataFile(path=uri, split="train", format=fmt, bytes=10, sha256="md5:x")
        return DataReport(max_seq_length=131072, tokens_estimated=True, token_counter="estimate", files=[file])

    compiled = compile_job(spec, report("gemini"))
    assert compiled.body["supervisedTuningSpec"]["trainingDatasetUri"] == uri and compiled.staged_splits == []
    converted = compile_job(spec, report("openai"))  # OpenAI records in the bucket: converted and staged
    assert converted.staged_splits == ["train"]
    assert converted.body["supervisedTuningSpec"]["trainingDatasetUri"].startswith("gs://placeholder-bucket/tunespec/datasets/")


def test_vertex_data_limits_reach_data_validation(project):
    lines = "".join('{"contents": [{"role": "user", "parts": [{"text": "q%d"}]}, {"role": "model", "parts": [{"text": "a"}]}]}\n' % i for i in range(5001))
    (project.root / "data" / "big-validation.jsonl").write_text(lines)
    checked = project.check(project.spec(
        "job.yaml", spec_text().replace("  max_seq_length", "  validation: data/big-validation.jsonl\n  max_seq_length")))
    assert [d.code for d in checked.diagnostics if d.is_error] == ["TS216"]
    images = project.root / "data" / "many-images.jsonl"
    parts = [{"fileData": {"mimeType": "image/png", "fileUri": "images/red.png"}}] * 31
    import json

    images.write_text(json.dumps({"contents": [{"role": "user", "parts": parts}, {"role": "model", "parts": [{"text": "red"}]}]}) + "\n")
    checked = project.check(project.spec("job.yaml", spec_text(modality="image").replace("data/text-train.jsonl", "data/many-images.jsonl")))
    assert "TS212" in [d.code for d in checked.diagnostics if d.is_error]


def test_plan_imports_no_google_cloud_or_protobuf(project):
    code = textwrap.dedent(f"""
        import sys
        from tunespec.pipeline import check_spec, load_specs
        from tunespec.plugins.host import plugin_host
        from tunespec.progress import Progress
        specs, _ = load_specs([{str(project.example("image"))!r}], plugin_host())
        checked = check_spec(specs[0], plugin_host(), None, Progress(enabled=False))
        assert checked.ok, [str(d) for d in checked.diagnostics]
        heavy = [m for m in sys.modules if m.startswith(("google.cloud.", "google.protobuf", "google.api_core", "grpc"))]
        print(heavy)
        """)
    # Only this plugin is under test here: other backends are disabled in the child process.
    env = {**os.environ, "TUNESPEC_DISABLE_PLUGINS": "local,ray"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
