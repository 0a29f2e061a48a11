"""PDF documents on the local backend, both ways a page can reach a model
(`data.documents.pages_as`): rendered to images for a vision-language model, or read as
text by a text model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.data.media import pdf_pages

pytestmark = pytest.mark.slow

FRUITS = ("apple", "pear", "plum")

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: docs
model:
  base: {model}
data:
  modality: document
  train: train.jsonl
  validation: validation.jsonl
  max_seq_length: {max_len}
  documents: {{pages_as: {pages_as}, max_pages: 2, render_dpi: 18}}
method:
  type: peft
  lora: {{rank: 4, alpha: 8, dropout: 0.0}}
hyperparameters:
  max_steps: 4
  batch_size: 4
  learning_rate: 0.005
  seed: 3
evaluation:
  metrics: [exact_match]
  max_new_tokens: 4
backend:
  name: local
  device: cpu
  num_threads: 1
  checkpoint_every: 0
"""


def document(fruit: str, inline: bool, folder: Path, i: int) -> dict:
    data = pdf_pages([f"Order {i}\nFruit: {fruit}", "Thank you"], width=144, height=144)
    if inline:
        part = {"inlineData": {"mimeType": "application/pdf", "data": base64.b64encode(data).decode()}}
    else:
        (folder / f"order-{i}.pdf").write_bytes(data)
        part = {"fileData": {"mimeType": "application/pdf", "fileUri": f"order-{i}.pdf"}}
    return {"contents": [{"role": "user", "parts": [part, {"text": "Which fruit?"}]}, {"role": "model", "parts": [{"text": fruit}]}]}


def project(tmp_path: Path, model: Path, pages_as: str, max_len: int = 256) -> Path:
    train = [document(FRUITS[i % 3], i % 2 == 0, tmp_path, i) for i in range(12)]
    validation = [document(f, True, tmp_path, 100 + i) for i, f in enumerate(FRUITS)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    spec = tmp_path / "tunespec.yaml"
    spec.write_text(SPEC.format(model=model, pages_as=pages_as, max_len=max_len))
    return spec


def only_run(spec: Path) -> Path:
    [run] = [p for p in (spec.parent / "runs" / "docs").iterdir() if not p.name.startswith(".")]
    return run


@pytest.fixture(scope="module", params=["llava", "idefics3"])
def vision_model(request, tmp_path_factory) -> Path:
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    return make_tiny_vision_model(tmp_path_factory.mktemp(request.param) / "model", request.param, corpus=["Which fruit?", *FRUITS])


def test_pdf_pages_as_images_train_a_vision_model(tmp_path, vision_model, cli):
    """Each of the PDF's 2 pages becomes one image (for LLaVA: 2 x 16 image tokens in every example)."""
    spec = project(tmp_path, vision_model, "image")
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    run = only_run(spec)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["train_examples"] == 12
    assert {"base", "tuned"} <= set(manifest["evaluation"])

    from tunespec_local.encoded import EncodedSequences

    [train] = [EncodedSequences(p) for p in (tmp_path / "cache" / "encoded").iterdir() if (p / "media.bin").exists() and len(EncodedSequences(p)) == 12]
    example = train[0]
    config = json.loads((vision_model / "config.json").read_text())
    image_token = config.get("image_token_id", config.get("image_token_index"))
    assert example.media_kinds == "ii"
    if "llava" in str(vision_model):  # a fixed 16 tokens per image (Idefics3's depend on the page's tiles)
        assert example.input_ids.count(image_token) == 2 * 16
    import io

    from PIL import Image

    page = Image.open(io.BytesIO(example.media[0]))
    assert page.size == (36, 36)  # 144 points at 18 dpi


def test_pdf_pages_as_text_train_a_text_model(tmp_path, tiny_model, cli):
    """`pages_as: text`: a text model reads each page's text (extracted by PDFium) where the
    PDF was; nothing multimodal is loaded."""
    spec = project(tmp_path, tiny_model, "text")
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    run = only_run(spec)
    tuned = json.loads((run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == list(FRUITS)

    from tunespec_local.encode import ChatTokenizer
    from tunespec_local.encoded import EncodedSequences

    chat = ChatTokenizer.from_folder(tiny_model)
    texts = [chat.decode(EncodedSequences(p)[0].input_ids) for p in (tmp_path / "cache" / "encoded").iterdir() if (p / "meta.json").exists()]
    assert any("Fruit:" in t and "Thank you" in t for t in texts)


def test_an_unreadable_pdf_is_reported_at_its_data_line(tmp_path, tiny_model, cli):
    spec = project(tmp_path, tiny_model, "text")
    train = spec.parent / "train.jsonl"
    lines = train.read_text().splitlines()
    bad = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf",
                                                                    "data": base64.b64encode(b"%PDF-1.4\ngarbage").decode()}}]},
                        {"role": "model", "parts": [{"text": "apple"}]}]}
    lines[2] = json.dumps(bad)
    train.write_text("\n".join(lines) + "\n")
    code, output = cli("apply", spec, "--yes")
    assert code == 1
    assert "TS235" in output and "train.jsonl:3" in output


def test_plan_counts_pdf_text_exactly(tmp_path, tiny_model, cli):
    """`pages_as: text`: validate/plan count the pages' text through the chat template, the
    tokens training sees, without torch."""
    import yaml

    from tunespec.data import iter_conversations
    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec_local.backend import LocalBackend
    from tunespec_local.config import LocalConfig
    from tunespec_local.encoded import EncodedSequences

    spec_path = project(tmp_path, tiny_model, "text")
    spec = ResolvedSpec(job=TuningJob.model_validate(yaml.safe_load(spec_path.read_text())), config=LocalConfig(), file=spec_path, document=0)
    counter = LocalBackend().token_counter(spec)
    assert counter is not None and counter.exact
    counts = counter.count(list(iter_conversations(spec, "train")))
    assert cli("apply", spec_path, "--yes")[0] == 0
    [train] = [EncodedSequences(p) for p in (tmp_path / "cache" / "encoded").iterdir() if (p / "meta.json").exists()
               and len(EncodedSequences(p)) == 12]
    assert counts == [len(train[i]) for i in range(12)]
