"""What the `ray` backend costs on top of Ray Train itself, measured in one run.

The same tiny LoRA job (a random-init Llama, hidden 256, 4 layers; 40 steps of 8 packed
examples) five ways, each in a fresh process (as a user runs them), one after another:

    local       `tunespec apply` with `backend: local` (no Ray at all)
    ray x1      `tunespec apply` with `backend: ray`, 1 worker, embedded cluster
    ray x2      the same with 2 workers
    bare x1/x2  a hand-written script: ray.init, TorchTrainer running the same shared loop
                (tunespec_local.training.train) with the thinnest possible TrainEnv, on the
                same pre-tokenised data, ray.shutdown: the floor any Ray tool pays

For each: wall seconds (everything, cluster start and stop included), start-up seconds
(wall minus the loop's own training time) and steady-state tokens/s (from metrics.jsonl,
steps 6 to the end, so model loading and the first steps' warm-up are excluded).
Targets: ray backend wall within 1.2x bare, steady tokens/s at least 0.95x bare.

Run: .venv/bin/python bench/ray_overhead.py [--steps 40] [--verbose]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "specs" / "quickstart" / "train.jsonl"
STEADY_FROM = 5  # steps before this are warm-up
BATCH = 8

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: ./model
data:
  train: train.jsonl
  max_seq_length: 256
method:
  type: peft
  lora: {{rank: 8, alpha: 16, dropout: 0.0}}
hyperparameters:
  max_steps: {steps}
  batch_size: {batch}
  learning_rate: 0.001
  seed: 1
evaluation:
  compare_base: false
  validation_loss: false
  metrics: []
backend:
{backend}
"""


def steady_tokens_per_s(records: list[dict]) -> float:
    """tokens/s between step STEADY_FROM and the last step. Each record carries cumulative
    tokens and tokens/s since training started, so elapsed = tokens / tokens_per_s."""
    first, last = records[STEADY_FROM - 1], records[-1]
    elapsed = lambda r: r["tokens"] / r["tokens_per_s"]  # noqa: E731
    return (last["tokens"] - first["tokens"]) / (elapsed(last) - elapsed(first))


