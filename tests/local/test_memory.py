"""Memory: `plan` says whether a job fits its device before any compute is spent, and the
two ways to need less of it (activation checkpointing, a quantised QLoRA base) train real
models. Figures of the estimate against measured peaks are in bench/memory_estimate.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunespec_local.devices import DeviceInfo
from tunespec_local.memory import read_shape
from tunespec_local.memory_plan import plan_memory

GiB = 1024**3

# The published configs of models users tune (config.json fields only: no weights needed).
LLAMA_3_8B = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "intermediate_size": 14336, "tie_word_embeddings": False, "max_position_embeddings": 8192}
LLAMA_3_70B = {**LLAMA_3_8B, "hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "intermediate_size": 28672}


def model_folder(tmp_path: Path, tiny_model: Path, config: dict) -> Path:
    """A model folder with `config` as its config.json and the tiny model's tokenizer."""
    folder = tmp_path / "big-model"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (tiny_model / name).is_file():
            shutil.copy2(tiny_model / name, folder / name)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def load_spec(path: Path):
    from tunespec.pipeline import load_specs
    from tunespec.plugins.host import plugin_host

    [spec], problems = load_specs([path], plugin_host())
    assert not problems, problems
    return spec


def test_plan_shows_that_the_job_fits(project, cli):
    code, out = cli("plan", project.spec(), "--output", "json", "--state", project.root / "state.db")
    plan = json.loads(out)["specs"][0]["plan"]
    assert code == 2, out
    memory = plan["job"]["memory"]
    assert memory["verdict"] == "fits" and 0 < memory["peak_gib"] < memory["device_memory_gib"]
    assert plan["summary"]["memory"].endswith(": fits")
    assert plan["job"]["training"]["activation_checkpointing"] is False  # auto: not needed


def test_plan_refuses_a_model_that_cannot_fit_and_says_where(project, tiny_model, tmp_path, cli):
    # 400 layers of width 32768 (~5 trillion weights): more than any machine's memory.
    huge = {**LLAMA_3_8B, "hidden_size": 32768, "num_hidden_layers": 400, "num_attention_heads": 256, "intermediate_size": 131072}
    folder = model_folder(tmp_path, tiny_model, huge)
    spec = project.spec(model=folder, method="  type: full")
    code, out = cli("plan", spec, "--state", project.root / "state.db")
    assert code == 1
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "base:" in text)
    assert f"{spec}:{line}:" in out and "TS320" in out
    assert "exceeds" in out and "check_memory: false" in out
    spec = project.spec(model=folder, method="  type: full", backend_extra="  check_memory: false\n")
    code, out = cli("plan", spec, "--state", project.root / "state.db")
    assert code == 2 and "does not fit" in out


def test_cheapest_fixes_for_llama_8b_and_70b(project, tiny_model, tmp_path):
    """The estimates behind the suggestions, on GPUs users have: an 8B LoRA with long
    sequences (2 x 2048 tokens per forward) needs activation checkpointing on a 40 GiB GPU; a
    70B base needs QLoRA to fit one 80 GiB GPU (as torchtune's and the QLoRA paper's tables say)."""
    gpu40 = DeviceInfo("cuda", 40 * GiB, "40 GiB GPU", bf16=True)
    gpu80 = DeviceInfo("cuda", 80 * GiB, "80 GiB GPU", bf16=True)
    folder = model_folder(tmp_path, tiny_model, LLAMA_3_8B)
    text = project.spec(model=folder).read_text().replace("max_seq_length: 256", "max_seq_length: 2048")
    explicit = project.root / "explicit.yaml"
    explicit.write_text(text.replace("  seed: 7", "  seed: 7\n  activation_checkpointing: false"))
    auto = project.root / "auto.yaml"
    auto.write_text(text.replace("metadata:\n  name: tiny-job", "metadata:\n  name: auto-job"))

    fit = plan_memory(load_spec(explicit), None, read_shape(folder), gpu40)
    assert fit.verdict == "does not fit"
    assert fit.fixes[0].change == "hyperparameters.activation_checkpointing: true"
    assert fit.fixes[0].peak < 40 * GiB * 0.9

    decided = plan_memory(load_spec(auto), None, read_shape(folder), gpu40)
    assert decided.checkpointing and decided.verdict == "fits"
    assert plan_memory(load_spec(auto), None, read_shape(folder), gpu80).checkpointing is False  # fits without it

    (folder / "config.json").write_text(json.dumps(LLAMA_3_70B))
    big = plan_memory(load_spec(auto), None, read_shape(folder), gpu80)
    assert big.verdict == "does not fit" and big.estimate.parts["weights"] > 80 * GiB  # bf16 base: 141 GB
    assert any(f.change == "method.quantization: nf4" for f in big.fixes), big.fixes


def _examples(n: int = 8) -> list:
    from tunespec_local.encode import IGNORE_INDEX, Encoded

    examples = []
    for i in range(n):
        ids = [(7 * i + 13 * t) % 200 + 10 for t in range(24)]
        examples.append(Encoded(ids, [IGNORE_INDEX] * 16 + ids[16:]))
    return examples


def _train(tiny_model: Path, output: Path, **options):
    import torch

    from tunespec_local.training import LocalEnv, TrainConfig, TrainData, train

    config = TrainConfig(model_path=str(tiny_model), output_dir=str(output), batch_size=4, micro_batch_size=2, max_steps=2,
                         checkpoint_every=0, lora_dropout=0.0, learning_rate=1e-3, **options)
    return train(config, TrainData(_examples(), _examples(2)), LocalEnv(output, torch.device("cpu")))


def test_activation_checkpointing_trains_exactly_the_same_model(tiny_model, tmp_path):
    plain = _train(tiny_model, tmp_path / "plain")
    checkpointed = _train(tiny_model, tmp_path / "checkpointed", activation_checkpointing=True)
    assert checkpointed.model.base_model.model.is_gradient_checkpointing
    assert checkpointed.train_loss == pytest.approx(plain.train_loss, abs=1e-6)
    assert checkpointed.eval_loss == pytest.approx(plain.eval_loss, abs=1e-6)


def test_qlora_trains_adapters_on_a_4bit_base_that_load_on_the_full_base(tiny_model, tmp_path):
    import bitsandbytes as bnb
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = _train(tiny_model, tmp_path / "qlora", quantization="nf4", activation_checkpointing=True)
    quantised = [m for m in result.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantised) == 2 * 7  # every linear layer of both blocks
    # no weight is left a window of the checkpoint file's memory map (which would keep the
    # fp32 weights read to quantise resident): torch allocated every storage
    assert all(p.untyped_storage().resizable() for p in result.model.parameters())
    assert result.train_loss is not None and result.eval_loss is not None

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, result.output)
    lora_b = [p for name, p in tuned.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the adapters learned something
