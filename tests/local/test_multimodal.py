"""Image data on the local backend: tiny random-initialised models of real architectures
(LLaVA and Idefics3 for every image test; Qwen2.5-VL, Gemma 3 and SmolVLM in tests of their
own), trained through the CLI as a user would, from data in the formats users write (Gemini
inlineData and fileData, OpenAI image_url data: URLs)."""

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
    return colors_project(tmp_path, vision_model)


def colors_project(tmp_path: Path, model: Path):
    """`image_project`'s data in `tmp_path`, and its spec writer for `model`."""
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
        path.write_text(SPEC.format(model=model, method=method, lora=lora, steps=steps, max_len=max_len))
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
    """`validate`/`plan` count without torch, and the counts equal the tokens training sees,
    exactly: for a processor with a fixed cost per image (LLaVA) and for one that tiles
    images by size (Idefics3)."""
    spec_path = image_project()
    counter, counts = planned_counts(spec_path)
    assert counter.exact and "estimated" not in counter.name
    assert cli("apply", spec_path, "--yes")[0] == 0
    assert counts == trained_lengths(spec_path, 24)


def planned_counts(spec_path: Path):
    """The token counter `validate` and `plan` use for the spec, and its counts of the train split."""
    import yaml

    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec_local.backend import LocalBackend
    from tunespec_local.config import LocalConfig

    job = TuningJob.model_validate(yaml.safe_load(spec_path.read_text()))
    spec = ResolvedSpec(job=job, config=LocalConfig(), file=spec_path, document=0)
    counter = LocalBackend().token_counter(spec)
    assert counter is not None
    return counter, counter.count(_conversations(spec_path, "train"))


def trained_lengths(spec_path: Path, examples: int) -> list[int]:
    """Tokens of each training example as the applied run encoded them (its cache)."""
    from tunespec_local.encoded import EncodedSequences

    [train] = [EncodedSequences(p) for p in (spec_path.parent / "cache" / "encoded").iterdir()
               if (p / "media.bin").exists() and len(EncodedSequences(p)) == examples]
    return [len(train[i]) for i in range(examples)]


# -- Qwen2.5-VL (3-D rotary positions) and SmolVLM ------------------------------------------------


@pytest.fixture(scope="module")
def qwen_model(tmp_path_factory) -> Path:
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    return make_tiny_vision_model(tmp_path_factory.mktemp("qwen2_5_vl") / "model", "qwen2_5_vl", corpus=["Which color?", *COLORS])


def planned_exactly_and_applied(spec: Path, cli, steps: int) -> Path:
    """`plan` says `spec`'s token counts are exact and they are what `apply` then encodes;
    the run trains `steps` steps over all 24 examples and evaluates base and tuned. The run."""
    code, output = cli("plan", spec)
    assert re.search(r"token counts +exact", output), output
    counter, counts = planned_counts(spec)
    assert counter.exact
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    assert counts == trained_lengths(spec, 24)
    [run] = runs(spec)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == steps and manifest["metrics"]["train_examples"] == 24
    assert {"base", "tuned"} <= set(manifest["evaluation"])
    return run


