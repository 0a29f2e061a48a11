"""What each Ray Train worker runs: the local backend's training loop, with the Ray Train
implementation of its distribution seam (`tunespec_local.training.TrainEnv`).

    RayTrainEnv                  rank/world size from `ray.train.get_context()`, the model
                                 wrapped as `backend.parallelism` says: DDP through
                                 `ray.train.torch.prepare_model`, or FSDP2 (`fully_shard` per
                                 decoder block, `sharded = True`); collectives through
                                 torch.distributed (the process group Ray Train set up),
                                 checkpoints through `ray.train.report(..., checkpoint=...)`
                                 (with FSDP every worker reports its own shard files and Ray
                                 Train gathers them into one checkpoint folder), resume through
                                 `ray.train.get_checkpoint()`
    train_loop_per_worker(cfg)   opens the tokenised data (data.py: the driver's cache folder,
                                 or the chunks it shipped), runs `train(config, data, env)`:
                                 each worker reads only its share of each step, then reports one last
                                 checkpoint, `final`, holding what rank 0 produced
                                 (adapter/ or model/, metrics.jsonl, result.json); the
                                 driver copies it into the run directory

metrics.jsonl is written by rank 0 and travels inside every checkpoint, so a worker group
that restarts from step N continues a log that holds steps 1..N exactly once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from tunespec.artifacts import MetricsLog

from tunespec_ray.data import worker_data

METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
FINAL_CHECKPOINT = "final"
# Test hook: "STEP[:ATTEMPT_MARKER_DIR]" makes rank 1 (or rank 0 with one worker) kill its
# own process after optimizer step STEP, once, to exercise recovery from a lost worker.
KILL_AT_STEP_ENV = "TUNESPEC_RAY_KILL_AT_STEP"


class RayTrainEnv:
    """The training loop's environment inside a Ray Train worker."""

    def __init__(self, scratch: Path, progress: Any = None, parallelism: str = "ddp"):
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.is_main = self.rank == 0
        self.device = ray.train.torch.get_device()
        self.scratch = scratch
        self.metrics = MetricsLog(scratch / METRICS_FILE)
        self.progress = progress  # actor handle (progress.ProgressSink) or None
        # The loop reads this (`is_sharded`): sharded checkpoints, weights gathered to publish.
        self.sharded = parallelism == "fsdp"
        self._kill_at = _kill_step()

    def prepare_model(self, model: Any) -> Any:
        if self.sharded:
            # FSDP2, not `prepare_model(parallel_strategy="fsdp")`: that is FSDP1's
            # FullyShardedDataParallel, whose flat parameters lump frozen and trainable weights.
            from tunespec_local.training.model import shard_model

            return shard_model(model, self.device)
        import ray.train.torch

        # DDP when there are several workers; with one, only moves the model to the device.
        return ray.train.torch.prepare_model(model, parallel_strategy="ddp")

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def save_checkpoint(self, step: int, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
        """Rank 0 fills a folder (training state + the metrics log so far); every rank reports,
        so Ray Train records the checkpoint once all workers reached this step. Sharded: every
        rank writes its own shard file into its own folder and reports it; Ray Train uploads
        them all into the one checkpoint folder of this step (their names never clash:
        `__<rank>_0.distcp`, and only rank 0 writes `.metadata` and state.pt)."""
        import ray.train

        with tempfile.TemporaryDirectory(prefix="tunespec-ckpt-") as tmp:
            folder = Path(tmp)
            writes = self.sharded or self.is_main
            if writes:
                write(folder)  # sharded: a collective, every rank at once
            if self.is_main and self.metrics.path.exists():
                shutil.copy2(self.metrics.path, folder / METRICS_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(tmp) if writes else None
            ray.train.report(_reportable(metrics), checkpoint=checkpoint, checkpoint_dir_name=f"step-{step:08d}")

    def latest_checkpoint(self) -> Path | None:
        """The newest checkpoint Ray Train recorded (after a restart), copied to this worker.
        Rank 0 also takes the metrics log back from it, cut at the checkpoint's step."""
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        folder = Path(checkpoint.to_directory(str(self.scratch / "restored")))
        if self.is_main and (folder / METRICS_FILE).exists():
            shutil.copy2(folder / METRICS_FILE, self.metrics.path)
            step = json.loads((folder / "checkpoint.json").read_text())["step"]
            self.metrics.truncate_after(step)
        return folder

    def report(self, metrics: dict[str, Any]) -> None:
        if self.is_main:
            self.metrics.append({k: v for k, v in metrics.items() if k != "total_steps"})
            if self.progress is not None:
                self.progress.put.remote(metrics)  # fire and forget
        if self._kill_at is not None and metrics.get("step") == self._kill_at[0]:
            _die_once(self, self._kill_at[1])


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train's entry point on every worker (`TorchTrainer(train_loop_per_worker=...)`)."""
    import dataclasses

    import ray.train

    from tunespec_local.run import quiet_libraries
    from tunespec_local.training import train

    scratch = Path(tempfile.mkdtemp(prefix="tunespec-ray-worker-"))
    try:
        env = RayTrainEnv(scratch, loop_config.get("progress"), loop_config.get("parallelism", "ddp"))
        output = scratch / "output"
        precision = worker_precision(loop_config.get("precision", "auto"), env.device)
        config = dataclasses.replace(loop_config["config"], output_dir=str(output), precision=precision)
        data = worker_data(loop_config["data"], scratch)
        quiet_libraries()
        result = train(config, data, env)
        summary = {**result.summary(), "precision": precision}
        checkpoint = None
        if env.is_main:
            shutil.copy2(env.metrics.path, output / METRICS_FILE)
            (output / RESULT_FILE).write_text(json.dumps(summary))
            checkpoint = ray.train.Checkpoint.from_directory(str(output))
        ray.train.report(_reportable(summary), checkpoint=checkpoint, checkpoint_dir_name=FINAL_CHECKPOINT)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def worker_precision(choice: str, device: Any) -> str:
    """`hyperparameters.precision` on this worker's device: `auto` is bf16 where the GPU
    supports it, else fp32; fp16 needs a GPU."""
    import torch

    bf16_ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if choice == "auto":
        return "bf16" if bf16_ok else "fp32"
    if choice in ("fp16", "bf16") and device.type != "cuda":
        raise ValueError(f"`precision: {choice}` needs a GPU worker; this worker trains on {device.type} (set use_gpu: true)")
    return choice


def _reportable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _kill_step() -> tuple[int, Path] | None:
    import os

    raw = os.environ.get(KILL_AT_STEP_ENV)
    if not raw:
        return None
    step, _, marker_dir = raw.partition(":")
    return int(step), Path(marker_dir or tempfile.gettempdir())


def _die_once(env: RayTrainEnv, marker_dir: Path) -> None:
    """Kill this worker process (SIGKILL: no cleanup, like an OOM kill or a lost node), once.

    Waits a few controller polls first: Ray Train registers a reported checkpoint when its
    controller next polls the workers, and a real failure comes long after the last one."""
    import os
    import signal
    import time

    victim = 1 if env.world_size > 1 else 0
    marker = marker_dir / "tunespec-ray-killed"
    if env.rank != victim or marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    time.sleep(3 * float(os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "2")))
    os.kill(os.getpid(), signal.SIGKILL)
