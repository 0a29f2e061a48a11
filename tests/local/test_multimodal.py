"""Image data on the local backend: tiny random-initialised models of two real
architectures (LLaVA, Idefics3/SmolVLM), trained through the CLI as a user would, from
data in the formats users write (Gemini inlineData and fileData, OpenAI image_url data: URLs)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: colors
model:
  base: {model}
data:
  modality: image
  train: train.jsonl
  validation: validation.jsonl
  max_seq_length: {max_len}
method:
  type: {method}
{lora}hyperparameters:
  max_steps: {steps}
  batch_size: 4
  micro_batch_size: 2
  learning_rate: 0.005
  seed: 3
evaluation:
  metrics: [exact_match]
  max_examples: 6
  max_new_tokens: 4
backend:
  name: local
  device: cpu
  num_threads: 1
  checkpoint_every: 2
"""


def png(color: str, size: tuple[int, int] = (40, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, COLORS[color]).save(out, format="PNG")
    return out.getvalue()


def gemini(color: str, image: dict) -> dict:
    return {"contents": [{"role": "user", "parts": [image, {"text": "Which color?"}]}, {"role": "model", "parts": [{"text": color}]}]}


def openai(color: str) -> dict:
    url = "data:image/png;base64," + base64.b64encode(png(color)).decode()
    return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Which color?"}]},
                         {"role": "assistant", "content": color}]}


@pytest.fixture(scope="module", params=["llava", "idefics3"])
def vision_model(request, tmp_path_factory) -> Path:
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    return make_tiny_vision_model(tmp_path_factory.mktemp(request.param) / "model", request.param, corpus=["Which color?", *COLORS])


@pytest.fixture
def image_project(tmp_path, vision_model):
    """Train: Gemini records, half with inline PNGs, half naming PNG files beside the data.
    Validation: OpenAI records with data: URLs."""
    (tmp_path / "images").mkdir()
    train = []
    for i in range(24):
        color = list(COLORS)[i % 3]
        if i % 2:
            (tmp_path / "images" / f"{i}.png").write_bytes(png(color))
            image = {"fileData": {"mimeType": "image/png", "fileUri": f"images/{i}.png"}}
        else:
            image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png(color)).decode()}}
        train.append(gemini(color, image))
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(openai(c)) + "\n" for c in [*COLORS, *COLORS]))

    def spec(method="peft", steps=8, max_len=128) -> Path:
        lora = "  lora: {rank: 4, alpha: 8, dropout: 0.0}\n" if method == "peft" else ""
        path = tmp_path / "tunespec.yaml"
        path.write_text(SPEC.format(model=vision_model, method=method, lora=lora, steps=steps, max_len=max_len))
        return path

    return spec