def plans_trains_evaluates_and_reloads(model_folder: Path, encoder: str, cli, tmp_path: Path) -> None:
    """A family's full story through the CLI: `plan` counts its images exactly and as training
    encodes them, every example trains, base and tuned answers are written, LoRA stays off the
    encoder (its attribute name is `encoder`), and the adapter on the base model answers what
    the run recorded."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForMultimodalLM

    spec = colors_project(tmp_path, model_folder)()
    run = planned_exactly_and_applied(spec, cli, steps=8)
    tuned = json.loads((run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == [*COLORS, *COLORS]
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert not any(encoder in t for t in adapter["target_modules"])  # the encoder is frozen
    assert any("language_model" in t for t in adapter["target_modules"])

    model = PeftModel.from_pretrained(AutoModelForMultimodalLM.from_pretrained(model_folder, dtype=torch.float32), run / "adapter")
    assert validation_answers(model, run, model_folder, spec) == [o["output"] for o in tuned["outputs"]]


def test_lora_on_qwen2_5_vl_plans_trains_evaluates_and_reloads(qwen_model, cli, tmp_path):
    """Qwen2.5-VL, whose processor loads without its video part (torchvision is not
    installed): `plan` counts its images exactly (resized to whole patches), every example
    trains, base and tuned answers are written, and the adapter on the base model answers
    what the run recorded."""
    plans_trains_evaluates_and_reloads(qwen_model, "visual", cli, tmp_path)


class BesideTheProcessor:
    """`records` (written as `spec`'s train data) through the loop on `folder`'s model, beside
    the model's own processor encoding of the same texts and images: the loop's training
    batch (`batch`, padded, never packed) and the processor's (`expected`)."""

    def __init__(self, folder: Path, tmp_path: Path, spec: Path, records: list[dict]):
        import torch
        from transformers import AutoModelForMultimodalLM

        from tunespec_local.encode import load_tokenizer
        from tunespec_local.media.encode import MediaChatEncoder
        from tunespec_local.media.load import MediaReader
        from tunespec_local.training.objectives import SupervisedObjective

        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        self.conversations = _conversations(spec, "train")
        self.encoder = encoder = MediaChatEncoder(load_tokenizer(folder), folder, MediaReader(tmp_path))
        self.model = AutoModelForMultimodalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.batch = SupervisedObjective(media=encoder.media_inputs()).collate([encoder.encode(c, 10**6) for c in self.conversations], True,
                                                                               encoder.pad_token_id)
        self.expected = self.processed([encoder.chat.render(encoder.messages(c)[0]) for c in self.conversations], "right")

    def processed(self, texts: list[str], side: str) -> dict:
        from tunespec_local.media.encode import decode_image

        images = [[decode_image(m.data) for m in self.encoder.messages(c)[1]] for c in self.conversations]
        return self.encoder.processor(text=texts, images=images, padding=True, padding_side=side, return_tensors="pt")

    def generation_matches(self) -> None:
        """tunespec's `generate` answers what the model generates on the processor's left-padded prompts."""
        import torch

        from tunespec_local.evaluation import generate

        encoder, conversations = self.encoder, self.conversations
        prompts = [encoder.prompt(c) for c in conversations]
        with torch.no_grad():
            ours = generate(self.model, encoder, prompts, 4, 16, torch.device("cpu"), media_inputs=encoder.media_inputs())
            inputs = self.processed([encoder.chat.render(encoder.messages(c)[0][:-1], add_generation_prompt=True) for c in conversations], "left")
            assert len(prompts) == inputs["input_ids"].shape[0] and [len(p.input_ids) for p in prompts] == inputs["attention_mask"].sum(1).tolist()
            out = self.model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=encoder.pad_token_id,
                                      eos_token_id=encoder.eos_token_id)
        assert ours == [encoder.decode(row[inputs["input_ids"].shape[1]:].tolist()) for row in out]


def test_qwen_batches_get_the_3d_positions_of_qwens_own_processor(qwen_model, tmp_path):
    """Qwen2-VL's family places an image's tokens on their patch grid (mrope), from the
    batch's `mm_token_type_ids` and `image_grid_thw`; without the first it silently falls
    back to 1-D positions. A training batch (padded, images of different sizes) gives the
    logits of the processor's own encoding of the same texts and images, and generation the
    tokens `generate` gives on the processor's left-padded batch."""
    import torch

    from tunespec_local.training.objectives import forward_logits

    spec = colors_project(tmp_path, qwen_model)()
    records = [gemini("red", {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png("red", (40, 30))).decode()}}),
               gemini("blue", {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png("blue", (16, 64))).decode()}}),
               gemini("green", {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png("green", (8, 8))).decode()}})]
    side = BesideTheProcessor(qwen_model, tmp_path, spec, records)
    batch, expected, model = side.batch, side.expected, side.model
    assert "position_ids" not in batch
    assert torch.equal(batch["input_ids"], expected["input_ids"]) and torch.equal(batch["attention_mask"], expected["attention_mask"])
    assert len(set(map(tuple, expected["image_grid_thw"].tolist()))) == 3
    mask = expected["attention_mask"].bool()
    with torch.no_grad():
        logits = forward_logits(model, batch)[mask]
        assert torch.allclose(logits, model(**expected, use_cache=False).logits[mask], atol=1e-5)
        flat = forward_logits(model, {k: v for k, v in batch.items() if k != "mm_token_type_ids"})[mask]  # 1-D positions
        assert not torch.allclose(logits, flat, atol=1e-3)  # (so the comparison above can tell)

    side.generation_matches()


