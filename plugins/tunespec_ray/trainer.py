"""Ray Train objects built from the compiled job dict (`job.compile_job`), and nothing else:
what `plan` printed is exactly what runs."""

from __future__ import annotations

from typing import Any, Callable


def build_trainer(job: dict[str, Any], train_loop: Callable[[dict], Any], loop_config: dict[str, Any]):
    """A `ray.train.torch.TorchTrainer` for a compiled (placeholder-filled) job."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    run = dict(job["run_config"])
    run_config = RunConfig(
        name=run["name"],
        storage_path=run["storage_path"],
        failure_config=FailureConfig(**run["failure_config"]),
        checkpoint_config=CheckpointConfig(**run["checkpoint_config"]),
        logging_config=LoggingConfig(**run["logging_config"]),
        worker_runtime_env=run["worker_runtime_env"],
    )
    return TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        torch_config=TorchConfig(**job["torch_config"]),
        scaling_config=ScalingConfig(**job["scaling_config"]),
        run_config=run_config,
    )
