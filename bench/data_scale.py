"""Benchmark: memory and start-up time of the local backend as the data set grows.

For 10k, 100k and 1M chat examples (quickstart conversations, each made unique), a fresh
process runs `tunespec apply` on a tiny model for a few steps, twice:

- cold: the tokenised-data cache is empty, so the run streams every example through the
  tokenizer into it (tunespec_local.encoded) before the first step;
- warm: a second run of the same data (another seed, so a new run): the cache is reused.

Figures, each against a baseline measured in the same process:

1. peak RSS of the applying process (VmHWM) minus its RSS once torch, transformers, peft
   and the model are loaded and one forward/backward has run (measured before `apply`
   starts: what does not grow with the data). Target: the 1M-example run's figure under 1.5x the 10k run's.
2. time to the first training step with a warm cache at 1M examples, from process start
   (imports, data validation with stored token counts, opening the cache) to the first
   line of metrics.jsonl. Target: < 60 s.

With `--backend ray` the same data trains on 2 Ray workers (an embedded cluster) from the
same cache, and the figure is each Ray Train worker's peak RSS (VmHWM, read from /proc
while the workers live; whole process, model included, the model being tiny): the 1M-example
run's against the 10k run's. The driver's figure is the applying process's, as above.

    .venv/bin/python bench/data_scale.py                  # 10k, 100k, 1M (the 1M cold run takes minutes)
    .venv/bin/python bench/data_scale.py --sizes 10000,100000
    .venv/bin/python bench/data_scale.py --backend ray --warm-only --sizes 10000,1000000

Data, specs, state and cache live under .bench/data_scale/ (gitignored) and are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTED = time.time()
ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "specs" / "quickstart" / "train.jsonl"
WORK = ROOT / ".bench" / "data_scale"

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: scale-{n}
model:
  base: {model}
data:
  train: train-{n}.jsonl
  max_seq_length: 256
method:
  type: peft
  lora: {{rank: 4, alpha: 8, dropout: 0.0}}
hyperparameters:
  max_steps: 3
  batch_size: 8
  micro_batch_size: 8
  seed: {seed}
evaluation:
  metrics: []
  validation_loss: false
  compare_base: false
backend:
{backend}
"""
BACKENDS = {
    "local": "  name: local\n  device: cpu\n  checkpoint_every: 0\n  cache_dir: {cache}",
    # The driver tokenises into the same cache ($TUNESPEC_CACHE_DIR, set by run_child).
    "ray": "  name: ray\n  num_workers: 2\n  max_failures: 0",
}


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def make_data(n: int) -> Path:
    """n short support-ticket chats (about 150 bytes, 40 tokens each: the ticket's first
    words and the JSON answer), each unique. Short, so that the 1M-example cold run (which
    tokenises everything twice: validation counts, then the cache) fits in minutes."""
    path = WORK / f"train-{n}.jsonl"
    if path.exists():
        return path
    lines = [json.loads(line)["messages"] for line in QUICKSTART.read_text().splitlines()]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for i in range(n):
            _, user, model = lines[i % len(lines)]
            messages = [{"role": "user", "content": f"#{i} {user['content'][:60]}"}, {"role": "assistant", "content": model["content"]}]
            f.write(json.dumps({"messages": messages}) + "\n")
    tmp.rename(path)
    return path


def make_model() -> Path:
    folder = WORK / "model"
    if not (folder / "config.json").exists():
        from tunespec.testing import make_tiny_model

        make_tiny_model(folder, corpus=QUICKSTART.read_text().splitlines()[:200], vocab_size=600)
    return folder


