"""`backend.parallelism: fsdp` end to end on the session's embedded 2-CPU Ray cluster
(FSDP2 over gloo): the same loss curve as DDP, recovery of a killed worker from the
sharded (DCP) checkpoint, a published adapter and a published full model that load on one
process, and a tampered sharded checkpoint refused without running its code.

Four trainings in all (a Ray run costs tens of seconds): a DDP LoRA run, an FSDP LoRA run
that loses a worker, and an FSDP full fine-tuning run against the same spec on the local
backend."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from tunespec.artifacts import verify_run

from ray_helpers import apply, losses, only_run, write_spec
from tests.local.test_resume import _RunsCodeWhenUnpickled

pytestmark = pytest.mark.slow

# FSDP and DDP compute the same sums in fp32; only the order of the reductions differs
# (reduce-scatter of gradient shards vs one all-reduce). Measured on 2 CPU workers: LoRA
# FSDP vs DDP identical to the 6 decimals metrics.jsonl keeps; full FSDP vs one local
# process at most 1e-6 apart (rel 1.7e-7). The bound leaves room for other CPUs' summation order.
LOSS_RTOL = 1e-5
EVALUATION = "evaluation:\n  compare_base: true\n  metrics: [json_valid]\n  max_examples: 2\n  max_new_tokens: 8\n"
LORA_BACKEND = "  name: ray\n  num_workers: 2\n  checkpoint_every_steps: 2\n"


@pytest.fixture(scope="module")
def ddp_run(ray_cluster, tiny_project):
    """The reference: the LoRA spec on 2 DDP workers, 6 steps, validated and evaluated."""
    spec = write_spec(tiny_project, LORA_BACKEND + "  parallelism: ddp", name="fsdp-ref-ddp", hyper="  max_steps: 6\n",
                      validation="validation.jsonl", evaluation=EVALUATION)
    assert apply(spec) == 0
    return only_run(spec, "fsdp-ref-ddp")


@pytest.fixture(scope="module")
def fsdp_killed_run(ray_cluster, tiny_project, tmp_path_factory):
    """The same spec with FSDP; rank 1 kills itself after step 3 (once), so Ray Train
    restarts the group from the step-2 sharded checkpoint. Checkpoints are kept to look at."""
    marker = tmp_path_factory.mktemp("fsdp-kill")
    backend = (LORA_BACKEND + "  parallelism: fsdp\n  max_failures: 1\n  keep_checkpoints_after_success: true\n"
               f"  runtime_env: {{env_vars: {{TUNESPEC_RAY_KILL_AT_STEP: '3:{marker}'}}}}")
    spec = write_spec(tiny_project, backend, name="fsdp-killed", hyper="  max_steps: 6\n", validation="validation.jsonl",
                      evaluation=EVALUATION)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")  # Ray Train notices the dead worker sooner
        assert apply(spec) == 0
    assert (marker / "tunespec-ray-killed").is_file(), "the worker was never killed"
    return only_run(spec, "fsdp-killed")


def _sharded_checkpoints(run: Path) -> list[Path]:
    return sorted(p.parent for p in (run / "checkpoints").rglob("step-*/.metadata"))


def test_fsdp_survives_a_killed_worker_and_trains_the_ddp_curve(ddp_run, fsdp_killed_run):
    run = fsdp_killed_run
    manifest, problems = verify_run(run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.status == "succeeded" and manifest.metrics["steps"] == 6
    # Killed after step 3, restarted from the step-2 sharded checkpoint, every step logged once.
    assert manifest.metrics["resumed_from_step"] == 2
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    # The uninterrupted DDP run's curve, resumed steps included, and its validation loss.
    assert losses(run) == pytest.approx(losses(ddp_run), rel=LOSS_RTOL)
    ddp = json.loads((ddp_run / "manifest.json").read_text())
    assert manifest.metrics["final_eval_loss"] == pytest.approx(ddp["metrics"]["final_eval_loss"], rel=LOSS_RTOL)

    # The checkpoints are DCP-sharded: metadata, one shard file per worker, the rest in state.pt.
    # (checkpoints_to_keep 2 counts the final one: step 4 is the last periodic checkpoint kept)
    checkpoints = _sharded_checkpoints(run)
    assert [p.name for p in checkpoints] == ["step-00000004"]
    for folder in checkpoints:
        assert {"__0_0.distcp", "__1_0.distcp", "state.pt", "checkpoint.json"} <= {p.name for p in folder.iterdir()}

    # The driver evaluated the published adapter: the same generations as DDP's adapter.
    assert set(manifest.evaluation) >= {"base", "tuned"}
    fsdp_outputs = json.loads((run / "evaluation" / "tuned.json").read_text())["outputs"]
    ddp_outputs = json.loads((ddp_run / "evaluation" / "tuned.json").read_text())["outputs"]
    assert fsdp_outputs == ddp_outputs


def test_the_published_fsdp_adapter_is_whole_and_gives_the_ddp_logits(tiny_project, ddp_run, fsdp_killed_run):
    """rank 0 saved the gathered adapter, not its shard: it loads with peft on one process and
    computes what the DDP run's adapter computes."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def logits(run: Path) -> torch.Tensor:
        base = AutoModelForCausalLM.from_pretrained(tiny_project / "model", dtype=torch.float32)
        model = PeftModel.from_pretrained(base, run / "adapter").eval()
        with torch.no_grad():
            return model(torch.tensor([[1, 5, 9, 14, 3, 7]])).logits

    base = AutoModelForCausalLM.from_pretrained(tiny_project / "model", dtype=torch.float32).eval()
    with torch.no_grad():
        untrained = base(torch.tensor([[1, 5, 9, 14, 3, 7]])).logits
    fsdp, ddp = logits(fsdp_killed_run), logits(ddp_run)
    assert (fsdp - untrained).abs().max() > 1e-2  # the adapter is trained, not LoRA's zero init
    torch.testing.assert_close(fsdp, ddp, rtol=1e-4, atol=1e-5)


