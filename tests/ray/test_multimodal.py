"""Image, audio and document data on Ray Train: two workers run the same multimodal loop as
one local process (media decoded on each worker from the shared token cache), and the run is
evaluated base vs tuned on the media, like a local run."""

from __future__ import annotations

import base64
import json

import pytest

from tunespec.artifacts import verify_run

from ray_helpers import apply, losses, only_run, write_spec
from tests.local import test_audio, test_documents
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


def test_two_workers_train_on_images_like_one_process(ray_cluster, image_project, tmp_path, monkeypatch):
    """Two workers, one of them killed after step 3: the group restarts from the step-2
    checkpoint (media decoded again from the cache) and the loss curve is one process's."""
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")  # quicker recovery
    marker = tmp_path / "kill-marker"
    local = _spec(image_project, "  name: local\n  checkpoint_every: 0", "images-local")
    ray = _spec(image_project, "  name: ray\n  num_workers: 2\n  checkpoint_every_steps: 2\n  max_failures: 1\n"
                f"  runtime_env: {{env_vars: {{TUNESPEC_RAY_KILL_AT_STEP: '3:{marker}'}}}}", "images-ray")
    assert apply(local) == 0 and apply(ray) == 0
    assert (marker / "tunespec-ray-killed").is_file(), "the worker was never killed"
    local_run, ray_run = only_run(local, "images-local"), only_run(ray, "images-ray")
    manifest, problems = verify_run(ray_run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.backend == "ray" and manifest.metrics["steps"] == 4
    assert manifest.metrics["resumed_from_step"] == 2
    assert [json.loads(line)["step"] for line in (ray_run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
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


@pytest.fixture(scope="module")
def document_project(tmp_path_factory):
    """LLaVA (a fixed 16 tokens per image) on two-page PDFs, inline and beside the data,
    as the local document tests write them."""
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    folder = tmp_path_factory.mktemp("ray-documents")
    fruits = test_documents.FRUITS
    make_tiny_vision_model(folder / "model", "llava", corpus=["Which fruit?", *fruits])
    train = [test_documents.document(fruits[i % 3], i % 2 == 0, folder, i) for i in range(12)]
    validation = [test_documents.document(f, True, folder, 100 + i) for i, f in enumerate(fruits)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    return folder


def test_two_workers_train_on_pdf_pages_rendered_as_images(ray_cluster, document_project, monkeypatch):
    """`modality: document` with `pages_as: image` on Ray: every PDF's 2 pages reach the
    workers as 2 images, all 12 examples train, the adapter (with the processor) is
    published and base and tuned answers are written for the validation PDFs. One Ray run:
    the loop itself is compared with a local run by the image and audio tests."""
    import io

    from PIL import Image

    from tunespec_local.encoded import EncodedSequences
    from tunespec_local.media import PROCESSOR_FILES

    cache = document_project / "cache"
    monkeypatch.setenv("TUNESPEC_CACHE_DIR", str(cache))
    spec = _spec(document_project, "  name: ray\n  num_workers: 2\n  checkpoint_every_steps: 2", "documents-ray", "document")
    spec.write_text(spec.read_text().replace("  max_seq_length: 128\n", "  max_seq_length: 256\n"
                                             "  documents: {pages_as: image, max_pages: 2, render_dpi: 18}\n"))
    assert apply(spec) == 0
    run = only_run(spec, "documents-ray")
    manifest, problems = verify_run(run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.backend == "ray" and manifest.metrics["steps"] == 4
    assert manifest.metrics["train_examples"] == 12 and manifest.metrics["validation_examples"] == 3  # none dropped

    [train] = [EncodedSequences(p) for p in (cache / "encoded").iterdir() if (p / "media.bin").exists() and len(EncodedSequences(p)) == 12]
    config = json.loads((document_project / "model" / "config.json").read_text())
    image_token = config.get("image_token_id", config.get("image_token_index"))
    for example in train:  # each PDF's 2 pages as 2 images of 16 tokens each
        assert example.media_kinds == "ii" and example.input_ids.count(image_token) == 2 * 16
    assert Image.open(io.BytesIO(train[0].media[0])).size == (36, 36)  # a 144-point page at `render_dpi: 18`

    adapter = run / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert any((adapter / name).is_file() for name in PROCESSOR_FILES)  # the adapter carries the processor
    assert {"base", "tuned"} <= set(manifest.evaluation)
    for which in ("base", "tuned"):
        outputs = json.loads((run / "evaluation" / f"{which}.json").read_text())["outputs"]
        assert [o["reference"] for o in outputs] == list(test_documents.FRUITS)