class WorkerPeaks:
    """Peak RSS (VmHWM) of every live Ray Train worker process, polled from /proc."""

    def __init__(self) -> None:
        self.peaks_kb: dict[int, int] = {}
        self.stopped = False
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while not self.stopped:
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if b"RayTrainWorker" not in (proc / "cmdline").read_bytes():
                        continue
                    for line in (proc / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            pid = int(proc.name)
                            self.peaks_kb[pid] = max(self.peaks_kb.get(pid, 0), int(line.split()[1]))
                except OSError:
                    pass  # the process ended
            time.sleep(0.2)


def child(n: int, seed: int, backend: str) -> None:
    """One `apply` in this fresh process; prints a JSON line of figures."""
    from transformers import AutoModelForCausalLM

    from tunespec.cli.main import main

    model = make_model()
    loaded = AutoModelForCausalLM.from_pretrained(model)
    import peft  # noqa: F401
    import torch

    # One forward/backward, so the baseline holds what any training step allocates once
    # (autograd, kernels' scratch, thread pools), not only the weights.
    ids = torch.randint(0, 500, (8, 64))
    loaded(input_ids=ids, labels=ids).loss.backward()
    del loaded, ids
    baseline_kb = status_kb("VmRSS")
    spec = WORK / f"scale-{n}-{seed}.yaml"
    spec.write_text(SPEC.format(n=n, model=model, seed=seed, backend=BACKENDS[backend].format(cache=WORK / "cache")))
    workers = WorkerPeaks() if backend == "ray" else None
    runs = WORK / "runs" / f"scale-{n}"
    first_step: list[float] = []

    def watch() -> None:  # the first line of the run's metrics.jsonl = the first step done
        while not first_step:
            for metrics in runs.glob(".*/metrics.jsonl") if runs.is_dir() else []:
                if metrics.stat().st_size:
                    first_step.append(time.time())
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    applied = time.time()
    code = main(["apply", str(spec), "--yes", "--state", str(WORK / "state.db")])
    done = time.time()
    first_step.append(done)  # the watcher stops
    if workers is not None:
        workers.stopped = True
    print(json.dumps({
        "n": n, "code": code, "baseline_mb": baseline_kb / 1024, "peak_mb": status_kb("VmHWM") / 1024,
        "imports_s": applied - STARTED, "first_step_s": first_step[0] - STARTED, "apply_s": done - applied,
        "worker_peaks_mb": sorted(kb / 1024 for kb in workers.peaks_kb.values()) if workers else [],
    }), flush=True)


def run_child(n: int, seed: int, backend: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(n), "--seed", str(seed), "--backend", backend],
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
                              "TUNESPEC_CACHE_DIR": str(WORK / "cache")})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"apply of {n} examples failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--child", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warm-only", action="store_true", help="only the warm runs (the caches exist from an earlier run)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="local")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.seed, args.backend)

    WORK.mkdir(parents=True, exist_ok=True)
    make_model()
    results = {}
    for n in map(int, args.sizes.split(",")):
        make_data(n)
        # A new seed each time: a new run; the cache decides cold/warm.
        cold = run_child(n, int(time.time()), args.backend) if not args.warm_only else None
        warm = run_child(n, int(time.time()) + 1, args.backend)
        cold = cold or warm
        results[n] = (cold, warm)
        for name, r in (("cold", cold), ("warm", warm)):
            print(f"{n:>9,} examples {name}: peak RSS {r['peak_mb']:.0f} MB, after model load {r['baseline_mb']:.0f} MB, "
                  f"growth {r['peak_mb'] - r['baseline_mb']:.1f} MB; first step at {r['first_step_s']:.1f} s "
                  f"(imports + model {r['imports_s']:.1f} s), apply {r['apply_s']:.1f} s"
                  + (f"; Ray workers' peak RSS {', '.join(f'{mb:.0f}' for mb in r['worker_peaks_mb'])} MB" if r["worker_peaks_mb"] else ""),
                  flush=True)
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    for phase, i in (("cold", 0), ("warm", 1)):
        growth = {n: results[n][i]["peak_mb"] - results[n][i]["baseline_mb"] for n in sizes}
        print(f"peak RSS growth {phase}: {large:,} / {small:,} examples = {growth[large]:.1f} / {growth[small]:.1f} MB "
              f"= {growth[large] / growth[small]:.2f}x (target < 1.5x); whole process {results[large][i]['peak_mb']:.0f} / "
              f"{results[small][i]['peak_mb']:.0f} MB = {results[large][i]['peak_mb'] / results[small][i]['peak_mb']:.2f}x")
    if args.backend == "ray":
        peak = {n: max(results[n][1]["worker_peaks_mb"] or [0.0]) for n in sizes}
        print(f"Ray worker peak RSS, warm: {large:,} / {small:,} examples = {peak[large]:.0f} / {peak[small]:.0f} MB "
              f"= {peak[large] / max(peak[small], 1e-9):.2f}x (target < 1.5x; whole worker process, tiny model)")
        return  # the run's metrics.jsonl reaches its folder only at the end: no first-step time on Ray
    warm, cold = results[large][1], results[large][0]
    print(f"time to first step, warm cache, {large:,} examples: {warm['first_step_s']:.1f} s from process start (target < 60 s), "
          f"{warm['first_step_s'] - warm['imports_s']:.1f} s of it after imports and model load; "
          f"cold: {cold['first_step_s']:.1f} s ({cold['first_step_s'] - cold['imports_s']:.1f} s after imports)")


if __name__ == "__main__":
    main()
