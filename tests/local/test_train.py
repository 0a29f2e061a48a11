"""Training runs end to end: through the CLI as a user runs them, and through the shared
loop directly (what the Ray backend calls)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.local.conftest import FULL, PEFT

from tunespec_local.encode import ChatTokenizer
from tunespec_local.training import LocalEnv, TrainConfig, TrainData, default_device, train

pytestmark = pytest.mark.slow


def test_lora_run_through_the_cli(project, cli):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    spec = project.spec(method=PEFT, steps=6)
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = project.runs()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 6
    evaluation = manifest["evaluation"]
    for model in ("base", "tuned"):
        assert set(evaluation[model]) >= {"json_field_match", "exact_match", "json_valid", "examples"}
        assert evaluation[model]["examples"] == 6
    assert (run / "evaluation" / "tuned.json").is_file()

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all({"step", "epoch", "train_loss", "learning_rate", "tokens", "tokens_per_s"} <= set(r) for r in records)
    assert "eval_loss" in records[-1]
    assert not (run / "checkpoints").exists()  # removed after success: the adapter is the result

    base = AutoModelForCausalLM.from_pretrained(json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    PeftModel.from_pretrained(base, run / "adapter")
    assert cli("verify", run)[0] == 0


def test_full_run_through_the_cli(project, cli):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    code, output = cli("apply", project.spec(method=FULL, steps=3, lr=1e-3), "--yes")
    assert code == 0, output
    [run] = project.runs()
    AutoModelForCausalLM.from_pretrained(run / "model")
    assert AutoTokenizer.from_pretrained(run / "model").chat_template
    assert cli("verify", run)[0] == 0


def _data(tiny_model: Path, project) -> tuple[ChatTokenizer, TrainData]:
    from tunespec.data import Conversation, Part, Turn

    tokenizer = ChatTokenizer.from_folder(tiny_model)

    def load(split):
        out = []
        for line in (project.root / f"{split}.jsonl").read_text().splitlines():
            m = json.loads(line)["messages"]
            conv = Conversation(system=[Part.of_text(m[0]["content"])],
                                turns=[Turn("user", [Part.of_text(m[1]["content"])]), Turn("model", [Part.of_text(m[2]["content"])])])
            out.append(tokenizer.encode(conv, 256))
        return out

    return tokenizer, TrainData(load("train"), load("validation"))


@pytest.mark.parametrize("method", ["peft", "full"])
def test_saved_outputs_reload_with_identical_logits(tiny_model, project, tmp_path, method):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tokenizer, data = _data(tiny_model, project)
    config = TrainConfig(model_path=str(tiny_model), output_dir=str(tmp_path / "run"), method=method, lora_rank=4,
                         lora_dropout=0.0, learning_rate=1e-2, batch_size=4, micro_batch_size=2, max_steps=3,
                         checkpoint_every=0, pad_token_id=tokenizer.pad_token_id)
    result = train(config, data, LocalEnv(tmp_path / "run", default_device("cpu")))
    if method == "peft":
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), result.output)
    else:
        reloaded = AutoModelForCausalLM.from_pretrained(result.output)
    ids = torch.tensor([data.validation[0].input_ids])
    with torch.no_grad():
        trained = result.model(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model)(input_ids=ids).logits
        torch.testing.assert_close(reloaded.eval()(input_ids=ids).logits, trained)
    assert not torch.allclose(trained, base)  # training changed the model, so the comparison means something


def test_gradient_accumulation_matches_one_big_batch(tiny_model, project, tmp_path):
    """micro_batch_size changes memory use, not the result: the loss is normalised over the
    whole step's trained tokens."""
    import torch

    tokenizer, data = _data(tiny_model, project)
    states = []
    for micro in (4, 1):
        config = TrainConfig(model_path=str(tiny_model), output_dir=str(tmp_path / f"m{micro}"), method="full",
                             learning_rate=1e-3, batch_size=4, micro_batch_size=micro, max_steps=2, checkpoint_every=0,
                             max_grad_norm=None, pad_token_id=tokenizer.pad_token_id, validation_loss=False)
        model = train(config, data, LocalEnv(tmp_path / f"m{micro}", default_device("cpu"))).model
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=1e-4, atol=1e-5)


def test_training_lowers_the_loss(tiny_model, project, tmp_path):
    tokenizer, data = _data(tiny_model, project)
    config = TrainConfig(model_path=str(tiny_model), output_dir=str(tmp_path / "run"), method="full", learning_rate=3e-3,
                         batch_size=8, micro_batch_size=8, epochs=4, checkpoint_every=0, pad_token_id=tokenizer.pad_token_id,
                         lr_scheduler="constant", warmup_ratio=0.0)
    train(config, data, LocalEnv(tmp_path / "run", default_device("cpu")))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert len(evals) == 4  # once per epoch
    assert records[-1]["train_loss"] < 0.7 * records[0]["train_loss"]
    assert evals[-1] < evals[0]


def test_background_collation_gives_the_same_run(tiny_model, project, tmp_path):
    tokenizer, data = _data(tiny_model, project)
    losses = []
    for workers in (0, 2):
        config = TrainConfig(model_path=str(tiny_model), output_dir=str(tmp_path / f"w{workers}"), method="peft", lora_rank=4,
                             lora_dropout=0.0, learning_rate=1e-2, batch_size=4, micro_batch_size=2, max_steps=4,
                             checkpoint_every=0, pad_token_id=tokenizer.pad_token_id, dataloader_workers=workers, validation_loss=False)
        train(config, data, LocalEnv(tmp_path / f"w{workers}", default_device("cpu")))
        losses.append([json.loads(line)["train_loss"] for line in (tmp_path / f"w{workers}" / "metrics.jsonl").read_text().splitlines()])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
