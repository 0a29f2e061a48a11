"""`tunespec apply` for the local backend: everything between a checked spec and a run folder.

    materialise the base model (convert a GGUF once, cached)
    tokenise train and validation data with the model's chat template (streamed into an
      on-disk cache, reused by later runs on the same data; see tunespec_local.encoded)
    evaluate the base model on the validation prompts          -> evaluation/base.json
    train (or resume) with the shared loop                     -> adapter/ or model/,
                                                                  checkpoints/, metrics.jsonl
    evaluate the tuned model on the same prompts               -> evaluation/tuned.json
    print base vs tuned, return the RunResult (tunespec writes manifest.json and publishes)

Every file goes into the run's staging folder (`ctx.run_dir.path`), which survives a
crash; on resume the base evaluation and the finished training steps are not redone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import traceback
from pathlib import Path
from typing import Any

from tunespec import Diagnostic, DiagnosticError, ResolvedModel, RunContext, RunResult

from tunespec_local.config import LocalConfig
from tunespec_local.encode import ChatTokenizer, Prompt, load_tokenizer
from tunespec_local.models.cache import cache_root, materialize
from tunespec_local.hardware import auto_precision
from tunespec_local.media import model_modality
from tunespec_local.training import LocalEnv, TorchrunEnv, TrainConfig, TrainData, default_device, torchrun_world_size, train

EVALUATION_DIR = "evaluation"


def run(ctx: RunContext, config: LocalConfig, model_ref: ResolvedModel) -> RunResult:
    import torch

    quiet_libraries()
    spec, job = ctx.spec, ctx.spec.job
    log = ctx.progress.log
    run_path = Path(ctx.run_dir.path)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = _device(config, ctx)
    precision = _precision(job.hyperparameters.precision, device, ctx)

    folder = materialize_at_spec(ctx, model_ref, config, log)
    tokenizer = encoder_for(ctx, _tokenizer(folder, job.model.chat_template, ctx), folder)
    data, prompts = encode_data(ctx, tokenizer, log)
    train_config = train_config_for(ctx, config, folder, tokenizer, precision)

    # Under torchrun (tunespec run-job in a multi-process job) every process trains its share;
    # rank 0 alone prepares the folder, evaluates and writes the outputs.
    env = (TorchrunEnv if torchrun_world_size() > 1 else LocalEnv)(run_path, device, keep_checkpoints=config.keep_checkpoints)
    device = env.device
    if env.is_main:
        _prepare_run_folder(ctx, env)
    if isinstance(env, TorchrunEnv):
        env.barrier()

    evaluation: dict[str, Any] = {}
    pairs = held_out_pairs(ctx, data)
    if (prompts or pairs) and job.evaluation.compare_base and env.is_main:
        evaluation["base"] = base_evaluation(ctx, config, folder, tokenizer, prompts, device, pairs)

    total = train_config.total_steps(len(data.train))
    log(f"training {describe_training(ctx)} on {len(data.train)} {'pairs' if pairs is not None else 'examples'}: "
        f"{total} steps on {device.type} ({precision})")
    try:
        with ctx.progress.task("training", total=total) as task:
            env.progress_task = task
            result = train(train_config, data, env)
    except (KeyboardInterrupt, DiagnosticError):
        raise
    except Exception as exc:  # a failure inside torch/transformers: explain, keep the traceback
        (run_path / "error.log").write_text(traceback.format_exc())
        raise DiagnosticError(Diagnostic(
            "TS311", f"training failed: {type(exc).__name__}: {exc}", spec.locate("hyperparameters"),
            f"the full traceback is in {run_path / 'error.log'}; `tunespec apply` resumes from the last checkpoint",
        )) from exc

    if not env.is_main:  # its share of the training is done; rank 0 reports the run
        return RunResult(status="succeeded", message=f"rank {env.rank}: {result.steps} steps")
    if prompts or pairs:
        evaluation["tuned"] = evaluate_model(ctx, config, result.model, tokenizer, prompts, device, "tuned", pairs)
        evaluation = summarise_evaluation(evaluation, evaluated_metrics(ctx))  # the CLI prints base vs tuned
    if not config.keep_checkpoints_after_success:
        shutil.rmtree(run_path / "checkpoints", ignore_errors=True)

    metrics = {**result.summary(), "train_examples": len(data.train), "validation_examples": len(data.validation),
               "device": device.type, "precision": precision}
    return RunResult(status="succeeded", message=f"{result.steps} steps", metrics=metrics, evaluation=evaluation, outputs=upstream_outputs(ctx))


# -- steps -------------------------------------------------------------------------------


def materialize_at_spec(ctx: RunContext, model_ref: ResolvedModel, config: LocalConfig, log) -> Path:
    """The model's Hugging Face folder (converting or downloading it now if needed); a
    failure points at the spec's `model.base` line."""
    try:
        return materialize(model_ref, cache_root(config.cache_dir), log)
    except DiagnosticError as exc:
        where = ctx.spec.locate("model.base")
        raise DiagnosticError([dataclasses.replace(d, location=where) for d in exc.diagnostics]) from exc.__cause__


