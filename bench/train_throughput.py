"""Benchmark: training throughput of the shared loop per precision, against the hardware ceiling.

For each precision (fp32, bf16) the local backend's loop (`tunespec_local.training.train`,
the loop the ray backend also runs) trains LoRA (rank 16, all linear layers) on synthetic
examples of a fixed length, and the run prints, side by side in one process:

- real tokens/s (the first step is warm-up and not timed) and the ratio bf16 / fp32
  (target >= 1.6 where bf16 is native: CUDA, or a CPU with AVX-512 BF16 / AMX);
- peak memory (CUDA: `torch.cuda.max_memory_allocated`; CPU: peak RSS);
- the hardware ceiling measured in the same run: matmul throughput at the model's own
  shapes in that precision, and the loop's model FLOPs per second as a fraction of it
  (MFU). Model FLOPs per token for LoRA on a frozen base: 4N (forward 2N, input gradients
  2N) + 12·layers·seq·hidden for attention (the usual PaLM-style count, causal mask ignored).

    .venv/bin/python bench/train_throughput.py --model tiny            # CPU, seconds
    python bench/train_throughput.py --device cuda --model 1b           # a ~0.9B Llama from a config

`--model 1b` builds a random-initialised Llama (hidden 2048, 24 layers, 16 heads) from a
config: no weights are downloaded. Figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from local_train import TimedEnv  # bench/ is on sys.path when a bench script runs

SIZES = {  # hidden, layers, heads, vocabulary (None: the tiny tokenizer's own, a few hundred)
    "tiny": (256, 4, 8, None),
    # SmolLM2-135M-like: hidden 576, 30 layers (8 heads so the KV heads divide) and its 49,152-token
    # vocabulary, whose output projection is a large share of the work; random weights.
    "135m": (576, 30, 8, 49152),
    "1b": (2048, 24, 16, 32000),
}


def with_vocabulary(folder: Path, vocab: int | None) -> None:
    """Grow the saved model's (tied) embedding to `vocab` rows: the tiny tokenizer trained
    for it has only a few hundred tokens, and a real vocabulary changes the shapes timed."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    if vocab and model.config.vocab_size < vocab:
        model.resize_token_embeddings(vocab)
        model.save_pretrained(folder)


def synthetic_examples(n: int, length: int, answer: int, vocab: int) -> list:
    from tunespec_local.encode import IGNORE_INDEX, Encoded

    out = []
    for i in range(n):
        ids = [(7 * i + 13 * t) % (vocab - 20) + 10 for t in range(length)]
        out.append(Encoded(ids, [IGNORE_INDEX] * (length - answer) + ids[-answer:]))
    return out


def matmul_tflops(shapes, dtype, device, seconds: float = 2.0) -> float:
    import torch

    mats = [(torch.randn(m, k, device=device).to(dtype), torch.randn(k, n, device=device).to(dtype)) for m, k, n in shapes]
    for a, b in mats:
        a @ b
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    flops, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            for (a, b), (m, k, n) in zip(mats, shapes):
                a @ b
                flops += 2 * m * k * n
        sync()
    return flops / (time.perf_counter() - start) / 1e12


def peak_memory(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig

    from tunespec.testing import make_tiny_model
    from tunespec_local.hardware import auto_precision
    from tunespec_local.run import quiet_libraries
    from tunespec_local.training import LocalEnv, TrainConfig, TrainData, train

    quiet_libraries()
    device = torch.device(args.device)
    hidden, layers, heads, vocab = SIZES[args.model]
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        folder = make_tiny_model(Path(scratch) / args.model, hidden_size=hidden, num_layers=layers, num_heads=heads, vocab_size=4096)
        with_vocabulary(folder, vocab)
        config = AutoConfig.from_pretrained(folder)
        kv = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
        per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * config.intermediate_size
        n_params = layers * per_layer + config.vocab_size * hidden
        tokens = args.batch * args.seq
        shapes = [(tokens, hidden, hidden), (tokens, hidden, kv), (tokens, hidden, config.intermediate_size), (tokens, config.intermediate_size, hidden)]
        flops_per_token = 4 * n_params + 12 * layers * args.seq * hidden
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"{args.model}: {n_params / 1e9:.2f}B parameters (built in {time.perf_counter() - start:.0f} s), {name}, "
              f"{args.batch} x {args.seq} tokens, {args.steps} steps; `precision: auto` picks {auto_precision(device.type, cuda_bf16)}")
        rates = {}
        for precision in args.precisions.split(","):
            ceiling = matmul_tflops(shapes, torch.float32 if precision == "fp32" else torch.bfloat16, device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            out = Path(scratch) / precision
            train_config = TrainConfig(model_path=str(folder), output_dir=str(out), method="peft", lora_rank=16, lora_alpha=32,
                                       lora_dropout=0.0, learning_rate=1e-4, batch_size=args.batch, micro_batch_size=args.batch,
                                       max_steps=args.steps, packing=False, checkpoint_every=0, validation_loss=False,
                                       lr_scheduler="constant", warmup_ratio=0.0, precision=precision)
            timed = TimedEnv(LocalEnv(out, device), device)
            result = train(train_config, TrainData(synthetic_examples(args.steps * args.batch, args.seq, args.seq // 4, config.vocab_size)), timed)
            rate = rates[precision] = timed.rate()
            mfu = rate * flops_per_token / 1e12 / ceiling
            print(f"  {precision}: {rate:10.0f} real tokens/s, peak memory {peak_memory(device):6.2f} GiB, "
                  f"matmul ceiling {ceiling:8.3f} TFLOP/s, MFU {mfu:6.1%}, final loss {result.train_loss:.4f}")
        if "fp32" in rates and "bf16" in rates:
            print(f"  ratio bf16 / fp32 tokens/s: {rates['bf16'] / rates['fp32']:.2f} (target >= 1.6 where bf16 is native)")


if __name__ == "__main__":
    main()
