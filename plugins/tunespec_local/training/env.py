"""TrainEnv: the seam between the training loop and where it runs.

`train(config, data, env)` (see `loop.py`) is one loop for every backend that trains
with torch: the local backend runs it in-process with `LocalEnv`; the Ray backend runs it
in each Ray Train worker with an env built on `ray.train` (DDP model, `ray.train.report`
with checkpoints, `ray.train.get_checkpoint`). The loop never asks where it runs; it
only calls what is below.

Contract (all ranks call every method at the same points, in the same order, so an env
may use collectives inside them):

    rank, world_size, is_main   this worker's place; `is_main` writes the final outputs
    device                      torch.device the model and batches go to
    prepare_model(model)        wrap for the environment (DDP) and move to `device`;
                                returns the module to call forward on
    all_reduce_sum(values)      element-wise sum of a list of floats across workers
    save_checkpoint(step, write, metrics)
                                make a checkpoint for `step`: call `write(folder)` to fill
                                a fresh folder, then publish it atomically
    latest_checkpoint()         folder of the newest published checkpoint, or None
    report(metrics)             one metrics record (step, epoch, train_loss, ...,
                                `total_steps`); the env logs and displays it
    sharded                     optional, default False: True when `prepare_model` shards
                                the model (FSDP, e.g. `model.shard_model`). The loop then
                                writes DCP checkpoints, a collective: `save_checkpoint` must
                                call `write` on every rank (each into its own folder or a
                                shared one) and publish the union of their files; and it
                                gathers the full weights on every rank before the main one
                                saves them

Data sharding is not part of the env: the loop gives worker `r` every `world_size`-th
example of each optimizer step's batch (see `batching.py`), so the data order depends
only on the seed, never on the number of workers, and a resumed run repeats it exactly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Protocol

from tunespec.artifacts import MetricsLog


class TrainEnv(Protocol):
    rank: int
    world_size: int
    is_main: bool
    device: Any  # torch.device

    def prepare_model(self, model: Any) -> Any: ...

    def all_reduce_sum(self, values: list[float]) -> list[float]: ...

    def save_checkpoint(self, step: int, write: Callable[[Path], None], metrics: dict[str, Any]) -> None: ...

    def latest_checkpoint(self) -> Path | None: ...

    def report(self, metrics: dict[str, Any]) -> None: ...


CHECKPOINT_PREFIX = "step-"


class LocalEnv:
    """One process on this machine: checkpoints in `<run dir>/checkpoints/step-NNNNNNNN/`,
    metrics appended to `<run dir>/metrics.jsonl`, progress shown through `progress`."""

    rank = 0
    world_size = 1
    is_main = True

    def __init__(self, run_path: Path, device: Any, keep_checkpoints: int = 2, progress: Any = None):
        self.device = device
        self.checkpoints = Path(run_path) / "checkpoints"
        self.metrics = MetricsLog(Path(run_path) / "metrics.jsonl")
        self.keep_checkpoints = keep_checkpoints
        self.progress_task = progress  # a tunespec.progress.Task, or None

    def prepare_model(self, model: Any) -> Any:
        return model.to(self.device)

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        return list(values)

    def latest_checkpoint(self) -> Path | None:
        if not self.checkpoints.is_dir():
            return None
        done = sorted(p for p in self.checkpoints.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX))
        return done[-1] if done else None

    def save_checkpoint(self, step: int, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
        """Write into a hidden temp folder, then rename: a crash mid-write leaves no
        checkpoint that `latest_checkpoint` would pick up. Keeps the newest `keep_checkpoints`."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / f"{CHECKPOINT_PREFIX}{step:08d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=self.checkpoints))
        try:
            write(tmp)
            _fsync_tree(tmp)
            if final.exists():  # the same step saved by an earlier attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for stale in sorted(p for p in self.checkpoints.iterdir() if p.name.startswith(CHECKPOINT_PREFIX))[: -self.keep_checkpoints]:
            shutil.rmtree(stale, ignore_errors=True)
        for leftover in self.checkpoints.glob(f".{CHECKPOINT_PREFIX}*"):  # temp folders of killed attempts
            shutil.rmtree(leftover, ignore_errors=True)

    def truncate_metrics_after(self, step: int) -> None:
        """On resume: drop records of steps after the checkpoint, so each step is logged once."""
        self.metrics.truncate_after(step)

    def report(self, metrics: dict[str, Any]) -> None:
        record = {k: v for k, v in metrics.items() if k != "total_steps"}
        self.metrics.append(record)
        if self.progress_task is not None:
            shown = {k: metrics[k] for k in ("train_loss", "eval_loss", "tokens_per_s") if metrics.get(k) is not None}
            self.progress_task.update(completed=metrics["step"], total=metrics.get("total_steps"), **shown)


class TorchrunEnv(LocalEnv):
    """One process of a `torchrun` group (a multi-GPU machine, a Kubeflow PyTorchJob's pods):
    the process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR,
    DDP over it (gloo on CPU, NCCL on CUDA), checkpoints and metrics in the run folder,
    written by rank 0 (every rank reads the same folder on resume, so across nodes it must
    be on storage they share)."""

    def __init__(self, run_path: Path, device: Any, keep_checkpoints: int = 2, progress: Any = None):
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.is_main = self.rank == 0
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        super().__init__(run_path, device, keep_checkpoints, progress)

    def prepare_model(self, model: Any) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        model = model.to(self.device)
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def save_checkpoint(self, step: int, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
        import torch.distributed as dist

        if self.is_main:
            super().save_checkpoint(step, write, metrics)
        dist.barrier()  # no rank goes on (or stops) before the checkpoint is complete

    def report(self, metrics: dict[str, Any]) -> None:
        if self.is_main:
            super().report(metrics)

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def torchrun_world_size() -> int:
    """How many processes the `torchrun` that started this one runs (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def default_device(choice: str = "auto") -> Any:
    """torch.device for `choice` (auto|cpu|cuda|mps): auto picks CUDA, then MPS, then CPU."""
    import torch

    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(choice)
