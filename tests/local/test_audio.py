"""Audio data on the local backend: tiny random-initialised models of two real audio-text
architectures (Qwen2-Audio: log-mel features; OmniASR: the raw waveform), trained through
the CLI as a user would, from short synthetic WAV clips in the formats users write (Gemini
inlineData and fileData, OpenAI input_audio)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from tunespec.testing.tiny_multimodal import AUDIO_ARCHITECTURES

pytestmark = pytest.mark.slow

PITCHES = {"low": 220.0, "high": 880.0}

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: pitches
model:
  base: {model}
data:
  modality: audio
  train: train.jsonl
  validation: validation.jsonl
  max_seq_length: 128
method:
  type: peft
  lora: {{rank: 4, alpha: 8, dropout: 0.0}}
hyperparameters:
  max_steps: 6
  batch_size: 4
  micro_batch_size: 2
  learning_rate: 0.005
  seed: 3
evaluation:
  metrics: [exact_match]
  max_examples: 4
  max_new_tokens: 4
backend:
  name: local
  device: cpu
  num_threads: 1
  checkpoint_every: 3
"""


def wav(pitch: str, seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> bytes:
    """A sine tone as a 16-bit WAV file."""
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * PITCHES[pitch] * t)
    out = io.BytesIO()
    soundfile.write(out, np.stack([tone] * channels, axis=1), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def clip(i: int) -> bytes:
    """Clips of varied length (so of varied token counts), rate and channels: resampled and
    mixed down to what the feature extractor reads."""
    pitch = list(PITCHES)[i % 2]
    return wav(pitch, seconds=(0.3, 0.5, 0.7)[i % 3], rate=(16000, 22050, 8000)[i % 3], channels=1 + (i % 4 == 3))


def gemini(pitch: str, audio: dict) -> dict:
    return {"contents": [{"role": "user", "parts": [audio, {"text": "Which pitch?"}]}, {"role": "model", "parts": [{"text": pitch}]}]}


def openai(pitch: str, data: bytes) -> dict:
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"}}
    return {"messages": [{"role": "user", "content": [audio, {"type": "text", "text": "Which pitch?"}]}, {"role": "assistant", "content": pitch}]}


@pytest.fixture(scope="module", params=AUDIO_ARCHITECTURES)
def audio_model(request, tmp_path_factory) -> Path:
    from tunespec.testing.tiny_multimodal import make_tiny_audio_model

    return make_tiny_audio_model(tmp_path_factory.mktemp(request.param) / "model", request.param, corpus=["Which pitch?", *PITCHES])


@pytest.fixture
def audio_spec(tmp_path, audio_model) -> Path:
    """Train: Gemini records, half with inline WAVs, half naming WAV files beside the data.
    Validation: OpenAI records with input_audio."""
    (tmp_path / "clips").mkdir()
    train = []
    for i in range(16):
        if i % 2:
            (tmp_path / "clips" / f"{i}.wav").write_bytes(clip(i))
            audio = {"fileData": {"mimeType": "audio/wav", "fileUri": f"clips/{i}.wav"}}
        else:
            audio = {"inlineData": {"mimeType": "audio/wav", "data": base64.b64encode(clip(i)).decode()}}
        train.append(gemini(list(PITCHES)[i % 2], audio))
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    validation = [openai(pitch, wav(pitch, seconds=0.6)) for pitch in [*PITCHES, *PITCHES]]
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    path = tmp_path / "tunespec.yaml"
    path.write_text(SPEC.format(model=audio_model))
    return path


def runs(spec: Path) -> list[Path]:
    folder = spec.parent / "runs" / "pitches"
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def test_lora_on_audio_trains_evaluates_and_reloads(audio_spec, audio_model, cli):
    """A full apply: clips read from three kinds of reference, LoRA on the language model and
    projector (audio encoder frozen), base vs tuned evaluation, and the saved adapter,
    reloaded with peft, answering exactly what the run's evaluation recorded."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForMultimodalLM

    code, output = cli("apply", audio_spec, "--yes")
    assert code == 0, output
    [run] = runs(audio_spec)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 6 and manifest["metrics"]["train_examples"] == 16
    assert {"base", "tuned"} <= set(manifest["evaluation"])
    tuned = json.loads((run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == ["low", "high", "low", "high"]

    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert not any("audio_tower" in t for t in adapter["target_modules"])  # the encoder is frozen
    assert any("language_model" in t for t in adapter["target_modules"])
    assert any("multi_modal_projector" in t for t in adapter["target_modules"])

    from tests.local.test_multimodal import validation_answers

    model = PeftModel.from_pretrained(AutoModelForMultimodalLM.from_pretrained(audio_model, dtype=torch.float32), run / "adapter")
    assert validation_answers(model, run, audio_model, audio_spec) == [o["output"] for o in tuned["outputs"]]


def test_killed_audio_run_resumes_with_the_same_losses(audio_spec, cli, tmp_path, tmp_path_factory):
    """SIGKILL mid-run, `apply` again: the clips of each step are decoded again from the
    stored media, and the losses are those of a run never interrupted."""
    from tests.local.test_multimodal import resumes_like_a_straight_run

    steps = 24
    audio_spec.write_text(audio_spec.read_text().replace("max_steps: 6", f"max_steps: {steps}"))
    resumes_like_a_straight_run(audio_spec, steps, runs, cli, tmp_path, tmp_path_factory)


def test_a_broken_audio_file_is_reported_at_its_data_line(audio_spec, cli):
    """A file that starts like a WAV (RIFF....WAVE, so it passes the type check) with garbage
    after: apply stops before training with the file, line and part, not a traceback."""
    (audio_spec.parent / "clips" / "broken.wav").write_bytes(wav("low")[:12] + bytes(range(256)) * 4)
    train = audio_spec.parent / "train.jsonl"
    lines = train.read_text().splitlines()
    lines[5] = json.dumps(gemini("high", {"fileData": {"mimeType": "audio/wav", "fileUri": "clips/broken.wav"}}))
    train.write_text("\n".join(lines) + "\n")
    code, output = cli("apply", audio_spec, "--yes")
    assert code == 1
    assert "TS236" in output and "train.jsonl:6" in output and "$.contents[0].parts[0]" in output
    assert "TS218" not in output  # (validation clips are not train clips)


def test_a_batch_of_clips_gives_one_feature_row_per_clip(audio_model):
    """The batch's media inputs: examples with two clips, one and none (three clips, four
    examples), fed to the processor one clip per text (OmniASR takes no other way), give one
    feature row per clip, matching the expanded token ids."""
    import torch
    from transformers import AutoModelForMultimodalLM

    from tunespec_local.encode import Encoded
    from tunespec_local.media.encode import MediaChatEncoder
    from tunespec_local.media.inputs import MediaInputs
    from tunespec_local.media.load import Media

    examples = [Encoded([1], [1], False, (clip(0), clip(1)), "aa"), Encoded([1], [1], False), Encoded([1], [1], False, (clip(2),), "a"),
                Encoded([1], [1], False)]
    inputs = MediaInputs(str(audio_model))(examples)
    assert inputs and all(isinstance(v, torch.Tensor) and len(v) == 3 for v in inputs.values())

    # The model takes them beside ids holding each clip's expansion, in the same order.
    encoder = MediaChatEncoder(None, audio_model, None)  # expand() needs only the processor
    ids = [t for i in range(3) for t in encoder.expand(Media("audio", clip(i)))]
    model = AutoModelForMultimodalLM.from_pretrained(audio_model, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), **inputs).logits
    assert logits.shape[1] == len(ids)


def test_plan_counts_audio_tokens_as_training_does(audio_spec, audio_model, cli):
    """Without torch, validate/plan count a clip from its WAV header (its length decides its
    tokens: Qwen2-Audio's log-mel frames, OmniASR's subsampling convolutions), exactly the
    tokens training sees, whatever the clip's rate and channels."""
    import yaml

    from tests.local.test_multimodal import _conversations
    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec_local.backend import LocalBackend
    from tunespec_local.config import LocalConfig
    from tunespec_local.encoded import EncodedSequences

    spec = ResolvedSpec(job=TuningJob.model_validate(yaml.safe_load(audio_spec.read_text())), config=LocalConfig(), file=audio_spec, document=0)
    counter = LocalBackend().token_counter(spec)
    counts = counter.count(_conversations(audio_spec, "train"))
    assert counter.exact
    assert cli("apply", audio_spec, "--yes")[0] == 0
    [train] = [EncodedSequences(p) for p in (audio_spec.parent / "cache" / "encoded").iterdir()
               if (p / "media.bin").exists() and len(EncodedSequences(p)) == 16]
    assert counts == [len(train[i]) for i in range(16)]


@pytest.mark.parametrize("audio_model", ["omniasr"], indirect=True)  # Qwen2-Audio casts its features itself
def test_a_bf16_run_evaluates_its_audio_in_the_encoders_dtype(audio_spec, cli):
    """With `precision: bf16` the frozen base is held in bf16. Training casts the clips under
    autocast; generation (base vs tuned evaluation) has no autocast, so the clips must reach
    the encoder in its dtype: OmniASR's first convolution failed on an fp32 waveform (TS004
    on CUDA). bf16 is emulated on this CPU: slow, but the same dtypes as on a GPU."""
    audio_spec.write_text(audio_spec.read_text().replace("  seed: 3\n", "  seed: 3\n  precision: bf16\n"))
    code, output = cli("apply", audio_spec, "--yes")
    assert code == 0, output
    [run] = runs(audio_spec)
    assert json.loads((run / "manifest.json").read_text())["metrics"]["precision"] == "bf16"
    tuned = json.loads((run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == ["low", "high", "low", "high"]
