"""LocalConfig: the options of the `local` backend, written in the spec's `backend:` block.

    backend:
      name: local
      device: auto
      checkpoint_every: 50
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto",
        description="Where to train: `auto` picks CUDA, then Apple MPS, then the CPU. With `precision: auto`, "
        "CUDA devices that support bf16 and CPUs with native bf16 instructions (AVX-512 BF16, AMX) train in "
        "bf16 autocast, everything else in fp32 (emulated bf16 is slower than fp32).",
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads torch uses for training and evaluation (`torch.set_num_threads`). "
        "Default: torch's own choice (the number of physical cores).",
    )
    checkpoint_every: int = Field(
        default=50,
        ge=0,
        description="Save a resumable checkpoint (trainable weights, optimizer, schedule, RNG) every this many "
        "optimizer steps into the run's `checkpoints/`. 0 saves only when interrupted (Ctrl-C). An interrupted "
        "run resumes from the newest checkpoint on the next `tunespec apply`.",
    )
    keep_checkpoints: int = Field(
        default=2, ge=1, le=1000, description="How many of the newest checkpoints to keep; older ones are deleted."
    )
    keep_checkpoints_after_success: bool = Field(
        default=False,
        description="Keep `checkpoints/` in the published run when training succeeds. Default: delete them, "
        "since the adapter or model is the result and checkpoints can be large.",
    )
    log_every: int = Field(default=1, ge=1, description="Write a metrics.jsonl record every this many optimizer steps.")
    dataloader_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Background processes that collate batches (torch DataLoader `num_workers`). 0 collates in "
        "the training process, which is enough unless a fast GPU waits for batches.",
    )
    pin_memory: bool | Literal["auto"] = Field(
        default="auto",
        description="Collate batches into page-locked memory for faster host-to-GPU copies (DataLoader "
        "`pin_memory`). `auto`: on for CUDA, off otherwise.",
    )
    eval_batch_size: int = Field(
        default=16, ge=1, le=4096, description="Validation examples generated at once during evaluation (left-padded batches)."
    )
    check_memory: bool = Field(
        default=True,
        description="`validate` and `plan` estimate the job's peak memory (weights, gradients, optimizer state, "
        "activations) and compare it with the device's (the GPU's, or this machine's RAM for the CPU): a job that "
        "does not fit is refused (TS320) with the cheapest changes that would make it fit, one that fits only just "
        "is warned about. `false`: print the estimate, refuse nothing.",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Where converted models (GGUF -> Hugging Face folder) are cached. Default: $TUNESPEC_CACHE_DIR, "
        "else ~/.cache/tunespec.",
    )
