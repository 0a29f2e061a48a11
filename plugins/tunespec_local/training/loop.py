"""The training loop, shared by every torch backend: `train(config, data, env)`.

One optimizer step:
  1. take the step's examples (a pure function of seed and step, see batching.py), this
     worker's share of them, split into micro-batches;
  2. forward each micro-batch and sum its loss, as the objective says (objectives.py:
     cross-entropy over trained tokens for sft, DPO over pairs for preference); logits
     are computed only where a trained token is predicted (`logits_to_keep`), which
     skips most of the vocabulary projection for prompt-heavy chat data;
  3. scale so the step's loss is the mean over all of what the objective counts on all
     workers (trained tokens, or pairs; not a mean of micro-batch means, which would
     weight short answers more), backward, clip, step the optimizer and the LR schedule.
Every `checkpoint_every` steps, and when interrupted (Ctrl-C), the trainable weights,
optimizer, schedule and RNG state go to a checkpoint (checkpoint.py; sharded with DCP when
the environment shards the model); a new `train` call with the same config resumes from
the newest one and finishes the same steps in the same order.

Every worker runs the same number of forward passes in a step (padding with zero-weighted
micro-batches where its share is smaller): with FSDP each forward is a collective.
How the model is built (precision, quantisation, checkpointing, LoRA) is model.py's job.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunespec_local.media import PROCESSOR_FILES
from tunespec_local.training.batching import micro_batches, most_micro_batches, rank_share, real_tokens, step_examples
from tunespec_local.training.checkpoint import STATE_FILE, UnsafeCheckpoint, restore_state, save_state
from tunespec_local.training.config import TrainConfig, TrainData
from tunespec_local.training.env import TrainEnv
from tunespec_local.training.model import build_model, publishable_state_dict
from tunespec_local.training.objectives import Objective, forward_logits, objective_for, token_loss_sum

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
                   *PROCESSOR_FILES)  # a multimodal model's processor travels with its tokenizer
__all__ = [
    "STATE_FILE", "TOKENIZER_FILES", "TrainResult", "UnsafeCheckpoint", "build_model", "forward_logits", "save_outputs", "token_loss_sum",
    "train",
]


@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    train_loss: float | None
    eval_loss: float | None
    tokens: int
    """Real (non-padding) tokens processed by this call, all workers."""
    tokens_per_s: float
    seconds: float
    output: str | None
    """Folder of the saved adapter or model (main worker), else None."""
    model: Any = None
    """The trained model, unwrapped, in eval mode (for in-process evaluation)."""
    evaluation: dict[str, float] = field(default_factory=dict)
    """The objective's last validation metrics (eval_loss, and e.g. eval_reward_accuracy)."""

    def summary(self) -> dict[str, Any]:
        extra = {f"final_{k}": round(v, 6) for k, v in self.evaluation.items() if k != "eval_loss"}
        return {
            **extra,
            "steps": self.steps,
            "resumed_from_step": self.resumed_from,
            "final_train_loss": self.train_loss,
            "final_eval_loss": self.eval_loss,
            "train_tokens": self.tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "train_seconds": round(self.seconds, 1),
        }


