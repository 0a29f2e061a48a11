"""`apply` with `wait: true`: the driver side of a Ray run, from a checked spec to a run folder.

    materialise the base model, tokenise the data    (the local backend's steps, shared:
                                                      streamed into the on-disk cache)
    evaluate the base model on the validation prompts           -> evaluation/base.json
    hand the workers the cache's location (or, on an existing cluster, its files in
    object-store chunks; see data.py): the driver never holds the examples
    TorchTrainer.fit(): N workers run the shared loop (worker.py) -> Ray checkpoints
    copy the final checkpoint's adapter/ (or model/) and metrics.jsonl into the run folder
    evaluate the tuned model on the same prompts                -> evaluation/tuned.json
    return the RunResult; tunespec writes manifest.json and publishes the folder

So the run folder has exactly the local backend's layout; only the manifest's `backend`
field says Ray produced it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from tunespec import Diagnostic, DiagnosticError, RunContext, RunResult

from tunespec_ray.cluster import connected
from tunespec_ray.data import ship
from tunespec_ray.progress import followed
from tunespec_ray.trainer import build_trainer
from tunespec_ray.worker import FINAL_CHECKPOINT, METRICS_FILE, RESULT_FILE, train_loop_per_worker

# What the final checkpoint carries into the run folder.
OUTPUTS = ("adapter", "model", METRICS_FILE)


def run_attached(ctx: RunContext, job: dict[str, Any], local_spec: Any) -> RunResult:
    """Run the compiled (placeholder-filled) job here and fill the run folder."""
    from tunespec_local import run as local_run
    from tunespec_local.backend import resolve_model
    from tunespec_local.encode import ChatTokenizer
    from tunespec_local.models.cache import cache_root, materialize

    local_run.quiet_libraries()
    local_config = local_spec.config
    spec = ctx.spec
    log = ctx.progress.log
    run_path = Path(ctx.run_dir.path)
    local_ctx = dataclasses.replace(ctx, spec=local_spec)

    model_ref = resolve_model(local_spec)
    folder = materialize(model_ref, cache_root(local_config.cache_dir), log)
    tokenizer = local_run.encoder_for(local_ctx, ChatTokenizer.from_folder(folder, spec.job.model.chat_template), folder)
    data, prompts = local_run.encode_data(local_ctx, tokenizer, log)
    # Precision is decided on the workers, which know their device (see worker.py).
    train_config = local_run.train_config_for(local_ctx, local_config, folder, tokenizer, "fp32")
    if job["cluster"]["mode"] == "existing" and model_ref.kind == "hub" and not model_ref.revision:
        # On a remote cluster the driver's hub cache is not on the workers' nodes: each
        # worker loads the model by its hub id (from its own cache, or downloads it).
        train_config = dataclasses.replace(train_config, model_path=model_ref.location)
    _prepare_run_folder(ctx, job)

    evaluation: dict[str, Any] = {}
    device = _driver_device()
    pairs = local_run.held_out_pairs(local_ctx, data)  # preference runs: held-out pairs, scored base vs tuned
    if (prompts or pairs) and spec.job.evaluation.compare_base:
        evaluation["base"] = local_run.base_evaluation(local_ctx, local_config, folder, tokenizer, prompts, device, pairs)

    workers = job["scaling_config"]["num_workers"]
    total = train_config.total_steps(len(data.train))
    where = "an embedded local Ray cluster" if job["cluster"]["mode"] == "embedded" else job["cluster"]["init"]["address"]
    log(f"training {local_run.describe_training(local_ctx)} on {len(data.train)} {'pairs' if pairs is not None else 'examples'}: "
        f"{total} steps on {workers} Ray workers ({where})")
    started = time.perf_counter()
    result = _fit(ctx, job, train_config, data)
    _collect(result.checkpoint, run_path)
    _add_tokenizer_files(folder, run_path)
    summary = json.loads((run_path / RESULT_FILE).read_text())
    (run_path / RESULT_FILE).unlink()
    if job["run_config"]["storage_path"] == str(run_path) and not local_config.keep_checkpoints_after_success:
        shutil.rmtree(run_path / job["run_config"]["name"], ignore_errors=True)

    if prompts or pairs:
        tuned = _load_tuned(folder, run_path, train_config, device)
        evaluation["tuned"] = local_run.evaluate_model(local_ctx, local_config, tuned, tokenizer, prompts, device, "tuned", pairs)
        evaluation = local_run.summarise_evaluation(evaluation, local_run.evaluated_metrics(local_ctx))
    metrics = {
        **summary,
        "train_examples": len(data.train),
        "validation_examples": len(data.validation),
        "device": "cuda" if job["scaling_config"]["use_gpu"] else "cpu",
        "precision": summary.get("precision", "fp32"),
    }
    # Checkpoints kept outside the run folder (`storage_path`) are named, as a remote resource would be.
    outputs = {} if job["run_config"]["storage_path"] == str(run_path) else {"ray_checkpoints": result.path}
    outputs.update(local_run.upstream_outputs(local_ctx))
    log(f"trained in {time.perf_counter() - started:.1f} s on {workers} Ray workers")
    return RunResult(status="succeeded", message=f"{summary.get('steps')} steps on {workers} Ray workers", metrics=metrics,
                     evaluation=evaluation, outputs=outputs)


def _fit(ctx: RunContext, job: dict[str, Any], train_config: Any, data: Any) -> Any:
    """TorchTrainer.fit() on the job's cluster; a failure becomes a TS311 diagnostic."""
    import ray.train

    where = ctx.spec.locate("backend" if job["cluster"]["mode"] == "embedded" else "backend.address")
    with connected(job["cluster"], where):
        with ctx.progress.task("training on Ray", total=train_config.total_steps(len(data.train))) as task, followed(task) as sink:
            loop_config = {
                "config": train_config,
                "data": data if job["cluster"]["mode"] == "embedded" else ship(data),
                "precision": ctx.spec.job.hyperparameters.precision,
                # Plans compiled before `parallelism` existed (a resumed run's) trained with DDP.
                "parallelism": job.get("parallelism", {}).get("strategy", "ddp"),
                "progress": sink,
            }
            trainer = build_trainer(job, train_loop_per_worker, loop_config)
            try:
                return trainer.fit()
            except ray.train.TrainingFailedError as exc:
                raise DiagnosticError(_training_failed(ctx, job, exc)) from None