def test_smolvlm_plans_exact_counts_and_trains(cli, tmp_path):
    """SmolVLM (Idefics3's architecture under its own processor, loaded without its video
    part): `plan` counts exactly what training encodes, and a LoRA run trains every example."""
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    model = make_tiny_vision_model(tmp_path / "model", "smolvlm", corpus=["Which color?", *COLORS])
    planned_exactly_and_applied(colors_project(tmp_path, model)(steps=2), cli, steps=2)


# -- Gemma 3 (image tokens attend to each other both ways) -----------------------------------------


@pytest.fixture(scope="module")
def gemma_model(tmp_path_factory) -> Path:
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    return make_tiny_vision_model(tmp_path_factory.mktemp("gemma3") / "model", "gemma3", corpus=["Which color?", *COLORS])


def test_lora_on_gemma3_plans_trains_evaluates_and_reloads(gemma_model, cli, tmp_path):
    """Gemma 3: `plan` counts its images exactly (`<start_of_image>`, a fixed run of soft
    tokens, `<end_of_image>`), every example trains, base and tuned answers are written, and
    the adapter on the base model answers what the run recorded."""
    plans_trains_evaluates_and_reloads(gemma_model, "vision", cli, tmp_path)


def test_gemma3_batches_let_image_tokens_attend_both_ways_as_its_processor_does(gemma_model, tmp_path):
    """Gemma 3's processor marks image tokens in `token_type_ids`, from which the model makes
    each image's tokens one block that attends both ways (without them: causal, silently). A
    padded training batch (one example with two images) gives the logits of the processor's
    own encoding of the same texts and images, and generation the tokens `generate` gives on
    the processor's left-padded batch."""
    import torch

    from tunespec_local.training.objectives import forward_logits

    spec = colors_project(tmp_path, gemma_model)()

    def image(color: str) -> dict:
        return {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png(color)).decode()}}

    two = {"contents": [{"role": "user", "parts": [image("red"), {"text": "Which colors?"}, image("blue")]},
                        {"role": "model", "parts": [{"text": "red blue"}]}]}
    records = [gemini("green", image("green")), two, gemini("blue", image("blue"))]
    side = BesideTheProcessor(gemma_model, tmp_path, spec, records)
    batch, expected, model = side.batch, side.expected, side.model
    assert torch.equal(batch["input_ids"], expected["input_ids"]) and torch.equal(batch["attention_mask"], expected["attention_mask"])
    assert torch.equal(batch["token_type_ids"], expected["token_type_ids"]) and int(expected["token_type_ids"].sum()) == 4 * 4
    mask = expected["attention_mask"].bool()
    with torch.no_grad():
        logits = forward_logits(model, batch)[mask]
        assert torch.allclose(logits, model(**expected, use_cache=False).logits[mask], atol=1e-5)
        causal = forward_logits(model, {k: v for k, v in batch.items() if k != "token_type_ids"})[mask]  # image tokens causal
        assert not torch.allclose(logits, causal, atol=1e-3)  # (so the comparison above can tell)

    side.generation_matches()


# -- counting without torch, for processors that resize or tile by the image's size ------------

SIZED = [(91, 37), (37, 91), (300, 200), (1024, 17), (17, 1024), (2000, 1500), (5, 7), (64, 64), (33, 65)]
"""(width, height) of the counting tests' images: small, tall, wide, past every maximum."""

FAMILIES = ("idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl", "gemma3")