def make_optimizer(config: TrainConfig, params: list[Any]) -> Any:
    import torch

    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adafactor":
        return torch.optim.Adafactor(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    import bitsandbytes as bnb  # adamw_8bit: validate() has checked it is installed

    return bnb.optim.AdamW8bit(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer: Any, total_steps: int) -> Any:
    from transformers import get_scheduler

    warmup = math.ceil(config.warmup_ratio * total_steps)
    name = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[config.lr_scheduler]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def autocast(config: TrainConfig, device: Any) -> Any:
    import torch

    if config.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if config.precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def supports_logits_to_keep(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def train(config: TrainConfig, data: TrainData, env: TrainEnv) -> TrainResult:
    """Train (or resume) and save the adapter or model; see the module docstring."""
    import torch

    model = build_model(config, env.device)
    sharded = is_sharded(env)
    keeps_logits = supports_logits_to_keep(model)
    objective = objective_for(config)
    objective.prepare(model, env.device)  # e.g. the frozen reference of full preference tuning
    # Move/wrap first, then build the optimizer and restore into it: a checkpoint's
    # optimizer state is then cast to the device the parameters live on.
    wrapped = env.prepare_model(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, params)
    total_steps = config.total_steps(len(data.train))
    per_epoch = config.steps_per_epoch(len(data.train))
    scheduler = make_scheduler(config, optimizer, total_steps)
    start_step, tokens_before = restore_state(env.latest_checkpoint(), model, optimizer, scheduler, sharded=sharded)
    scaler = torch.amp.GradScaler(env.device.type) if config.precision == "fp16" else None

    train_loss: float | None = None
    eval_loss: float | None = None
    evaluated: dict[str, float] = {}
    tokens = tokens_before  # cumulative over the run, across resumes (metrics.jsonl `tokens`)
    session_tokens = 0  # this process's, for tokens/s
    started = time.perf_counter()
    saved_step = start_step
    step = start_step
    unreported: dict[str, Any] | None = None

    def checkpoint(completed: int, metrics: dict[str, Any]) -> None:
        def write(folder: Path) -> None:
            save_state(folder, model, optimizer, scheduler, completed, tokens, sharded=sharded, is_main=env.is_main)

        env.save_checkpoint(completed, write, metrics)

    steps = iter(step_loader(config, data, env, start_step, total_steps, objective))
    wrapped.train()
    try:
        for step in range(start_step, total_steps):
            batches, weights, global_trained, global_tokens = next(steps)
            global_trained, global_tokens = env.all_reduce_sum([global_trained, global_tokens])
            # DDP and FSDP average gradients over workers; multiply by world_size so the result
            # is the sum over every trained token divided by their global count.
            scale = env.world_size / max(global_trained, 1.0)
            loss_total = 0.0
            stats: dict[str, float] = {}
            for i, (batch, weight) in enumerate(zip(batches, weights)):
                batch = {k: v.to(env.device, non_blocking=True) for k, v in batch.items()}
                last = i == len(batches) - 1
                sync = contextlib.nullcontext() if last or not hasattr(wrapped, "no_sync") else wrapped.no_sync()
                with sync:
                    with autocast(config, env.device):
                        loss_sum, batch_stats = objective.loss(wrapped, batch, keeps_logits)
                    scaled = loss_sum * (weight * scale)
                    (scaler.scale(scaled) if scaler else scaled).backward()
                loss_total += float(loss_sum.detach()) * weight
                for name, value in batch_stats.items():
                    stats[name] = stats.get(name, 0.0) + value * weight
            if scaler:
                scaler.unscale_(optimizer)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            learning_rate = scheduler.get_last_lr()[0]
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            completed = step + 1
            # The weights now include this step: a Ctrl-C from here on (in validation, in
            # report) must checkpoint it as done, or the resumed run would train it twice.
            step = completed
            names = sorted(stats)
            train_loss, *stat_totals = env.all_reduce_sum([loss_total, *(stats[n] for n in names)])
            train_loss /= max(global_trained, 1.0)
            tokens += int(global_tokens)
            session_tokens += int(global_tokens)
            seconds = time.perf_counter() - started
            metrics = {
                "step": completed,
                "epoch": round(completed / per_epoch, 4),
                "train_loss": round(train_loss, 6),
                "learning_rate": learning_rate,
                "tokens": tokens,
                "tokens_per_s": round(session_tokens / max(seconds, 1e-9), 1),
                "total_steps": total_steps,
                **objective.step_metrics(dict(zip(names, stat_totals)), global_trained),
            }
            end_of_epoch = completed % per_epoch == 0 or completed == total_steps
            unreported = metrics if completed % config.log_every == 0 or end_of_epoch else None
            if end_of_epoch and config.validation_loss and data.validation:
                evaluated = objective.evaluate(wrapped, data, config, env, keeps_logits)
                eval_loss = evaluated["eval_loss"]
                metrics.update({k: round(v, 6) for k, v in evaluated.items()})
                wrapped.train()
            if unreported is not None:
                unreported = None
                env.report(metrics)
            if config.checkpoint_every and completed % config.checkpoint_every == 0 and completed < total_steps:
                checkpoint(completed, metrics)
                saved_step = completed
    except KeyboardInterrupt:
        # Ctrl-C between or inside steps: keep every completed step, so `apply` resumes
        # from here instead of from the last periodic checkpoint.
        if unreported is not None:  # interrupted in this step's validation: log the step without it
            env.report(unreported)
        if step > saved_step:
            checkpoint(step, {"step": step, "total_steps": total_steps, "interrupted": True})
        raise

    seconds = time.perf_counter() - started
    model.eval()
    # A sharded model's weights are gathered to the main worker first (every worker joins).
    weights_to_publish = publishable_state_dict(model, config) if sharded else None
    output = save_outputs(model, config, weights_to_publish) if env.is_main else None
    return TrainResult(
        steps=total_steps,
        resumed_from=start_step,
        train_loss=train_loss,
        eval_loss=eval_loss,
        tokens=session_tokens,
        tokens_per_s=session_tokens / max(seconds, 1e-9),
        seconds=seconds,
        output=output,
        model=model,
        evaluation=evaluated,
    )


def is_sharded(env: TrainEnv) -> bool:
    """True when the environment shards the model (FSDP): checkpoints and the published
    weights then need every worker (an optional attribute of the env; default False)."""
    return bool(getattr(env, "sharded", False))


class StepBatches:
    """Map-style dataset: item i is the collated micro-batches of optimizer step
    `start + i` for this worker, each with its weight (1, or 0 for padding), what the
    objective averages over (trained tokens, pairs) and the real tokens. Every worker gets
    as many micro-batches as the worker with the largest share (see the module docstring).
    A DataLoader over it collates in background processes (`dataloader_workers`) and pins
    memory for CUDA (`pin_memory`)."""

    def __init__(self, config: TrainConfig, data: TrainData, rank: int, world_size: int, start: int, total: int, objective: Objective | None = None):
        self.config, self.data, self.rank, self.world_size, self.start, self.total = config, data, rank, world_size, start, total
        self.objective = objective or objective_for(config)

    def __len__(self) -> int:
        return self.total - self.start

    def __getitem__(self, i: int) -> tuple[list[dict], list[float], float, float]:
        config, data = self.config, self.data
        step = step_examples(len(data.train), config.batch_size, config.seed, self.start + i)
        indices = rank_share(step, self.rank, self.world_size)
        collate = self.objective.collate
        batches = [collate([data.train[j] for j in mb], config.packing, config.pad_token_id) for mb in micro_batches(indices, config.micro_batch_size)]
        trained = sum(self.objective.count(b) for b in batches)
        tokens = sum(real_tokens(b) for b in batches)
        # A worker with a smaller share (or none: a short last batch) pads with zero-weighted
        # forwards of example 0, so it joins every collective the others make.
        weights = [1.0] * len(batches)
        padding = most_micro_batches(len(step), self.world_size, config.micro_batch_size) - len(batches)
        batches += [collate([data.train[0]], config.packing, config.pad_token_id) for _ in range(padding)]
        weights += [0.0] * padding
        return batches, weights, float(trained), float(tokens)


def step_loader(config: TrainConfig, data: TrainData, env: TrainEnv, start: int, total: int, objective: Objective | None = None) -> Any:
    import torch
    from torch.utils.data import DataLoader

    workers = config.dataloader_workers
    return DataLoader(
        StepBatches(config, data, env.rank, env.world_size, start, total, objective),
        batch_size=None,  # items are already whole steps
        shuffle=False,  # the order is the step order
        num_workers=workers,
        pin_memory=config.pin_memory,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
        # Its own generator: iterating a DataLoader draws a seed for its workers, and from
        # the global RNG that would shift a resumed run's dropout draws by one against the
        # uninterrupted run's (the checkpoint restores the global RNG just before this).
        generator=torch.Generator().manual_seed(config.seed),
    )


def save_outputs(model: Any, config: TrainConfig, state_dict: dict[str, Any] | None = None) -> str:
    """`adapter/` (peft: loads with PeftModel.from_pretrained) or `model/` (full: loads with
    from_pretrained), each with the tokenizer and chat template beside it. Written to a
    temp folder and renamed. `state_dict`: the gathered weights of a sharded model."""
    out = Path(config.output_dir)
    final = out / ("adapter" if config.method == "peft" else "model")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=out))
    try:
        if config.method == "full":
            model.config.use_cache = True  # for generation by whoever loads it
        model.save_pretrained(tmp, **({"state_dict": state_dict} if state_dict is not None else {}))
        for name in TOKENIZER_FILES:
            source = Path(config.model_path) / name
            if source.is_file():
                shutil.copy2(source, tmp / name)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final)