def runs(spec: Path) -> list[Path]:
    folder = spec.parent / "runs" / "colors"
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def test_lora_on_images_trains_evaluates_and_reloads(image_project, vision_model, cli):
    """A full apply: media read from three kinds of reference, LoRA on the language model and
    projector (encoder frozen), base vs tuned evaluation, and the saved adapter, reloaded with
    peft, answering exactly what the run's evaluation recorded."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForMultimodalLM

    spec = image_project()
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = runs(spec)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 8 and manifest["metrics"]["train_examples"] == 24
    assert {"base", "tuned"} <= set(manifest["evaluation"])
    tuned = json.loads((run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == [*COLORS, *COLORS]

    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert not any("vision" in t for t in adapter["target_modules"])  # the encoder is frozen
    assert any("language_model" in t or "text_model" in t for t in adapter["target_modules"])

    # Reload: the published adapter on the base model gives the recorded answers.
    model = PeftModel.from_pretrained(AutoModelForMultimodalLM.from_pretrained(vision_model, dtype=torch.float32), run / "adapter")
    outputs = validation_answers(model, run, vision_model, spec)
    assert outputs == [o["output"] for o in tuned["outputs"]]

    # `tunespec export --to merged`: a standalone multimodal folder (weights and processor)
    # that answers the same.
    code, output = cli("export", run, "--to", "merged")
    assert code == 0, output
    merged = AutoModelForMultimodalLM.from_pretrained(run.parent / f"{run.name}-merged", dtype=torch.float32)
    assert validation_answers(merged, run, vision_model, spec) == outputs


def validation_answers(model, run: Path, base: Path, spec_path: Path) -> list[str]:
    """Greedy answers of `model` to the spec's validation prompts, media included, encoded
    with the tokenizer the run published and `base`'s processor (4 new tokens at most, as
    the specs here evaluate)."""
    import torch

    from tunespec_local.encode import ChatTokenizer
    from tunespec_local.evaluation import generate
    from tunespec_local.media.encode import MediaChatEncoder
    from tunespec_local.media.load import MediaReader

    encoder = MediaChatEncoder(ChatTokenizer.from_folder(run / "adapter"), base, MediaReader(spec_path.parent))
    prompts = [encoder.prompt(c) for c in _conversations(spec_path, "validation")]
    return generate(model.eval(), encoder, prompts, 4, 16, torch.device("cpu"), media_inputs=encoder.media_inputs())


def _conversations(spec_path: Path, split: str):
    import yaml

    from tunespec.data import iter_conversations
    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec_local.config import LocalConfig

    job = TuningJob.model_validate(yaml.safe_load(spec_path.read_text()))
    spec = ResolvedSpec(job=job, config=LocalConfig(), file=spec_path, document=0)
    return list(iter_conversations(spec, split))


def test_killed_image_run_resumes_with_the_same_losses(image_project, cli, tmp_path, tmp_path_factory):
    """SIGKILL mid-run, `apply` again: each step once, and the losses of a run never
    interrupted (the media of each step are the same ones, decoded again)."""
    steps = 24
    resumes_like_a_straight_run(image_project(steps=steps), steps, runs, cli, tmp_path, tmp_path_factory)


def resumes_like_a_straight_run(spec: Path, steps: int, runs_of, cli, tmp_path: Path, tmp_path_factory) -> None:
    """Start `apply`, SIGKILL it once a checkpoint is on disk, `apply` again: the run
    resumes from the checkpoint, logs each of its `steps` once, and its losses are those of
    the same spec applied in another folder without interruption."""
    import os
    import shutil
    import signal

    from tests.local.test_resume import start_apply, wait_for

    proc = start_apply(spec, tmp_path)
    try:
        wait_for(lambda: list((spec.parent / "runs").glob("*/.*.partial/checkpoints/step-*")), proc, timeout=300)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = runs_of(spec)
    manifest = json.loads((run / "manifest.json").read_text())
    assert 0 < manifest["metrics"]["resumed_from_step"] < steps
    resumed = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == list(range(1, steps + 1))

    other = tmp_path_factory.mktemp("straight")
    shutil.copytree(spec.parent, other, dirs_exist_ok=True, ignore=shutil.ignore_patterns("runs", ".tunespec", "cache"))
    code, output = cli("apply", other / spec.name, "--yes")
    assert code == 0, output
    [straight_run] = runs_of(other / spec.name)
    straight = [json.loads(line) for line in (straight_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in resumed] == pytest.approx([r["train_loss"] for r in straight], rel=1e-4, abs=1e-5)


def test_media_encoder_trained_saves_encoder_with_the_adapter(image_project, vision_model, cli):
    """`method.media_encoder: trained`: the vision encoder and projector train in full and
    travel with the adapter; reloaded, they differ from the base model's."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForMultimodalLM

    spec = image_project(steps=4)
    spec.write_text(spec.read_text().replace("  type: peft\n", "  type: peft\n  media_encoder: trained\n"))
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = runs(spec)
    saved = load_file(run / "adapter" / "adapter_model.safetensors")
    assert any(("vision" in k or "visual" in k) and "lora_" not in k for k in saved)  # the whole encoder
    base = AutoModelForMultimodalLM.from_pretrained(vision_model, dtype=torch.float32)
    before = {k: v.clone() for k, v in base.state_dict().items() if "vision" in k}
    tuned = PeftModel.from_pretrained(base, run / "adapter").merge_and_unload()
    after = {k: v for k, v in tuned.state_dict().items() if "vision" in k}
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)