def test_a_sharded_checkpoint_loads_on_one_process_and_a_tampered_one_is_refused(tiny_project, fsdp_killed_run, tmp_path):
    """A checkpoint written by 2 FSDP workers resumes on any number of workers (here one,
    without a process group: DCP reshards); with its `.metadata` replaced by a pickle that
    runs code, it is refused (UnsafeCheckpoint, TS311 in a run) before anything in it runs."""
    import shutil

    import torch

    from tunespec_local.training.checkpoint import UnsafeCheckpoint, restore_state
    from tunespec_local.training.config import TrainConfig
    from tunespec_local.training.loop import make_optimizer, make_scheduler
    from tunespec_local.training.model import build_model

    config = TrainConfig(model_path=str(tiny_project / "model"), output_dir=str(tmp_path), lora_rank=4, lora_alpha=8,
                         lora_dropout=0.0, seed=7)

    def fresh():
        model = build_model(config)
        optimizer = make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
        return model, optimizer, make_scheduler(config, optimizer, 6)

    checkpoint = _sharded_checkpoints(fsdp_killed_run)[-1]
    model, optimizer, scheduler = fresh()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    step, tokens = restore_state(checkpoint, model, optimizer, scheduler, sharded=True)
    assert step == 4 and tokens > 0
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p.detach(), before[n])]
    assert changed, "no trained weight was restored"
    assert optimizer.state, "no optimizer state was restored"

    tampered = tmp_path / "tampered"
    shutil.copytree(checkpoint, tampered)
    marker = tmp_path / "code-ran"
    (tampered / ".metadata").write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(marker)))
    with pytest.raises(UnsafeCheckpoint, match="cannot be loaded safely"):
        restore_state(tampered, *fresh(), sharded=True)
    assert not marker.exists(), "loading the checkpoint unpickled its metadata and ran its code"
    (tampered / ".metadata").write_bytes(b"\x00garbage")
    with pytest.raises(UnsafeCheckpoint):
        restore_state(tampered, *fresh(), sharded=True)
    # Well-formed metadata naming a non-tensor entry, which DCP would load with torch.load(weights_only=False).
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    metadata = pickle.loads((checkpoint / ".metadata").read_bytes())
    metadata.state_dict_metadata["model.payload"] = BytesStorageMetadata()
    (tampered / ".metadata").write_bytes(pickle.dumps(metadata))
    with pytest.raises(UnsafeCheckpoint, match="'model.payload' is not a tensor"):
        restore_state(tampered, *fresh(), sharded=True)


def test_full_fine_tuning_with_fsdp_publishes_a_whole_model_and_trains_the_local_curve(ray_cluster, tiny_project):
    import torch
    from transformers import AutoModelForCausalLM

    def full_spec(backend: str, name: str) -> Path:
        spec = write_spec(tiny_project, backend, name=name, hyper="  max_steps: 4\n")
        text = spec.read_text().replace("  type: peft\n  lora: {rank: 4, alpha: 8, dropout: 0.0}\n", "  type: full\n")
        spec.write_text(text.replace("learning_rate: 0.005", "learning_rate: 0.001"))
        return spec

    local_spec = full_spec("  name: local\n  checkpoint_every: 2", "fsdp-full-local")
    fsdp_spec = full_spec(LORA_BACKEND + "  parallelism: fsdp", "fsdp-full")
    assert apply(local_spec) == 0 and apply(fsdp_spec) == 0
    local_run, run = only_run(local_spec, "fsdp-full-local"), only_run(fsdp_spec, "fsdp-full")
    manifest, problems = verify_run(run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.status == "succeeded" and (run / "model").is_dir() and not (run / "adapter").exists()
    assert losses(run) == pytest.approx(losses(local_run), rel=LOSS_RTOL)

    # model/ holds every weight at full shape (not rank 0's shard) and equals the local run's.
    published = AutoModelForCausalLM.from_pretrained(run / "model", dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(local_run / "model", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_project / "model", dtype=torch.float32)
    ours, theirs, untrained = published.state_dict(), reference.state_dict(), base.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in untrained.items()}
    assert any((ours[k] - untrained[k]).abs().max() > 1e-4 for k in ours)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5, msg=name)
