"""The bytes of a media part, wherever the data says it is.

A part names its media one of three ways (tunespec.data.conversation.Part):

    inline          base64 in the record (Gemini `inlineData`, an OpenAI data: URL)
    file, local     a path, relative to the data file's folder, else to the spec's
    file, gs://     a Cloud Storage object, read through tunespec's data sources

https:// references are not fetched: a training job should not depend on a web server
being up (validation has already checked the others exist).

Documents (PDF) become what `data.documents.pages_as` says: the first `max_pages` pages
rendered to PNG images for a vision model, or their text for a text model.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunespec import Diagnostic, DiagnosticError, Location
from tunespec.data.checks import reference_candidates

PDF = "application/pdf"


@dataclass(frozen=True, slots=True)
class Media:
    """One item the model sees: an image or audio file's bytes, or a rendered page (PNG)."""

    kind: str  # "image" | "audio"
    data: bytes
    where: str | None = None
    """The JSON path of the part it came from (for diagnostics)."""


class MediaReader:
    """Reads media parts for the examples of one spec (sources are looked up once)."""

    def __init__(self, spec_dir: Path, documents: Any = None):
        from tunespec.data.registry import data_sources

        self.spec_dir = Path(spec_dir)
        self.sources = data_sources()
        self.documents = documents  # the spec's `data.documents` (pages_as, max_pages, render_dpi)

    def read(self, part: Any, conversation: Any) -> bytes:
        """The part's bytes; a located DiagnosticError when they cannot be had."""
        where = Location(conversation.file, conversation.line, None, part.path)
        if part.kind == "inline":
            try:
                return base64.b64decode(part.data or "", validate=True)
            except ValueError as exc:
                raise DiagnosticError(Diagnostic("TS227", f"inline media data is not valid base64: {exc}", where, "re-encode the media as base64")) from exc
        uri = part.uri or ""
        if uri.startswith(("http://", "https://")):
            raise DiagnosticError(Diagnostic(
                "TS223", f"{uri}: the local and ray backends do not download media from the web", where,
                "copy the file next to the data (a relative path) or to gs://, or inline it as a data: URL"))
        for candidate in reference_candidates(uri, conversation.file, self.spec_dir):
            source = next((s for s in self.sources if s.handles(candidate)), None)
            if source is None:
                continue
            try:
                with source.open(candidate) as f:
                    return f.read()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise DiagnosticError(Diagnostic("TS225", f"cannot read {candidate}: {exc}", where, "check the file and its permissions")) from exc
        raise DiagnosticError(Diagnostic("TS214", f"referenced file {uri} does not exist", where,
                                         "paths are relative to the data file's folder, then the spec's"))

    def content(self, part: Any, conversation: Any) -> list[Media | str]:
        """What the model gets for one media part: one image/audio item, or for a PDF its
        pages (images, or their text with `pages_as: text`)."""
        from tunespec.data.rules import media_kind

        data = self.read(part, conversation)
        kind = media_kind(part.mime_type or "")
        if part.mime_type == "text/plain":
            return [data.decode("utf-8", errors="replace")]
        if part.mime_type == PDF:
            return self._pdf(data, part, conversation)
        if kind not in ("image", "audio"):
            where = Location(conversation.file, conversation.line, None, part.path)
            raise DiagnosticError(Diagnostic("TS211", f"{part.mime_type} media cannot be trained on by the local and ray backends", where,
                                             "use images, audio or PDF documents"))
        return [Media(kind, data)]

    def _pdf(self, data: bytes, part: Any, conversation: Any) -> list[Media | str]:
        from tunespec.data.documents import UnreadableDocument, extract_text, render_pages

        options = self.documents
        max_pages = getattr(options, "max_pages", 8)
        try:
            if getattr(options, "pages_as", "image") == "text":
                return [text for text in extract_text(data, max_pages)]
            return [Media("image", png) for png in render_pages(data, max_pages, getattr(options, "render_dpi", 72))]
        except UnreadableDocument as exc:
            where = Location(conversation.file, conversation.line, None, part.path)
            raise DiagnosticError(Diagnostic("TS235", f"PDF cannot be read: {exc}", where, "re-export the PDF (without a password)")) from exc
