"""The Ray Train job a spec compiles to, as plain JSON-able data (no Ray import).

`compile_job` is the single place that decides every Ray setting: `tunespec plan` prints its
result and `apply` builds the Ray objects from that same dict (`trainer.build_trainer`), so
what the plan shows is what runs. Values only known when a run starts (its id and staging
folder) appear as the placeholders `{run_id}` and `{run_dir}`; `fill_placeholders` replaces
them at apply time.
"""

from __future__ import annotations

import shlex
from typing import Any

from tunespec import FieldMapping, ResolvedSpec

from tunespec_ray.config import RayConfig

TRAIN_LOOP = "tunespec_ray.worker:train_loop_per_worker"
RUN_ID = "{run_id}"
RUN_DIR = "{run_dir}"
# With no `storage_path`, Ray Train's experiment folder is the run's `checkpoints/` folder.
DEFAULT_EXPERIMENT_NAME = "checkpoints"
# Env var that makes `apply` on the cluster run attached (set on detached Ray jobs).
ATTACHED_ENV = "TUNESPEC_RAY_ATTACHED"


def compile_job(spec: ResolvedSpec, config: RayConfig, verbose: bool, training: dict[str, Any]) -> dict[str, Any]:
    """The exact Ray Train job: trainer, scaling, run, failure, checkpoint and cluster settings,
    plus `training`: the local backend's compiled training plan (model, loop settings,
    evaluation) that every worker runs."""
    job: dict[str, Any] = {
        **{key: training[key] for key in ("model", "training", "evaluation") if key in training},
        "trainer": "ray.train.torch.TorchTrainer",
        "train_loop_per_worker": TRAIN_LOOP,
        "torch_config": {"backend": "nccl" if config.use_gpu else "gloo"},
        "scaling_config": scaling_config(config),
        "parallelism": parallelism(config),
        "run_config": run_config(spec, config, verbose),
        "cluster": cluster_settings(config, verbose),
        "per_worker": {
            "batch_size": per_worker_batch(spec, config),
            "micro_batch_size": min(spec.job.hyperparameters.micro_batch_size or spec.job.hyperparameters.batch_size,
                                    per_worker_batch(spec, config)),
            "checkpoint_every_steps": training.get("runtime", {}).get("checkpoint_every", config.checkpoint_every_steps),
        },
    }
    if not config.wait:
        job["submission"] = submission(spec, config)
    return job


def scaling_config(config: RayConfig) -> dict[str, Any]:
    """`ray.train.ScalingConfig` keyword arguments."""
    return {
        "num_workers": config.num_workers,
        "use_gpu": config.use_gpu,
        "resources_per_worker": config.worker_resources,
        "placement_strategy": config.placement_strategy,
    }


def parallelism(config: RayConfig) -> dict[str, Any]:
    """How every worker wraps the model and what its checkpoints look like (worker.py reads
    `strategy`; the rest says what it means)."""
    if config.parallelism == "fsdp":
        return {
            "strategy": "fsdp",
            "wrap": "torch.distributed.fsdp.fully_shard on each decoder block (_no_split_modules), then the root",
            "checkpoints": "sharded: torch.distributed.checkpoint, one file per worker, every worker reports its shard",
            "publish": "rank 0 saves the full weights gathered with get_model_state_dict(full_state_dict=True)",
        }
    return {
        "strategy": "ddp",
        "wrap": "ray.train.torch.prepare_model(parallel_strategy='ddp')",
        "checkpoints": "rank 0 writes the whole training state",
        "publish": "rank 0 saves its copy of the weights",
    }


def run_config(spec: ResolvedSpec, config: RayConfig, verbose: bool) -> dict[str, Any]:
    """`ray.train.RunConfig` keyword arguments, nested configs as dicts."""
    if config.storage_path is None:
        storage_path, name = RUN_DIR, DEFAULT_EXPERIMENT_NAME
    else:
        storage_path, name = spec.resolve_path(config.storage_path), f"{spec.name}-{RUN_ID}"
    return {
        "name": name,
        "storage_path": storage_path,
        "failure_config": {"max_failures": config.max_failures},
        "checkpoint_config": {"num_to_keep": config.checkpoints_to_keep},
        "logging_config": {"log_level": "INFO" if verbose else "WARNING"},
        "worker_runtime_env": worker_runtime_env(spec, config, verbose),
    }


def worker_runtime_env(spec: ResolvedSpec, config: RayConfig, verbose: bool) -> dict[str, Any]:
    """The workers' Ray runtime environment: the user's pip packages and env vars, plus what
    keeps worker logs quiet."""
    env_vars = dict(config.runtime_env.env_vars)
    if not verbose:
        # Transformers and tokenizers print warnings per worker; tunespec reports progress itself.
        env_vars.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env_vars.setdefault("TOKENIZERS_PARALLELISM", "false")
    runtime_env: dict[str, Any] = {"env_vars": env_vars}
    if config.runtime_env.pip:
        runtime_env["pip"] = list(config.runtime_env.pip)
    if config.runtime_env.working_dir is not None:
        runtime_env["working_dir"] = spec.resolve_path(config.runtime_env.working_dir)
    return runtime_env


