"""Preference tuning (DPO) on the shared loop: the loss is DPO's, packing changes nothing,
and a run through the CLI learns to prefer the preferred answers of held-out pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.local.conftest import QUICKSTART, SPEC, records

from tunespec.data import Conversation, Part, Turn

from tunespec_local.encode import ChatTokenizer
from tunespec_local.training import LocalEnv, TrainConfig, TrainData, default_device, train
from tunespec_local.training.objectives import PreferenceObjective, collate_pairs, sequence_logps

pytestmark = pytest.mark.slow

PRIORITIES = ["low", "medium", "high", "urgent"]


def wrong_priority(answer: str) -> str:
    """A plausible wrong triage: the right category, the next priority."""
    label = json.loads(answer)
    label["priority"] = PRIORITIES[(PRIORITIES.index(label["priority"]) + 1) % len(PRIORITIES)]
    return json.dumps(label)


def pair_record(record: dict) -> dict:
    """A quickstart example as an OpenAI preference pair."""
    *prompt, answer = record["messages"]
    return {"input": {"messages": prompt}, "preferred_output": [answer],
            "non_preferred_output": [{"role": "assistant", "content": wrong_priority(answer["content"])}]}


def write_pairs(folder: Path, split: str, n: int, source: str | None = None) -> None:
    """`split`.jsonl in `folder`: the first `n` quickstart examples of `source` (default: the same split) as pairs."""
    examples = records(QUICKSTART / f"{source or split}.jsonl", n)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(pair_record(r)) + "\n" for r in examples))


def encoded_pairs(tokenizer: ChatTokenizer, split: str, n: int) -> list:
    out = []
    for record in records(QUICKSTART / f"{split}.jsonl", n):
        system, user, answer = (m["content"] for m in record["messages"])
        conv = Conversation([Turn("user", [Part.of_text(user)]), Turn("model", [Part.of_text(answer)])], [Part.of_text(system)],
                            rejected=Turn("model", [Part.of_text(wrong_priority(answer))]))
        out.append(tokenizer.encode_pair(conv, 256))
    return out


def test_packed_pairs_score_like_padded_pairs(tiny_model):
    """Both sequences of every pair in one packed row give each response the log-probability
    it gets in a padded batch, and only response tokens count."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = ChatTokenizer.from_folder(tiny_model)
    pairs = encoded_pairs(tokenizer, "validation", 3)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        packed, packed_lengths = sequence_logps(model, collate_pairs(pairs, True, tokenizer.pad_token_id), keeps_logits=True)
        padded, padded_lengths = sequence_logps(model, collate_pairs(pairs, False, tokenizer.pad_token_id), keeps_logits=False)
    torch.testing.assert_close(packed, padded, rtol=1e-4, atol=1e-3)
    assert packed_lengths.tolist() == [float(s.trained_tokens) for p in pairs for s in (p.chosen, p.rejected)]