def run_spec(folder: Path, name: str, backend: str, steps: int) -> dict:
    """`tunespec apply` in this process; returns wall, start-up and steady tokens/s."""
    from tunespec.cli.main import main

    spec = folder / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, steps=steps, batch=BATCH, backend=backend))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the CLI's JSON report; the figures are what we print
        code = main(["apply", str(spec), "--yes", "--state", str(folder / "state.db"), "--output", "json"])
    wall = time.perf_counter() - started
    if code != 0:
        sys.exit(f"{name}: tunespec apply failed with exit code {code}")
    run = next(p for p in (folder / "runs" / name).iterdir() if not p.name.startswith("."))
    manifest = json.loads((run / "manifest.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_seconds = records[-1]["tokens"] / records[-1]["tokens_per_s"]
    return {"wall": wall, "startup": wall - train_seconds, "tokens_per_s": steady_tokens_per_s(records),
            "steps": manifest["metrics"]["steps"]}


# The bare baseline: a hand-written TorchTrainer around the same loop ------------------------


class BareEnv:
    """The thinnest TrainEnv on Ray Train: DDP via prepare_model, gloo all-reduce, metrics kept
    in memory, no checkpoints (the job is too short to checkpoint in either variant)."""

    def __init__(self):
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.is_main = self.rank == 0
        self.device = ray.train.torch.get_device()
        self.records: list[dict] = []

    def prepare_model(self, model):
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def all_reduce_sum(self, values):
        if self.world_size == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def save_checkpoint(self, step, write, metrics):
        pass

    def latest_checkpoint(self):
        return None

    def report(self, metrics):
        self.records.append(metrics)


def bare_loop(cfg: dict) -> None:
    from tunespec_local.training import train

    env = BareEnv()
    out = tempfile.mkdtemp()
    import dataclasses

    train(dataclasses.replace(cfg["config"], output_dir=out), cfg["data"], env)
    if env.is_main:  # one machine: rank 0 leaves its metrics where the script reads them
        Path(cfg["records_file"]).write_text(json.dumps(env.records))
    shutil.rmtree(out, ignore_errors=True)


def run_bare(folder: Path, workers: int, steps: int, verbose: bool) -> dict:
    """Tokenise, start Ray, fit the same loop, stop Ray: timed end to end."""
    started = time.perf_counter()
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from tunespec_local.encode import ChatTokenizer
    from tunespec_local.training import TrainConfig, TrainData

    tokenizer = ChatTokenizer.from_folder(folder / "model")
    train_examples = [tokenizer.encode(_conversation(line), 256) for line in (folder / "train.jsonl").read_text().splitlines()]
    config = TrainConfig(model_path=str(folder / "model"), output_dir="", lora_rank=8, lora_alpha=16, lora_dropout=0.0,
                         learning_rate=0.001, batch_size=BATCH, micro_batch_size=BATCH, max_steps=steps, seed=1,
                         validation_loss=False, checkpoint_every=0, pad_token_id=tokenizer.pad_token_id)
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
    records_file = folder / f"bare-{workers}.json"
    trainer = TorchTrainer(bare_loop, train_loop_config={"config": config, "data": TrainData(train_examples), "records_file": str(records_file)},
                           scaling_config=ScalingConfig(num_workers=workers),
                           run_config=RunConfig(name=f"bare-{workers}", storage_path=str(folder / "bare")))
    trainer.fit()
    ray.shutdown()
    wall = time.perf_counter() - started
    records = json.loads(records_file.read_text())
    train_seconds = records[-1]["tokens"] / records[-1]["tokens_per_s"]
    return {"wall": wall, "startup": wall - train_seconds, "tokens_per_s": steady_tokens_per_s(records), "steps": len(records)}


def _conversation(line: str):
    """One data line (OpenAI `messages`) as tunespec's conversation model."""
    from tunespec.data import OpenAIFormat
    from tunespec.spec.model import PromptCompletionFields

    return OpenAIFormat().to_conversation(json.loads(line), PromptCompletionFields())


# --------------------------------------------------------------------------------------------


def prepare(folder: Path) -> None:
    from transformers.utils import logging as hf_logging

    from tunespec.testing import make_tiny_model

    hf_logging.disable_progress_bar()

    lines = DATA.read_text().splitlines()[:64]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    make_tiny_model(folder / "model", corpus=lines, hidden_size=256, num_layers=4, num_heads=8)


VARIANTS = {  # name -> (kind, workers); run in this order, alternating bare and backend
    "local": ("local", 1),
    "bare x1": ("bare", 1),
    "ray x1": ("ray", 1),
    "bare x2": ("bare", 2),
    "ray x2": ("ray", 2),
}


def run_variant(kind: str, workers: int, folder: Path, steps: int, verbose: bool) -> dict:
    """One variant, in this (fresh) process."""
    if kind == "bare":
        return run_bare(folder, workers, steps, verbose)
    if kind == "local":
        return run_spec(folder, "bench-local", "  name: local\n  checkpoint_every: 0", steps)
    backend = f"  name: ray\n  num_workers: {workers}\n  checkpoint_every_steps: 100000"
    return run_spec(folder, f"bench-ray-{workers}", backend, steps)


def in_subprocess(kind: str, workers: int, folder: Path, steps: int, verbose: bool) -> dict:
    """Each variant gets a fresh Python process, as a user's `tunespec apply` or script
    would: no thread pools, imports or Ray state left over from the variant before."""
    argv = [sys.executable, __file__, "--variant", kind, "--workers", str(workers), "--folder", str(folder), "--steps", str(steps)]
    proc = subprocess.run(argv + (["--verbose"] if verbose else []), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} x{workers} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    parser.add_argument("--variant", choices=["local", "ray", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verbose:
        os.environ["TUNESPEC_VERBOSE"] = "1"
    else:
        logging.getLogger("ray").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")

    if args.variant:  # a child process: run one variant, print its figures as JSON
        result = run_variant(args.variant, args.workers, Path(args.folder), args.steps, args.verbose)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="tunespec-bench-ray-") as tmp:
        folder = Path(tmp)
        prepare(folder)
        results = {name: in_subprocess(kind, n, folder, args.steps, args.verbose) for name, (kind, n) in VARIANTS.items()}

    print(f"\n{args.steps} LoRA steps x {BATCH} packed examples, tiny Llama (hidden 256, 4 layers), {os.cpu_count()} CPUs")
    print(f"{'variant':<10}{'wall s':>9}{'start-up s':>12}{'steady tok/s':>14}")
    for name, r in results.items():
        print(f"{name:<10}{r['wall']:>9.1f}{r['startup']:>12.1f}{r['tokens_per_s']:>14.0f}")
    print("\nratios (ray backend / bare TorchTrainer, same workers):")
    for n in (1, 2):
        ray, bare = results[f"ray x{n}"], results[f"bare x{n}"]
        wall = ray["wall"] / bare["wall"]
        speed = ray["tokens_per_s"] / bare["tokens_per_s"]
        print(f"  {n} worker{'s' if n > 1 else ' '}: wall {wall:.2f}x (target <= 1.20: {'OK' if wall <= 1.2 else 'OVER'}), "
              f"steady tokens/s {speed:.2f}x (target >= 0.95: {'OK' if speed >= 0.95 else 'UNDER'})")
    local = results["local"]
    print(f"  for scale: ray x1 wall / local wall = {results['ray x1']['wall'] / local['wall']:.2f}x, "
          f"steady tokens/s ray x1 / local = {results['ray x1']['tokens_per_s'] / local['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