def sized_processor(folder: Path, family: str, layout: str):
    """A tiny real processor of `family` saved to `folder` with a tokenizer and chat template
    (all validate and plan read; no weights), settings scaled down so the test's images span
    every branch of its arithmetic. `layout`: "saved" as transformers 5 saves it (settings
    nested in processor_config.json), or "hub" as most Hub folders have it (the image
    processor's settings in preprocessor_config.json, Qwen2-VL's as min/max_pixels)."""
    from tunespec.testing.tiny_multimodal import _tokenizer, chat_template, without_video

    corpus = ["Which color?", *COLORS]
    if family in ("idefics3", "smolvlm"):
        tokens = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
        tokenizer = _tokenizer(corpus, 512, tokens + [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)])
        if family == "idefics3":
            from transformers import Idefics3Processor
            from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

            images = Idefics3ImageProcessorPil(size={"longest_edge": 96}, max_image_size={"longest_edge": 32})
            processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=4, chat_template=chat_template())
        else:
            from transformers import SmolVLMProcessor
            from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

            images = SmolVLMImageProcessorPil(size={"longest_edge": 80}, max_image_size={"longest_edge": 16})
            processor = without_video(SmolVLMProcessor)(image_processor=images, tokenizer=tokenizer, image_seq_len=2, chat_template=chat_template())
    elif family in ("qwen2_vl", "qwen2_5_vl"):
        from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        tokenizer = _tokenizer(corpus, 512, ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
        pixels = {"qwen2_vl": (16 * 16, 64 * 64, 4), "qwen2_5_vl": (8 * 8, 40 * 40, 2)}[family]
        images = Qwen2VLImageProcessorPil(min_pixels=pixels[0], max_pixels=pixels[1], patch_size=pixels[2], merge_size=2)
        cls = without_video(Qwen2VLProcessor if family == "qwen2_vl" else Qwen2_5_VLProcessor)
        processor = cls(image_processor=images, tokenizer=tokenizer, chat_template=chat_template(image="<|vision_start|><|image_pad|><|vision_end|>"))
    else:
        from transformers import Gemma3Processor
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

        media = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
        tokenizer = _tokenizer(corpus, 512, list(media.values()), extra_special_tokens=media)  # attributes the processor reads
        # Pan-and-scan on in the image processor's settings: the processor's own defaults turn it off.
        images = Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, do_pan_and_scan=True, pan_and_scan_min_crop_size=8)
        processor = Gemma3Processor(image_processor=images, tokenizer=tokenizer, image_seq_length=5, chat_template=chat_template(image="<start_of_image>"))
    processor.save_pretrained(folder)
    if layout == "hub":
        settings = json.loads((folder / "processor_config.json").read_text())
        legacy = {**settings.pop("image_processor"), "processor_class": settings["processor_class"]}
        if family.startswith("qwen"):  # Qwen2-VL's Hub folders: only preprocessor_config.json, with min/max_pixels
            size = legacy.pop("size")
            legacy.update(min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
            (folder / "processor_config.json").unlink()
        else:
            (folder / "processor_config.json").write_text(json.dumps(settings))
        (folder / "preprocessor_config.json").write_text(json.dumps(legacy))
    return processor


def sized_image_data(folder: Path) -> Path:
    """A spec whose examples hold images of every size in SIZED (PNG, one JPEG, one WebP;
    inline and as files), one with three images, and the spec's model at `folder`."""
    from PIL import Image

    def encoded(i: int, size: tuple[int, int]) -> tuple[bytes, str]:
        fmt = {3: "JPEG", 5: "WEBP"}.get(i, "PNG")
        out = io.BytesIO()
        Image.new("RGB", size, list(COLORS.values())[i % 3]).save(out, format=fmt)
        return out.getvalue(), f"image/{fmt.lower()}"

    root = folder.parent
    (root / "images").mkdir()
    records = []
    for i, size in enumerate(SIZED):
        data, mime = encoded(i, size)
        if i % 2:
            (root / "images" / f"{i}.img").write_bytes(data)
            image = {"fileData": {"mimeType": mime, "fileUri": f"images/{i}.img"}}
        else:
            image = {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
        records.append(gemini(list(COLORS)[i % 3], image))
    three = [{"inlineData": {"mimeType": m, "data": base64.b64encode(d).decode()}} for d, m in (encoded(i, SIZED[i]) for i in (0, 2, 5))]
    records.append({"contents": [{"role": "user", "parts": [three[0], {"text": "Which colors?"}, three[1], three[2]]},
                                 {"role": "model", "parts": [{"text": "red blue"}]}]})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "validation.jsonl").write_text(json.dumps(records[0]) + "\n")
    spec = root / "tunespec.yaml"
    spec.write_text(SPEC.format(model=folder, method="peft", lora="", steps=1, max_len=100000))
    return spec


def media_counter(spec: Path):
    """The counter `validate` and `plan` use for the spec (LocalBackend.token_counter's, which
    first checks that `model.base` holds a whole model: here only its processor)."""
    import yaml

    from tunespec.spec.model import TuningJob
    from tunespec_local.media.count import MediaTokenCounter

    job = TuningJob.model_validate(yaml.safe_load(spec.read_text()))
    return MediaTokenCounter(job.model.base, None, "tiny", spec.parent, job.data.documents, "image", text_only=False)


@pytest.mark.parametrize("layout", ["saved", "hub"])
@pytest.mark.parametrize("family", FAMILIES)
def test_plan_counts_images_of_any_size_as_training_does(family, layout, tmp_path):
    """Processors whose images cost what their size makes them (Qwen2-VL and Qwen2.5-VL
    resize to whole patches, Idefics3/SmolVLM tile) and Gemma 3's fixed run: `validate` and
    `plan` count each example, from the image files' headers and the processor's saved
    settings, exactly as the training encoder expands it with the real processor; from the
    settings as transformers 5 saves them and as Hub folders have them."""
    from tunespec_local.encode import load_tokenizer
    from tunespec_local.media.encode import MediaChatEncoder
    from tunespec_local.media.load import MediaReader

    folder = tmp_path / "model"
    processor = sized_processor(folder, family, layout)
    spec = sized_image_data(folder)
    conversations = _conversations(spec, "train")
    counter = media_counter(spec)
    counts = counter.count(conversations)
    assert counter.exact and "estimated" not in counter.name

    encoder = MediaChatEncoder(load_tokenizer(folder), folder, MediaReader(tmp_path))
    # Loaded from the folder, as training loads it (SmolVLM's and Qwen's without their video
    # processor, which AutoProcessor builds only with torchvision).
    assert type(encoder.processor).__name__ == type(processor).__name__
    assert counts == [len(encoder.encode(c, 10**6).input_ids) for c in conversations]
    if family != "gemma3":
        assert len(set(counts[: len(SIZED)])) >= 4  # the size made a difference


def test_an_unreadable_image_is_counted_as_an_estimate(tmp_path):
    """An image PIL cannot open, for a processor that reads its size: that example is
    estimated and the counts say so (the data checks report the file at its line)."""
    folder = tmp_path / "model"
    sized_processor(folder, "qwen2_vl", "saved")
    spec = sized_image_data(folder)
    (tmp_path / "images" / "1.img").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    counter = media_counter(spec)
    counts = counter.count(_conversations(spec, "train"))
    assert not counter.exact and len(counts) == len(SIZED) + 1


@pytest.mark.parametrize("family", ["qwen2_vl", "idefics3"])
def test_the_count_cache_key_follows_the_processor_settings(family, tmp_path):
    """Counts are cached under the counter's key: a setting that changes the counts (Qwen2-VL's
    max_pixels, Idefics3's tile size) changes the key, and the counts with it."""
    folder = tmp_path / "model"
    sized_processor(folder, family, "saved")
    spec = sized_image_data(folder)
    conversations = _conversations(spec, "train")
    before = media_counter(spec)
    counts = before.count(conversations)
    settings = json.loads((folder / "processor_config.json").read_text())
    if family == "qwen2_vl":
        settings["image_processor"]["size"]["longest_edge"] *= 4
    else:
        settings["image_processor"]["max_image_size"]["longest_edge"] = 16
    (folder / "processor_config.json").write_text(json.dumps(settings))
    after = media_counter(spec)
    assert after.cache_key != before.cache_key
    assert after.count(conversations) != counts


def test_counting_image_sizes_imports_nothing_heavy(tmp_path):
    """Reading image sizes for the count (PIL, lazily: headers only) keeps `validate` and
    `plan` free of torch, transformers and numpy."""
    import subprocess
    import sys

    from tests.core.test_light_imports import HEAVY

    folder = tmp_path / "model"
    sized_processor(folder, "idefics3", "hub")
    spec = sized_image_data(folder)
    probe = f"""
import json, sys
baseline = set(sys.modules)
from tests.local.test_multimodal import _conversations, media_counter
from pathlib import Path
spec = Path({str(spec)!r})
counter = media_counter(spec)
counts = counter.count(_conversations(spec, "train"))
heavy = sorted(m for m in set(sys.modules) - baseline if m.split('.')[0] in {HEAVY!r})
print("@@" + json.dumps({{"exact": counter.exact, "heavy": heavy, "counts": counts}}))
"""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, timeout=120)
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("@@"))[2:])
    assert result["exact"] and len(result["counts"]) == len(SIZED) + 1
    assert result["heavy"] == []


def test_an_image_spec_on_a_text_model_is_a_located_error(image_project, tiny_model, cli):
    """Pointing an image spec at a text-only model: validate says so at `model.base` (no
    traceback from rendering media through a text chat template)."""
    spec = image_project()
    spec.write_text(re.sub(r"(?m)^  base: .*$", f"  base: {tiny_model}", spec.read_text()))
    code, output = cli("validate", spec)
    assert code == 1
    assert "TS301" in output and "multimodal model" in output and "model.base" in output
