"""Media limits a file's size does not show: audio and video durations, PDF page counts.

Google's tuning pages limit an example's audio to 60 minutes, a PDF to 300 pages, and a
video to 5 minutes (20 at `MEDIA_RESOLUTION_LOW`). The service does not refuse an
over-long file up front; it truncates or drops the example. So for every *local* file a
split references, the real readers measure it: mutagen (audio and MP4/QuickTime video
durations, from the container's header) and pypdf (page count, from the cross-reference
table). Each distinct file is read once; a file in Cloud Storage is not downloaded (the
service will judge it), and a format the readers do not know is left to the service.

The readers come with `pip install 'tunespec[vertex]'` and are imported when a split
references local media, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

from tunespec import Diagnostic, Location, ResolvedSpec
from tunespec.data import Conversation

# What Google documents (see catalog.yaml's data_rules for the rest of the limits).
AUDIO_MAX_SECONDS = 60 * 60
PDF_MAX_PAGES = 300
VIDEO_MAX_SECONDS = {"MEDIA_RESOLUTION_LOW": 20 * 60}
VIDEO_DEFAULT_MAX_SECONDS = 5 * 60  # MEDIUM and HIGH (and unset: the service's default resolution)


def check_media(spec: ResolvedSpec, conversations: Callable[[str], Iterable[Conversation]], splits: Iterable[str]) -> list[Diagnostic]:
    """Diagnostics for local audio, video and PDF files over Google's limits."""
    measured: dict[Path, float | int | None] = {}
    out: list[Diagnostic] = []
    for split in splits:
        for conv in conversations(split):
            for _, part in conv.parts():
                if part.kind != "file" or not part.uri or not part.mime_type:
                    continue
                kind = _kind(part.mime_type)
                if kind is None:
                    continue
                local = _local_file(part.uri, conv.file, spec.base_dir)
                if local is None:
                    continue
                if local not in measured:
                    measured[local] = _measure(kind, local)
                problem = _over_limit(kind, measured[local], conv)
                if problem is not None:
                    message, hint = problem
                    out.append(Diagnostic("TS234", f"{part.uri}: {message}", Location(conv.file, conv.line, path=part.path), hint))
    return out


def _kind(mime: str) -> str | None:
    if mime == "application/pdf":
        return "pdf"
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("video/"):
        return "video"
    return None


def _local_file(uri: str, data_file: str | None, base_dir: Path) -> Path | None:
    """A local reference as staging resolves it: relative to its data file, else the spec."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    raw = uri.removeprefix("file://")
    candidates = [Path(raw)] if os.path.isabs(raw) else []
    if not candidates:
        if data_file and "://" not in data_file:
            candidates.append(Path(data_file).parent / raw)
        candidates.append(base_dir / raw)
    return next((c.resolve() for c in candidates if c.is_file()), None)


def _measure(kind: str, path: Path) -> float | int | None:
    """Seconds of audio or video, or pages of a PDF; None when the reader cannot tell."""
    try:
        if kind == "pdf":
            from pypdf import PdfReader

            return len(PdfReader(str(path)).pages)
        import mutagen

        media = mutagen.File(str(path))
        length = getattr(getattr(media, "info", None), "length", None)
        return float(length) if length else None
    except Exception:  # noqa: BLE001 - an unreadable file is the service's to judge (data validation checked its bytes)
        return None


def _over_limit(kind: str, value: float | int | None, conv: Conversation) -> tuple[str, str] | None:
    if value is None:
        return None
    if kind == "pdf" and value > PDF_MAX_PAGES:
        return f"the PDF has {value} pages, over Vertex's {PDF_MAX_PAGES}-page limit per example", "split the document into PDFs of at most 300 pages"
    if kind == "audio" and value > AUDIO_MAX_SECONDS:
        return (f"the audio lasts {_minutes(value)}, over Vertex's 60-minute limit per example",
                "cut the recording into clips of at most 60 minutes, one per example")
    if kind == "video":
        resolution = _media_resolution(conv)
        limit = VIDEO_MAX_SECONDS.get(resolution or "", VIDEO_DEFAULT_MAX_SECONDS)
        if value > limit:
            at = resolution or "the default media resolution"
            hint = ("cut the video into shorter clips" + ("" if resolution == "MEDIA_RESOLUTION_LOW"
                    else ", or set generationConfig.mediaResolution to MEDIA_RESOLUTION_LOW (20 minutes)"))
            return f"the video lasts {_minutes(value)}, over Vertex's {limit // 60}-minute limit at {at}", hint
    return None


def _media_resolution(conv: Conversation) -> str | None:
    config: Any = (conv.extra or {}).get("generationConfig") or (conv.extra or {}).get("generation_config") or {}
    value = config.get("mediaResolution") or config.get("media_resolution") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"