def encode_data(ctx: RunContext, tokenizer: ChatTokenizer, log) -> tuple[TrainData, list[Prompt]]:
    """Both splits tokenised (conversations, or preference pairs as two sequences each), as
    on-disk sequences read on demand (tunespec_local.encoded): streamed into the cache once,
    reused by every later run on the same data, tokenizer, template and max_seq_length.
    Validation also gives the evaluation prompts (for a pair: its prompt, with the preferred
    response as the reference)."""
    job = ctx.spec.job
    max_len = job.data.max_seq_length
    pairs = job.method.objective == "preference"
    train_examples = encoded_split(ctx, tokenizer, "train", log)
    skipped = int(train_examples.meta.get("skipped", 0))
    if skipped:
        what = "pairs have a response" if pairs else "examples have no model tokens"
        if job.data.modality != "text":  # media are never cut: an example that does not fit is dropped
            log(f"{skipped} training examples do not fit in max_seq_length={max_len} with their media tokens; they are skipped")
        else:
            log(f"{skipped} training {what} cut off entirely by max_seq_length={max_len}; they are skipped")
    if not len(train_examples):
        raise DiagnosticError(Diagnostic("TS311", "no training example has a model turn within `data.max_seq_length` tokens",
                                         ctx.spec.locate("data.max_seq_length"), "raise `data.max_seq_length`"))
    validation: Any = []
    prompts: list[Prompt] = []
    if job.data.validation:
        validation = encoded_split(ctx, tokenizer, "validation", log)
        if job.evaluation.metrics:
            prompts = evaluation_prompts(ctx, tokenizer)
    return TrainData(train_examples, validation), prompts


def encoder_for(ctx: RunContext, tokenizer: ChatTokenizer, folder: Path) -> Any:
    """What turns conversations into tokens: the chat tokenizer for text, or for image, audio
    and document data the same tokenizer with the model's processor (tunespec_local.media)."""
    if ctx.spec.job.data.modality == "text":
        return tokenizer
    from tunespec_local.media.encode import MediaChatEncoder
    from tunespec_local.media.load import MediaReader

    reader = MediaReader(ctx.spec.base_dir, ctx.spec.job.data.documents)
    return MediaChatEncoder(tokenizer, folder, reader, text_only=model_modality(ctx.spec.job) == "text")


def encoded_split(ctx: RunContext, tokenizer: ChatTokenizer, split: str, log) -> Any:
    """One split from the tokenised-data cache (built now, streaming, if missing)."""
    from tunespec.data import iter_conversations
    from tunespec_local.encoded import cached_split, split_key

    job = ctx.spec.job
    max_len = job.data.max_seq_length
    pairs = job.method.objective == "preference"
    files = [(f.sha256, f.format) for f in ctx.data.files if f.split == split]
    if not files or not all(digest for digest, _ in files):
        # No content hashes (validation did not run in this process): never reuse a cache.
        import uuid

        files.append((f"unhashed:{uuid.uuid4()}", None))
    media = tokenizer.identity() if hasattr(tokenizer, "identity") else None  # a MediaChatEncoder
    key = split_key(files, job.data.fields.model_dump(mode="json"), getattr(tokenizer, "chat", tokenizer), max_len, job.method.objective, media)
    encode = (lambda batch: tokenizer.encode_pairs(batch, max_len)) if pairs else (lambda batch: tokenizer.encode_many(batch, max_len))
    config = ctx.spec.config
    root = cache_root(getattr(config, "cache_dir", None))
    return cached_split(root, key, lambda: iter_conversations(ctx.spec, split), encode, pairs, log, f"{split} data")


def evaluation_prompts(ctx: RunContext, tokenizer: ChatTokenizer) -> list[Prompt]:
    """Generation prompts from the first `evaluation.max_examples` validation conversations
    (all of them when unset), read as a stream."""
    import itertools

    from tunespec.data import iter_conversations

    limit = ctx.spec.job.evaluation.max_examples
    conversations = iter_conversations(ctx.spec, "validation")
    return [tokenizer.prompt(c) for c in (itertools.islice(conversations, limit) if limit else conversations)]


