"""TrainConfig: everything the training loop needs, as plain picklable values.

The local backend builds it from the spec (`TrainConfig.from_spec`); the Ray backend
builds the same object and ships it to its workers. It holds no spec objects and no
tensors, so it pickles cheaply and prints readably in a plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence


@dataclass
class TrainConfig:
    model_path: str
    """A Hugging Face model folder (the resolved, materialised base model)."""
    output_dir: str
    """Where the main worker writes `adapter/` (peft) or `model/` (full) when training ends."""
    method: Literal["peft", "full"] = "peft"
    objective: Literal["sft", "preference"] = "sft"
    """What the loop learns (see objectives.py): sft on conversations, preference (DPO) on pairs."""
    beta: float = 0.1
    """Preference: the DPO temperature (IPO's tau for `preference_loss: ipo`)."""
    preference_loss: Literal["sigmoid", "ipo"] = "sigmoid"
    sft_weight: float = 0.0
    """Preference: weight of the preferred responses' mean token NLL added to the loss (RPO)."""
    lora_rank: int = 8
    lora_alpha: float = 16
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    learning_rate: float = 2e-4
    optimizer: Literal["adamw", "adamw_8bit", "sgd", "adafactor"] = "adamw"
    weight_decay: float = 0.0
    lr_scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_ratio: float = 0.03
    max_grad_norm: float | None = 1.0
    batch_size: int = 8
    """Examples per optimizer step, across all workers."""
    micro_batch_size: int = 8
    """Examples per forward pass on one worker; gradients accumulate up to `batch_size`."""
    epochs: int = 1
    max_steps: int | None = None
    packing: bool = True
    seed: int = 42
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    quantization: Literal["none", "nf4", "int8"] = "none"
    """QLoRA: the frozen base in 4-bit NF4 or 8-bit (bitsandbytes); see training/model.py."""
    modality: Literal["text", "image", "audio", "document"] = "text"
    """`data.modality`: anything but text loads the model with its processor (tunespec_local.media)."""
    media_encoder: Literal["frozen", "trained"] = "frozen"
    """Multimodal: whether the media encoder and projector train in full (media/family.py)."""
    activation_checkpointing: bool = False
    """Recompute each decoder block in backward instead of keeping its activations (already
    decided: the spec's `auto` is resolved by the plan's memory estimate)."""
    validation_loss: bool = True
    checkpoint_every: int = 50
    """Save a checkpoint every this many optimizer steps (0: only when interrupted)."""
    log_every: int = 1
    pad_token_id: int = 0
    dataloader_workers: int = 0
    pin_memory: bool = False

    def steps_per_epoch(self, num_examples: int) -> int:
        return max(1, math.ceil(num_examples / self.batch_size))

    def total_steps(self, num_examples: int) -> int:
        """Optimizer steps of the whole run: `max_steps` if set, else epochs x steps per epoch."""
        return self.max_steps or self.epochs * self.steps_per_epoch(num_examples)


@dataclass
class TrainData:
    """Tokenised examples (see `tunespec_local.encode`), identical on every worker:
    `Encoded` conversations for sft, `EncodedPair`s for preference. Any sequence (`len` and
    indexing): a list, or the on-disk `tunespec_local.encoded.EncodedSequences` that the
    backends use, which reads an example when the loop asks for it and pickles as a path."""

    train: Sequence[Any]
    validation: Sequence[Any] = field(default_factory=list)

    @property
    def train_tokens(self) -> int:
        return sum(len(e) for e in self.train)