@pytest.mark.parametrize("method", ["peft", "full"])
def test_first_step_is_dpo_at_the_reference(tiny_model, tmp_path, method):
    """Before any update the policy is its reference (the base with adapters disabled, or a
    frozen copy), so every margin is 0 and the DPO loss is log 2; then training moves the
    rewards apart, and the reference stays where it was."""
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    data = TrainData(encoded_pairs(tokenizer, "train", 16), encoded_pairs(tokenizer, "validation", 4))
    config = TrainConfig(model_path=str(tiny_model), output_dir=str(tmp_path), method=method, objective="preference", beta=0.5,
                         lora_rank=4, lora_dropout=0.0, learning_rate=5e-3 if method == "peft" else 1e-3, batch_size=4,
                         micro_batch_size=2, max_steps=6, checkpoint_every=0, pad_token_id=tokenizer.pad_token_id,
                         lr_scheduler="constant", warmup_ratio=0.0)
    result = train(config, data, LocalEnv(tmp_path, default_device("cpu")))
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert log[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert log[0]["reward_margin"] == pytest.approx(0.0, abs=1e-4)
    assert {"reward_accuracy", "rewards_chosen", "rewards_rejected"} <= set(log[0])
    assert log[-1]["reward_margin"] > 0.1 and log[-1]["train_loss"] < math.log(2)
    assert {"eval_loss", "eval_reward_accuracy", "eval_reward_margin"} <= set(log[-1])
    assert result.summary()["final_eval_reward_accuracy"] == log[-1]["eval_reward_accuracy"]


def test_sft_weight_keeps_the_preferred_answers_likely(tiny_model, tmp_path):
    """`sft_weight` (RPO) adds the preferred responses' mean token NLL to DPO's loss: at the
    reference the loss is log 2 plus that NLL, and training then makes the preferred answers
    more likely than plain DPO leaves them (plain DPO only widens the gap)."""
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    data = TrainData(encoded_pairs(tokenizer, "train", 16), encoded_pairs(tokenizer, "validation", 4))

    def run(weight: float) -> list[dict]:
        out = tmp_path / f"w{weight}"
        config = TrainConfig(model_path=str(tiny_model), output_dir=str(out), objective="preference", beta=0.5, sft_weight=weight,
                             lora_rank=4, lora_dropout=0.0, learning_rate=5e-3, batch_size=4, micro_batch_size=4, max_steps=8,
                             checkpoint_every=0, pad_token_id=tokenizer.pad_token_id, lr_scheduler="constant", warmup_ratio=0.0)
        train(config, data, LocalEnv(out, default_device("cpu")))
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    plain, weighted = run(0.0), run(1.0)
    assert plain[0]["nll_chosen"] == pytest.approx(weighted[0]["nll_chosen"], rel=1e-5)  # the same start
    assert plain[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert weighted[0]["train_loss"] == pytest.approx(math.log(2) + weighted[0]["nll_chosen"], rel=1e-4)
    assert weighted[-1]["nll_chosen"] < weighted[0]["nll_chosen"]
    assert weighted[-1]["nll_chosen"] < plain[-1]["nll_chosen"] - 0.1
    assert weighted[-1]["reward_margin"] > 0  # and it still learns the preference


def test_preference_run_through_the_cli(project, cli):
    """A user's preference spec: pairs in OpenAI's format, a validation set, LoRA on the tiny
    model. The run publishes an adapter and shows base vs tuned preference accuracy. (The
    tiny model is random, so it is asked to learn its training pairs: validation repeats
    them. specs/preference-chain shows a real model generalising to held-out pairs.)"""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    write_pairs(project.root, "train", 8)
    write_pairs(project.root, "validation", 8, source="train")
    method = "  type: peft\n  objective: preference\n  lora: {rank: 8, alpha: 16, dropout: 0.0}\n  preference: {beta: 0.5}"
    spec = project.spec(method=method, steps=8, lr=0.02)
    code, output = cli("plan", spec)
    assert code == 2 and "preference (DPO sigmoid, beta=0.5" in output, output
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = project.runs()
    manifest = json.loads((run / "manifest.json").read_text())
    base, tuned = manifest["evaluation"]["base"], manifest["evaluation"]["tuned"]
    assert base["pairs"] == tuned["pairs"] == 8
    assert tuned["preference_accuracy"] > base["preference_accuracy"]
    assert manifest["evaluation"]["metrics"][0] == "preference_accuracy" and "preference_accuracy" in output
    assert {"exact_match", "json_field_match"} <= set(tuned)  # generation metrics on the pairs' prompts
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9))
    assert "eval_reward_accuracy" in log[-1]
    base_model = AutoModelForCausalLM.from_pretrained(json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    PeftModel.from_pretrained(base_model, run / "adapter")
    assert cli("verify", run)[0] == 0


def test_conversations_are_refused_for_a_preference_spec(project, cli):
    method = "  type: peft\n  objective: preference"
    code, output = cli("validate", project.spec(method=method))
    assert code == 1
    assert "TS233" in output and "train.jsonl:1" in output


def test_preference_builds_on_a_supervised_run(project, cli, tmp_path):
    """SFT, then DPO from that run: one `apply` over the folder runs them in order, the
    SFT adapter is merged into its base once (the DPO run's base and reference), and the
    DPO run records which run it built on."""
    import shutil

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sft = project.spec(name="triage-sft", steps=4)
    shutil.move(sft, project.root / "sft.yaml")
    pairs = project.root / "pairs"
    pairs.mkdir()
    write_pairs(pairs, "train", 8)
    write_pairs(pairs, "validation", 4, source="train")
    method = "  type: peft\n  objective: preference\n  lora: {rank: 4, alpha: 8, dropout: 0.0}"
    text = SPEC.format(name="triage-dpo", model="run:triage-sft", method=method, steps=4, lr=0.01, checkpoint_every=0, backend_extra="")
    (project.root / "dpo.yaml").write_text(text.replace("train.jsonl", "pairs/train.jsonl").replace("validation.jsonl", "pairs/validation.jsonl"))

    code, output = cli("apply", project.root, "--yes")
    assert code == 0, output
    assert output.index("triage-sft: run") < output.index("triage-dpo: run")
    [sft_run] = project.runs("triage-sft")
    [dpo_run] = project.runs("triage-dpo")
    merged = Path(json.loads((dpo_run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    assert merged.name == f"run-{sft_run.name}" and (merged / "config.json").is_file()
    manifest = json.loads((dpo_run / "manifest.json").read_text())
    assert manifest["base_model"] == "run:triage-sft"
    assert manifest["outputs"]["upstream"]["run_id"] == sft_run.name
    # The merged base is exactly the SFT model: base + SFT adapter.
    import torch

    ids = torch.tensor([[5, 6, 7, 8]])
    sft_base = json.loads((sft_run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    sft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft_base), sft_run / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(merged)(input_ids=ids).logits, sft_model(input_ids=ids).logits,
                                   rtol=1e-4, atol=1e-4)
    code, output = cli("plan", project.root)
    assert code == 0, output  # nothing changed: both no-op