def cluster_settings(config: RayConfig, verbose: bool) -> dict[str, Any]:
    """How the driver reaches Ray: `ray.init` arguments and the log settings that quiet it."""
    quiet_env = {} if verbose else {"RAY_DEDUP_LOGS": "1", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    if config.embedded:
        init = {
            "address": "local",  # always a new cluster for this run, even if RAY_ADDRESS is set
            "num_cpus": config.embedded_num_cpus,
            "num_gpus": int(config.total_resources.get("GPU", 0)) or None,
            "include_dashboard": False,
        }
        mode = "embedded"
    else:
        init = {"address": config.address}
        mode = "existing"
    init.update({"log_to_driver": verbose, "logging_level": "INFO" if verbose else "ERROR"})
    return {
        "mode": mode,
        "init": {k: v for k, v in init.items() if v is not None},
        "env": quiet_env,
        "shutdown_after": config.embedded,
    }


def submission(spec: ResolvedSpec, config: RayConfig) -> dict[str, Any]:
    """A detached run: the Ray Jobs API request. The entrypoint (`tunespec_ray.remote`) checks
    and runs this same spec on the cluster, attached to it (`address: auto`), and writes the
    run's files to `result_uri`, where `tunespec status` picks them up."""
    working_dir = spec.resolve_path(config.runtime_env.working_dir or ".")
    spec_rel = _relative_to(str(spec.file), working_dir)
    env_vars = {**config.runtime_env.env_vars, ATTACHED_ENV: "1"}
    runtime_env: dict[str, Any] = {"working_dir": working_dir, "env_vars": env_vars}
    if config.runtime_env.pip:
        runtime_env["pip"] = list(config.runtime_env.pip)
    storage = spec.resolve_path(config.storage_path or ".").rstrip("/")
    result_uri = f"{storage}/{spec.name}-{RUN_ID}/result"
    entrypoint = f"python -m tunespec_ray.remote {shlex.quote(spec_rel)} --run-id {RUN_ID} --result {shlex.quote(result_uri)}"
    return {
        "api": "ray.job_submission.JobSubmissionClient.submit_job",
        "address": config.jobs_address or "auto",
        "submission_id": submission_id(spec.name),
        "entrypoint": entrypoint,
        "runtime_env": runtime_env,
        "metadata": {"tunespec_spec": spec.name, "tunespec_run_id": RUN_ID},
        "result_uri": result_uri,
    }


def submission_id(spec_name: str) -> str:
    """The Ray job id: derived from the run, so a retried apply finds its job instead of
    submitting a second one."""
    return f"tunespec-{spec_name}-{RUN_ID}"


def per_worker_batch(spec: ResolvedSpec, config: RayConfig) -> int:
    """The most examples one worker takes per optimizer step: worker r takes every
    num_workers-th example of the step's batch, so the global batch is exactly batch_size."""
    return -(-spec.job.hyperparameters.batch_size // config.num_workers)


def mappings(spec: ResolvedSpec, config: RayConfig) -> list[FieldMapping]:
    """How the spec's fields reach Ray Train (printed by `plan`)."""
    hp = spec.job.hyperparameters
    out = [
        FieldMapping(
            field="hyperparameters.batch_size",
            target="per-worker batch",
            value=per_worker_batch(spec, config),
            note=f"up to; the global batch {hp.batch_size} is split over {config.num_workers} workers and the loss is "
            "the mean over all its trained tokens, so the run trains as on one process",
        ),
        FieldMapping(field="backend.num_workers", target="ScalingConfig.num_workers", value=config.num_workers),
        FieldMapping(
            field="backend.parallelism",
            target="fully_shard (FSDP2) per decoder block" if config.parallelism == "fsdp" else "DistributedDataParallel",
            value=config.parallelism,
            note=f"weights, gradients and optimizer state sharded over the {config.num_workers} workers; sharded "
            "checkpoints; the published weights are gathered in full" if config.parallelism == "fsdp"
            else "every worker holds the whole model; gradients all-reduced",
        ),
        FieldMapping(field="backend.max_failures", target="FailureConfig.max_failures", value=config.max_failures),
        FieldMapping(
            field="backend.checkpoints_to_keep", target="CheckpointConfig.num_to_keep", value=config.checkpoints_to_keep
        ),
        FieldMapping(
            field="output.path",
            target="artifact directory",
            value=spec.output_root,
            note="rank 0 writes the adapter/model and metrics.jsonl; the driver copies them into the run",
        ),
    ]
    if config.storage_path is not None:
        out.append(
            FieldMapping(field="backend.storage_path", target="RunConfig.storage_path", value=spec.resolve_path(config.storage_path))
        )
    return out


def fill_placeholders(value: Any, run_id: str, run_dir: str) -> Any:
    """Replace `{run_id}` and `{run_dir}` everywhere in a compiled job."""
    if isinstance(value, str):
        return value.replace(RUN_ID, run_id).replace(RUN_DIR, run_dir)
    if isinstance(value, dict):
        return {k: fill_placeholders(v, run_id, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(v, run_id, run_dir) for v in value]
    return value


def _relative_to(path: str, folder: str) -> str:
    from pathlib import Path

    try:
        return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return path
