"""What the request leaves to the service, and the combinations the service refuses:
values the spec does not set are not sent (the plan says the service chooses), a learning
rate and a multiplier never travel together, `outputUri` only for models that take it,
and the KMS key must be in the job's region."""

from __future__ import annotations

from tests.vertex.conftest import spec_text


def _check(project, **kwargs):
    return project.check(project.spec("job.yaml", spec_text(**kwargs)))


def _errors(checked, code):
    return [d for d in checked.diagnostics if d.code == code and d.is_error]


def test_unset_epochs_and_adapter_size_are_left_to_the_service(project):
    checked = _check(project)  # no hyperparameters, no method block
    assert checked.ok, [str(d) for d in checked.diagnostics]
    spec = checked.plan.job["body"]["supervisedTuningSpec"]
    assert "hyperParameters" not in spec  # no epochCount, adapterSize or multiplier
    chooses = checked.plan.summary["service_chooses"]
    assert "epochs" in chooses and "adapter size" in chooses and "learning rate" in chooses
    notes = {m.field: m.note for m in checked.plan.mappings}
    assert "service chooses" in notes["hyperparameters.epochs"]


def test_epochs_and_rank_the_spec_sets_are_sent(project):
    checked = _check(project, extra="method:\n  type: peft\n  lora:\n    rank: 8\nhyperparameters:\n  epochs: 3\n")
    assert checked.ok, [str(d) for d in checked.diagnostics]
    hp = checked.plan.job["body"]["supervisedTuningSpec"]["hyperParameters"]
    assert hp == {"epochCount": 3, "adapterSize": "ADAPTER_SIZE_EIGHT"}
    assert "service_chooses" not in checked.plan.summary or "epochs" not in checked.plan.summary["service_chooses"]


def test_learning_rate_and_multiplier_are_never_both_sent(project):
    from tunespec.pipeline import load_specs
    from tunespec.plugins.host import plugin_host

    path = project.spec("job.yaml", spec_text(base="meta/llama3_1@llama-3.1-8b",
                                              extra="hyperparameters:\n  learning_rate: 0.00002\n  learning_rate_multiplier: 2.0\n",
                                              backend="  output_uri: gs://out/llama\n"))
    _, problems = load_specs([path], plugin_host())
    assert any(p.code == "TS115" and "not both" in p.message for p in problems)
    lr = _check(project, base="meta/llama3_1@llama-3.1-8b", extra="hyperparameters:\n  learning_rate: 0.00002\n",
                backend="  output_uri: gs://out/llama\n")
    hp = lr.plan.job["body"]["supervisedTuningSpec"]["hyperParameters"]
    assert hp == {"learningRate": 2e-05}


def test_output_uri_is_refused_for_a_model_that_does_not_take_it(project):
    checked = _check(project, backend="  output_uri: gs://out/gemini\n")
    [problem] = _errors(checked, "TS303")
    assert "output_uri" in problem.message and problem.location.path == "backend.output_uri"


def test_open_model_batch_size_is_sent_only_when_set(project):
    unset = _check(project, base="meta/llama3_1@llama-3.1-8b", extra="method: full\n", backend="  output_uri: gs://out/llama\n")
    assert unset.ok, [str(d) for d in unset.diagnostics]
    assert "batchSize" not in unset.plan.job["body"]["supervisedTuningSpec"].get("hyperParameters", {})


def test_a_kms_key_in_another_region_is_refused(project):
    key = "projects/test-project/locations/europe-west4/keyRings/r/cryptoKeys/k"
    checked = _check(project, backend=f"  encryption_key: {key}\n")
    [problem] = _errors(checked, "TS312")
    assert "europe-west4" in problem.message and "us-central1" in problem.hint
    same = _check(project, backend=f"  encryption_key: {key.replace('europe-west4', 'us-central1')}\n")
    assert same.ok, [str(d) for d in same.diagnostics]