def test_full_tuning_keeps_the_encoder_frozen(image_project, vision_model, cli):
    import torch
    from transformers import AutoModelForMultimodalLM

    spec = image_project(method="full", steps=3)
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = runs(spec)
    base = AutoModelForMultimodalLM.from_pretrained(vision_model, dtype=torch.float32).state_dict()
    tuned = AutoModelForMultimodalLM.from_pretrained(run / "model", dtype=torch.float32).state_dict()
    vision = [k for k in base if "vision" in k and k in tuned]
    language = [k for k in base if ("language_model" in k or "text_model" in k) and k.endswith("proj.weight") and k in tuned]
    assert vision and language
    assert all(torch.equal(base[k], tuned[k]) for k in vision)
    assert any(not torch.equal(base[k], tuned[k]) for k in language)


def test_a_broken_image_is_reported_at_its_data_line(image_project, cli):
    """Bytes that start like a PNG (so they pass the type check) but do not decode: apply
    stops before training with the file, line and part, not a traceback."""
    spec = image_project()
    train = spec.parent / "train.jsonl"
    lines = train.read_text().splitlines()
    broken = base64.b64encode(png("red")[:40]).decode()  # a PNG header, then nothing
    lines[4] = json.dumps(gemini("red", {"inlineData": {"mimeType": "image/png", "data": broken}}))
    train.write_text("\n".join(lines) + "\n")
    code, output = cli("apply", spec, "--yes")
    assert code == 1
    assert "TS236" in output and "train.jsonl:5" in output and "$.contents[0].parts[0]" in output


def test_an_example_too_long_for_its_image_is_dropped_not_cut(image_project, cli):
    """max_seq_length below an image's tokens: such examples are skipped and counted, and
    none is cut through its image."""
    spec = image_project(max_len=16)  # each image alone is 16 or more tokens
    code, output = cli("apply", spec, "--yes")
    assert code == 1
    assert "TS311" in output and "max_seq_length" in output


def test_plan_counts_image_tokens_as_training_does(image_project, vision_model, cli):
    """`validate`/`plan` count without torch; for a processor with a fixed cost per image
    (LLaVA) the counts equal the tokens training sees, exactly; for one that tiles images by
    size (Idefics3) they are labelled estimates."""
    import yaml

    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec_local.backend import LocalBackend
    from tunespec_local.config import LocalConfig
    from tunespec_local.encoded import EncodedSequences

    spec_path = image_project()
    job = TuningJob.model_validate(yaml.safe_load(spec_path.read_text()))
    spec = ResolvedSpec(job=job, config=LocalConfig(), file=spec_path, document=0)
    counter = LocalBackend().token_counter(spec)
    assert counter is not None
    counts = counter.count(_conversations(spec_path, "train"))
    if "idefics3" in str(vision_model):
        assert not counter.exact and "estimated" in counter.name
        return
    assert counter.exact
    assert cli("apply", spec_path, "--yes")[0] == 0
    [train] = [EncodedSequences(p) for p in (spec_path.parent / "cache" / "encoded").iterdir()
               if (p / "media.bin").exists() and len(EncodedSequences(p)) == 24]
    assert counts == [len(train[i]) for i in range(24)]


def test_an_image_spec_on_a_text_model_is_a_located_error(image_project, tiny_model, cli):
    """Pointing an image spec at a text-only model: validate says so at `model.base` (no
    traceback from rendering media through a text chat template)."""
    spec = image_project()
    spec.write_text(re.sub(r"(?m)^  base: .*$", f"  base: {tiny_model}", spec.read_text()))
    code, output = cli("validate", spec)
    assert code == 1
    assert "TS301" in output and "multimodal model" in output and "model.base" in output