def train_config_for(ctx: RunContext, config: LocalConfig, folder: Path, tokenizer: ChatTokenizer, precision: str) -> TrainConfig:
    """The spec (and the plan compiled from it) as the loop's TrainConfig."""
    job = ctx.spec.job
    training = ctx.plan.job["training"]
    lora = training["lora"] or {}
    return TrainConfig(
        model_path=str(folder),
        output_dir=str(ctx.run_dir.path),
        method=job.method.type,
        objective=job.method.objective,
        beta=job.method.preference.beta if job.method.preference else 0.1,
        preference_loss=job.method.preference.loss if job.method.preference else "sigmoid",
        sft_weight=job.method.preference.sft_weight if job.method.preference else 0.0,
        lora_rank=lora.get("rank", 8),
        lora_alpha=lora.get("alpha", 16),
        lora_dropout=lora.get("dropout", 0.0),
        lora_target_modules=lora.get("target_modules", "all-linear"),
        learning_rate=training["learning_rate"],
        optimizer=job.hyperparameters.optimizer,
        weight_decay=job.hyperparameters.weight_decay,
        lr_scheduler=job.hyperparameters.lr_scheduler,
        warmup_ratio=job.hyperparameters.warmup_ratio,
        max_grad_norm=job.hyperparameters.max_grad_norm,
        batch_size=job.hyperparameters.batch_size,
        micro_batch_size=training["micro_batch_size"],
        epochs=job.hyperparameters.epochs,
        max_steps=job.hyperparameters.max_steps,
        packing=job.hyperparameters.packing and model_modality(job) == "text",  # media: padded (objectives.py)
        seed=job.hyperparameters.seed,
        precision=precision,  # type: ignore[arg-type]
        quantization=job.method.quantization,
        modality=model_modality(job),  # type: ignore[arg-type]
        media_encoder=job.method.media_encoder,
        # As the plan decided it (an `auto` resolved by the memory estimate for this device).
        activation_checkpointing=bool(training.get("activation_checkpointing", False)),
        validation_loss=job.evaluation.validation_loss,
        checkpoint_every=config.checkpoint_every,
        log_every=config.log_every,
        pad_token_id=tokenizer.pad_token_id,
        dataloader_workers=config.dataloader_workers,
        pin_memory=config.pin_memory is True or (config.pin_memory == "auto" and _cuda()),
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _prepare_run_folder(ctx: RunContext, env: LocalEnv) -> None:
    """A resumed run keeps its checkpoints and drops metrics logged after the newest one; a
    fresh run starts from an empty folder (leftovers of an attempt the state store forgot)."""
    if ctx.resuming:
        checkpoint = env.latest_checkpoint()
        step = json.loads((checkpoint / "checkpoint.json").read_text())["step"] if checkpoint else 0
        env.truncate_metrics_after(step)
        ctx.progress.log(f"resuming from step {step}" if checkpoint else "resuming: no checkpoint yet, training from the start")
        return
    for name in ("checkpoints", "adapter", "model", EVALUATION_DIR):
        shutil.rmtree(Path(ctx.run_dir.path) / name, ignore_errors=True)
    (Path(ctx.run_dir.path) / "metrics.jsonl").unlink(missing_ok=True)


def upstream_outputs(ctx: RunContext) -> dict[str, Any]:
    """For a spec built on another spec's run: which run, in the manifest's `outputs`, so
    this run's adapter can be traced (and its base rebuilt) from the artifacts alone."""
    from tunespec.chains import UpstreamRun

    upstream = ctx.spec.upstream
    return {"upstream": upstream.to_json()} if isinstance(upstream, UpstreamRun) else {}


def held_out_pairs(ctx: RunContext, data: TrainData) -> list[Any] | None:
    """The validation pairs of a preference run (None for supervised runs)."""
    return data.validation if ctx.spec.job.method.objective == "preference" else None


def describe_training(ctx: RunContext) -> str:
    method = ctx.spec.job.method
    if method.objective != "preference" or method.preference is None:
        return method.type
    loss = "DPO" if method.preference.loss == "sigmoid" else "IPO"
    sft = f", sft_weight={method.preference.sft_weight:g}" if method.preference.sft_weight else ""
    return f"{method.type} preference ({loss}, beta={method.preference.beta:g}{sft})"


def evaluated_metrics(ctx: RunContext) -> list[str]:
    """The metrics evaluation reports: `preference_accuracy` first for a preference run
    (held-out pairs), then the spec's generation metrics."""
    metrics = list(ctx.spec.job.evaluation.metrics)
    return ["preference_accuracy", *metrics] if ctx.spec.job.method.objective == "preference" else metrics


def base_evaluation(ctx: RunContext, config: LocalConfig, folder: Path, tokenizer: ChatTokenizer, prompts: list[Prompt], device: Any,
                    pairs: list[Any] | None = None) -> dict[str, Any]:
    saved = Path(ctx.run_dir.path) / EVALUATION_DIR / "base.json"
    if ctx.resuming and saved.is_file():
        return _summary(json.loads(saved.read_text()))
    import torch

    from tunespec_local.training.model import model_class

    base = model_class(model_modality(ctx.spec.job)).from_pretrained(folder, dtype=torch.float32).to(device)
    try:
        return evaluate_model(ctx, config, base, tokenizer, prompts, device, "base", pairs)
    finally:
        del base


def evaluate_model(ctx: RunContext, config: LocalConfig, model: Any, tokenizer: ChatTokenizer, prompts: list[Prompt], device: Any, which: str,
                   pairs: list[Any] | None = None) -> dict[str, Any]:
    """Generate on the validation prompts and, for a preference run, score the held-out
    pairs; write evaluation/<which>.json (every output) and return the scores."""
    from tunespec_local.evaluation import generate, preference_accuracy, score

    job = ctx.spec.job
    outputs: list[str] = []
    if prompts:
        with ctx.progress.task(f"evaluating {which} model", total=len(prompts)) as task:
            media = tokenizer.media_inputs() if hasattr(tokenizer, "media_inputs") else None
            outputs = generate(model, tokenizer, prompts, job.evaluation.max_new_tokens, config.eval_batch_size, device,
                               on_batch=lambda n: task.advance(n), media_inputs=media)
    references = [p.reference for p in prompts]
    metrics: dict[str, Any] = {}
    if pairs:
        metrics["preference_accuracy"] = preference_accuracy(model, pairs, config.eval_batch_size, tokenizer.pad_token_id, device)
    metrics.update(score(outputs, references, job.evaluation.metrics) if prompts else {})
    full = {
        "model": which,
        "examples": len(prompts) if prompts else len(pairs or []),
        "metrics": metrics,
        "outputs": [{"reference": r, "output": o} for r, o in zip(references, outputs)],
    }
    if pairs:
        full["pairs"] = len(pairs)
    out = Path(ctx.run_dir.path) / EVALUATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{which}.json.tmp"
    tmp.write_text(json.dumps(full, indent=2, ensure_ascii=False))
    os.replace(tmp, out / f"{which}.json")
    return _summary(full)


def _summary(full: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps of one evaluation: the scores (flat, metric -> value) and the
    example count (and pair count). Every output is in evaluation/<model>.json."""
    return {**full["metrics"], "examples": full["examples"], **({"pairs": full["pairs"]} if "pairs" in full else {})}


def summarise_evaluation(evaluation: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """Add `improvement` (tuned - base, per metric) when both were evaluated, and where the
    full outputs are."""
    if "base" in evaluation and "tuned" in evaluation:
        evaluation["improvement"] = {m: round(evaluation["tuned"][m] - evaluation["base"][m], 4) for m in metrics
                                     if m in evaluation["tuned"] and m in evaluation["base"]}
    evaluation["metrics"] = list(metrics)
    evaluation["outputs"] = {k: f"{EVALUATION_DIR}/{k}.json" for k in ("base", "tuned") if k in evaluation}
    return evaluation


def _tokenizer(folder: Path, chat_template: str | None, ctx: RunContext) -> ChatTokenizer:
    try:
        return load_tokenizer(folder, chat_template)
    except (OSError, ValueError) as exc:
        raise DiagnosticError(Diagnostic("TS301", f"cannot load the tokenizer of {folder}: {exc}", ctx.spec.locate("model.base"),
                                         "the model folder needs tokenizer.json and a chat template (or set `model.chat_template`)")) from exc


def _device(config: LocalConfig, ctx: RunContext) -> Any:
    import torch

    device = default_device(config.device)
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available[device.type]:
        raise DiagnosticError(Diagnostic("TS302", f"`device: {config.device}` is not available on this machine", ctx.spec.locate("backend.device"),
                                         "use `device: auto` to train on what is available"))
    return device


def _precision(choice: str, device: Any, ctx: RunContext) -> str:
    import torch

    if choice == "auto":
        return auto_precision(device.type, cuda_bf16=device.type == "cuda" and torch.cuda.is_bf16_supported())
    if choice == "fp16" and device.type != "cuda":
        raise DiagnosticError(Diagnostic("TS302", f"`precision: fp16` needs a CUDA device; this run is on {device.type}",
                                         ctx.spec.locate("hyperparameters.precision"), "use `precision: auto` or `fp32`"))
    if choice == "bf16" and device.type == "mps":
        raise DiagnosticError(Diagnostic("TS302", "`precision: bf16` is not supported on MPS by this backend",
                                         ctx.spec.locate("hyperparameters.precision"), "use `precision: auto` or `fp32`"))
    return choice


def quiet_libraries() -> None:
    """transformers' own progress bars and deprecation notices would tear through
    tunespec's progress display; tunespec reports what matters itself."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")


# Names the ray backend used before these helpers were public; kept so both plugins can
# land independently. New code calls the public names.
_quiet_libraries = quiet_libraries
_base_evaluation = base_evaluation
_evaluate = evaluate_model
