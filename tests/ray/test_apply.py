"""The ray backend end to end on a real embedded Ray cluster (2 CPUs, started once for the
session): a LoRA run on 2 workers, recovery from a killed worker, and the same loss curve
as the local backend. Each test trains the tiny random-init model for a few steps."""

from __future__ import annotations

import json

import pytest

from tunespec.artifacts import verify_run

from ray_helpers import apply, losses, only_run, write_spec

pytestmark = pytest.mark.slow

EVALUATION = "evaluation:\n  compare_base: true\n  metrics: [json_valid]\n  max_examples: 2\n  max_new_tokens: 8\n"


@pytest.fixture(scope="module")
def local_run(tiny_project):
    """The reference: the same spec on the local backend (6 steps, one checkpoint interval)."""
    spec = write_spec(tiny_project, "  name: local\n  checkpoint_every: 2", name="parity-local", hyper="  max_steps: 6\n")
    assert apply(spec) == 0
    return only_run(spec, "parity-local")


def test_two_workers_train_a_lora_adapter_with_the_local_artifact_contract(ray_cluster, tiny_project, local_run):
    spec = write_spec(tiny_project, "  name: ray\n  num_workers: 2\n  checkpoint_every_steps: 2", name="ray-two",
                      hyper="  max_steps: 6\n", validation="validation.jsonl", evaluation=EVALUATION)
    assert apply(spec) == 0
    run = only_run(spec, "ray-two")

    manifest, problems = verify_run(run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.backend == "ray" and manifest.status == "succeeded"
    assert manifest.metrics["steps"] == 6
    # Same layout as a local run: adapter/, metrics.jsonl, evaluation/, no leftover checkpoints.
    files = {f.path.split("/")[0] for f in manifest.files}
    assert {"adapter", "metrics.jsonl", "evaluation", "spec.yaml"} <= files
    assert "checkpoints" not in files
    local_manifest = json.loads((local_run / "manifest.json").read_text())
    assert set(manifest.model_dump()) == set(local_manifest)
    assert set(manifest.metrics) == set(local_manifest["metrics"])
    assert set(manifest.evaluation) >= {"base", "tuned", "metrics", "outputs"}

    # metrics.jsonl comes from rank 0 alone: each step once, in order.
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    # DDP over 2 workers computes the same global token-mean loss as one process.
    assert losses(run) == pytest.approx(losses(local_run), rel=2e-3)

    # The adapter loads with peft onto the base model and generates.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_project / "model")
    model = PeftModel.from_pretrained(base, run / "adapter")
    assert model.peft_config["default"].r == 4
    with torch.no_grad():
        out = model.generate(torch.tensor([[1, 5, 9]]), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > 3


def test_a_killed_worker_restarts_from_the_last_checkpoint(ray_cluster, tiny_project, local_run, tmp_path, monkeypatch):
    # Ray Train's controller polls workers every 0.5 s instead of 2 s: recovery is quicker.
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    marker = tmp_path / "kill-marker"
    backend = (
        "  name: ray\n  num_workers: 2\n  max_failures: 1\n  checkpoint_every_steps: 2\n"
        f"  runtime_env: {{env_vars: {{TUNESPEC_RAY_KILL_AT_STEP: '3:{marker}'}}}}"
    )
    spec = write_spec(tiny_project, backend, name="ray-fault", hyper="  max_steps: 6\n")
    assert apply(spec) == 0
    assert (marker / "tunespec-ray-killed").is_file(), "the worker was never killed"
    run = only_run(spec, "ray-fault")

    manifest, problems = verify_run(run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.status == "succeeded"
    # Killed after step 3, restarted from the step-2 checkpoint, finished all 6 steps.
    assert manifest.metrics["steps"] == 6
    assert manifest.metrics["resumed_from_step"] == 2
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    # Resuming repeats the interrupted steps exactly: the loss curve is the uninterrupted one.
    assert losses(run) == pytest.approx(losses(local_run), rel=2e-3)


def test_one_worker_gives_the_local_loss_curve(ray_cluster, tiny_project, local_run):
    spec = write_spec(tiny_project, "  name: ray\n  num_workers: 1\n  checkpoint_every_steps: 2", name="parity-ray",
                      hyper="  max_steps: 6\n")
    assert apply(spec) == 0
    run = only_run(spec, "parity-ray")
    assert len(losses(run)) == 6
    assert losses(run) == pytest.approx(losses(local_run), rel=1e-3)
    local = json.loads((local_run / "manifest.json").read_text())
    ray = json.loads((run / "manifest.json").read_text())
    assert ray["metrics"]["final_train_loss"] == pytest.approx(local["metrics"]["final_train_loss"], rel=1e-3)


def test_an_existing_cluster_gets_the_tokenised_cache_in_chunks_and_trains_the_local_curve(ray_cluster, tiny_project, local_run):
    """`address: auto` (this session's cluster, as an existing one): the driver does not hand
    the workers a path they may not see, nor the examples; it ships the cache's files
    through the object store in chunks, each worker writes them to its node's disk and
    reads its own share of each step from there."""
    spec = write_spec(tiny_project, "  name: ray\n  address: auto\n  num_workers: 2\n  checkpoint_every_steps: 2", name="ray-shipped",
                      hyper="  max_steps: 6\n")
    assert apply(spec) == 0
    run = only_run(spec, "ray-shipped")
    manifest, problems = verify_run(run)
    assert not problems.has_errors, problems.to_json()
    local = json.loads((local_run / "manifest.json").read_text())
    assert manifest.status == "succeeded" and manifest.metrics["train_examples"] == local["metrics"]["train_examples"] == 23
    assert losses(run) == pytest.approx(losses(local_run), rel=2e-3)