def _training_failed(ctx: RunContext, job: dict[str, Any], exc: BaseException) -> Diagnostic:
    cause = _root_cause(exc)
    (Path(ctx.run_dir.path) / "error.log").write_text(str(exc))
    published = Path(ctx.run_dir.final_path) / "error.log"  # where it is once tunespec publishes the failed run
    retries = job["run_config"]["failure_config"]["max_failures"]
    return Diagnostic(
        "TS311",
        f"training failed on the Ray cluster after {retries} restart(s): {cause}",
        ctx.spec.locate("backend"),
        hint=f"the workers' errors are in {published}; set `verbose: true` to see Ray's logs. "
        "Raise `max_failures` to let Ray Train restart failed workers from the last checkpoint",
    )


def _root_cause(exc: BaseException) -> str:
    """One line per failed rank: the exception line of its traceback, or Ray's own first
    line when the worker process died (a health check failed) and left no traceback."""
    text = str(exc)
    sections = re.split(r"\[Rank (\d+) Error Snippet\]:\s*\n", text)
    causes = []
    for rank, body in zip(sections[1::2], sections[2::2]):
        lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
        error = next((line for line in reversed(lines) if re.match(r"^[\w.]*(Error|Exception)\b", line)), None)
        causes.append(f"rank {rank}: {(error or (lines[0] if lines else 'failed'))[:200]}")
    if causes:
        return "; ".join(causes)
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _prepare_run_folder(ctx: RunContext, job: dict[str, Any]) -> None:
    """A fresh run starts from an empty folder; a resumed one keeps Ray Train's checkpoints
    (it restores from them itself) and the base evaluation."""
    run_path = Path(ctx.run_dir.path)
    if ctx.resuming:
        ctx.progress.log("resuming: Ray Train restores the newest checkpoint")
        return
    for name in ("checkpoints", "adapter", "model", "evaluation"):
        shutil.rmtree(run_path / name, ignore_errors=True)
    (run_path / METRICS_FILE).unlink(missing_ok=True)


def _collect(checkpoint: Any, run_path: Path) -> None:
    """Copy what rank 0 put in the final checkpoint into the run folder (works for local and
    remote storage alike: Checkpoint.to_directory downloads when it has to)."""
    if checkpoint is None or Path(checkpoint.path).name != FINAL_CHECKPOINT:
        raise RuntimeError(f"Ray Train returned no final checkpoint (got {checkpoint})")
    staged = run_path / ".final"
    shutil.rmtree(staged, ignore_errors=True)
    checkpoint.to_directory(str(staged))
    for name in (*OUTPUTS, RESULT_FILE):
        source = staged / name
        if source.exists():
            target = run_path / name
            if target.is_dir():
                shutil.rmtree(target)
            source.replace(target)
    shutil.rmtree(staged, ignore_errors=True)


def _add_tokenizer_files(model_folder: Path, run_path: Path) -> None:
    """The adapter/model folder carries the tokenizer and chat template beside the weights
    (as the local backend's does); a worker that loaded the model by hub id had no files
    to copy, so the driver adds what is missing."""
    from tunespec_local.training.loop import TOKENIZER_FILES

    for output in ("adapter", "model"):
        if not (run_path / output).is_dir():
            continue
        for name in TOKENIZER_FILES:
            source, target = model_folder / name, run_path / output / name
            if source.is_file() and not target.exists():
                shutil.copy2(source, target)


def _driver_device() -> Any:
    from tunespec_local.training import default_device

    return default_device("auto")


def _load_tuned(base_folder: Path, run_path: Path, config: Any, device: Any) -> Any:
    """The trained model from the run folder, for evaluation on the driver."""
    import torch

    from tunespec_local.training.model import model_class

    auto = model_class(config.modality)
    if config.method == "full":
        return auto.from_pretrained(run_path / "model", dtype=torch.float32).to(device).eval()
    from peft import PeftModel

    base = auto.from_pretrained(base_folder, dtype=torch.float32)
    return PeftModel.from_pretrained(base, run_path / "adapter").to(device).eval()
