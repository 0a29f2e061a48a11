"""Image and audio data on Ray Train: two workers run the same multimodal loop as one local
process (media decoded on each worker from the shared token cache), and the run is evaluated
base vs tuned on the media, like a local run."""

from __future__ import annotations

import base64
import json

import pytest

from tunespec.artifacts import verify_run

from ray_helpers import apply, losses, only_run, write_spec
from tests.local import test_audio
from tests.local.test_multimodal import COLORS, gemini, openai, png

pytestmark = pytest.mark.slow

EVALUATION = "evaluation:\n  compare_base: true\n  metrics: [exact_match]\n  max_new_tokens: 4\n  validation_loss: false\n"


@pytest.fixture(scope="module")
def image_project(tmp_path_factory):
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    folder = tmp_path_factory.mktemp("ray-images")
    make_tiny_vision_model(folder / "model", "idefics3", corpus=["Which color?", *COLORS])
    train = [gemini(c, {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png(c, (40 + 8 * i, 30))).decode()}})
             for i, c in enumerate(list(COLORS) * 4)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "validation.jsonl").write_text("".join(json.dumps(openai(c)) + "\n" for c in COLORS))
    return folder


def _spec(folder, backend: str, name: str, modality: str = "image"):
    spec = write_spec(folder, backend, name=name, hyper="  max_steps: 4\n", validation="validation.jsonl", evaluation=EVALUATION)
    spec.write_text(spec.read_text().replace("\ndata:\n", f"\ndata:\n  modality: {modality}\n"))
    return spec


def test_two_workers_train_on_images_like_one_process(ray_cluster, image_project):
    local = _spec(image_project, "  name: local\n  checkpoint_every: 0", "images-local")
    ray = _spec(image_project, "  name: ray\n  num_workers: 2\n  checkpoint_every_steps: 2", "images-ray")
    assert apply(local) == 0 and apply(ray) == 0
    local_run, ray_run = only_run(local, "images-local"), only_run(ray, "images-ray")
    manifest, problems = verify_run(ray_run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.backend == "ray" and manifest.metrics["steps"] == 4
    assert losses(ray_run) == pytest.approx(losses(local_run), rel=2e-3)
    assert {"base", "tuned"} <= set(manifest.evaluation)
    tuned = json.loads((ray_run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == list(COLORS)
    assert (ray_run / "adapter" / "processor_config.json").is_file()  # the adapter carries the processor


@pytest.fixture(scope="module")
def audio_project(tmp_path_factory):
    """Qwen2-Audio on inline WAV clips of varied lengths (so of varied audio token counts)."""
    from tunespec.testing.tiny_multimodal import make_tiny_audio_model

    folder = tmp_path_factory.mktemp("ray-audio")
    make_tiny_audio_model(folder / "model", "qwen2_audio", corpus=["Which pitch?", *test_audio.PITCHES])
    train = [test_audio.gemini(list(test_audio.PITCHES)[i % 2], {"inlineData": {"mimeType": "audio/wav",
                                                                                  "data": base64.b64encode(test_audio.clip(i)).decode()}})
             for i in range(12)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    validation = [test_audio.openai(pitch, test_audio.wav(pitch, seconds=0.6)) for pitch in test_audio.PITCHES]
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    return folder


def test_two_workers_train_on_audio_like_one_process(ray_cluster, audio_project):
    local = _spec(audio_project, "  name: local\n  checkpoint_every: 0", "audio-local", "audio")
    ray = _spec(audio_project, "  name: ray\n  num_workers: 2\n  checkpoint_every_steps: 2", "audio-ray", "audio")
    assert apply(local) == 0 and apply(ray) == 0
    local_run, ray_run = only_run(local, "audio-local"), only_run(ray, "audio-ray")
    manifest, problems = verify_run(ray_run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.backend == "ray" and manifest.metrics["steps"] == 4
    assert losses(ray_run) == pytest.approx(losses(local_run), rel=2e-3)
    tuned = json.loads((ray_run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == list(test_audio.PITCHES)
