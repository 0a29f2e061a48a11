"""Data limits Google documents beyond sizes, checked before anything is uploaded: audio
up to 60 minutes, PDFs up to 300 pages, video up to 5 minutes (20 at LOW resolution),
measured by real readers on real local files; and the split-size rules (validation at most
30% of training above 1,000 training examples)."""

from __future__ import annotations

import json
import struct
import wave
from pathlib import Path

from tests.vertex import google_tables as G
from tests.vertex.conftest import spec_text


def _wav(path: Path, seconds: int) -> None:
    """A real WAV file of `seconds` seconds, at 1 frame per second so that it stays small."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(1)
        w.writeframes(b"\x80" * seconds)


def _pdf(path: Path, pages: int) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=72, height=72)
    with open(path, "wb") as f:
        writer.write(f)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _mp4(path: Path, seconds: int) -> None:
    """An MP4 container (ftyp + moov/mvhd) whose movie header says it lasts `seconds`."""
    mvhd = struct.pack(">I4I", 0, 0, 0, 1000, seconds * 1000) + struct.pack(">IH10x", 0x00010000, 0x0100)
    mvhd += struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000) + b"\x00" * 24 + struct.pack(">I", 2)
    path.write_bytes(_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41") + _box(b"moov", _box(b"mvhd", mvhd)))


def _spec(project, modality: str, mime: str, name: str, extra_record: dict | None = None):
    record = {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": mime, "fileUri": f"media/{name}"}}, {"text": "Summarise."}]},
                           {"role": "model", "parts": [{"text": "A summary."}]}], **(extra_record or {})}
    (project.root / "data" / "media.jsonl").write_text(json.dumps(record) + "\n")
    text = spec_text(name="media", modality=modality).replace("data/text-train.jsonl", "data/media.jsonl")
    return project.check(project.spec("media.yaml", text))


def _over(checked):
    return [d for d in checked.diagnostics if d.code == "TS234"]


def _media(project) -> Path:
    folder = project.root / "data" / "media"
    folder.mkdir(exist_ok=True)
    return folder


def test_audio_over_60_minutes_is_refused_with_its_duration(project):
    _wav(_media(project) / "long.wav", G.AUDIO_MAX_SECONDS + 60)
    [problem] = _over(_spec(project, "audio", "audio/wav", "long.wav"))
    assert "61 min" in problem.message and "60-minute" in problem.message
    assert problem.location.line == 1 and problem.location.path == "$.contents[0].parts[0]"
    _wav(_media(project) / "ok.wav", G.AUDIO_MAX_SECONDS)
    assert _spec(project, "audio", "audio/wav", "ok.wav").ok


def test_a_pdf_over_300_pages_is_refused(project):
    _pdf(_media(project) / "long.pdf", G.PDF_MAX_PAGES + 1)
    [problem] = _over(_spec(project, "document", "application/pdf", "long.pdf"))
    assert "301 pages" in problem.message
    _pdf(_media(project) / "ok.pdf", G.PDF_MAX_PAGES)
    assert _spec(project, "document", "application/pdf", "ok.pdf").ok


def test_video_duration_depends_on_the_media_resolution(project):
    _mp4(_media(project) / "clip.mp4", 6 * 60)  # over 5 minutes, under 20
    [problem] = _over(_spec(project, "video", "video/mp4", "clip.mp4"))
    assert "6 min" in problem.message and "MEDIA_RESOLUTION_LOW" in problem.hint
    low = {"generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}}
    assert G.VIDEO_MAX_SECONDS["MEDIA_RESOLUTION_LOW"] > 6 * 60
    assert _spec(project, "video", "video/mp4", "clip.mp4", low).ok


def test_validation_over_30_percent_of_a_large_training_set_is_refused(project):
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    train = G.VALIDATION_SHARE["over"] + 1
    (project.root / "data" / "big-train.jsonl").write_text("".join(json.dumps({**row, "messages": [
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}) + "\n" for i in range(train)))
    allowed = int(train * G.VALIDATION_SHARE["max_share"])
    (project.root / "data" / "big-val.jsonl").write_text("".join(json.dumps({**row, "messages": [
        {"role": "user", "content": f"v{i}"}, {"role": "assistant", "content": "a"}]}) + "\n" for i in range(allowed + 1)))
    text = spec_text(name="big").replace("data/text-train.jsonl", "data/big-train.jsonl\n  validation: data/big-val.jsonl")
    checked = project.check(project.spec("big.yaml", text))
    [problem] = [d for d in checked.diagnostics if d.code == "TS216" and d.is_error]
    assert problem.location.path == "data.validation" and f"{allowed:,}" in problem.hint
