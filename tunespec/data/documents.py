"""PDF documents: count their pages, render pages to images, extract their text.

A model does not read a PDF. On the torch backends (local, ray) each page reaches the
model either as an image, for a vision-language model (`data.documents.pages_as: image`),
or as its text, for a text model (`pages_as: text`). Vertex reads PDFs natively and needs
neither. Data validation, for every backend, opens each PDF once to count its pages and
to report one that cannot be read, at its data line, before any training starts.

The choices, and why:

* PDFium (Chrome's PDF engine) through pypdfium2 does the reading: maintained, fast,
  tolerant of the damaged files real data holds, and shipped as wheels with no other
  dependency. It is imported inside the functions, so importing `tunespec.data` stays
  cheap and text-only validation never loads it.
* Every function takes the PDF's bytes (at most 20 MB under the data rules) and raises
  `UnreadableDocument`, with a reason a person can act on, for anything PDFium cannot
  open: not a PDF, truncated or damaged, password protected, or no pages. Bad input never
  escapes as another exception.
* Rendering is guarded: a page whose image would exceed `MAX_PAGE_PIXELS` is refused
  instead of allocated (a PDF page may declare itself 200 inches wide).
* PDFium is not thread-safe: one lock serialises every call into it.

Pages are rendered at ``dpi / 72`` pixels per PDF point (a point is 1/72 inch): at 72 dpi
a US letter page is 612x792 pixels. Images are RGB PNG on white (Pillow encodes them; it
comes with the torch backends' dependencies).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_PAGE_PIXELS = 25_000_000
"""Largest rendered page, in pixels (about 75 MB as RGB): e.g. a US letter page at 600 dpi."""

_LOCK = threading.RLock()


class UnreadableDocument(Exception):
    """A PDF that cannot be read; ``str(exc)`` says why, for a person ("it is password
    protected", "it has no pages")."""


def page_count(data: bytes) -> int:
    """Pages in the PDF `data` (at least 1); raises `UnreadableDocument`."""
    with _opened(data) as (_, pages):
        return pages


def render_pages(data: bytes, max_pages: int, dpi: int) -> list[bytes]:
    """The first `max_pages` pages of the PDF `data` as PNG images (RGB, white background)
    at `dpi` dots per inch; raises `UnreadableDocument` (also for a page too large to render)."""
    import io

    with _opened(data) as (document, pages):
        scale = dpi / 72
        images = []
        for index in range(min(pages, max_pages)):
            width, height = _page_size(document, index)
            pixels = round(width * scale) * round(height * scale)
            if pixels > MAX_PAGE_PIXELS:
                raise UnreadableDocument(
                    f"page {index + 1} is {width / 72:.0f}x{height / 72:.0f} inches: at {dpi} dpi its image would have "
                    f"{pixels / 1e6:,.0f} million pixels, over the limit of {MAX_PAGE_PIXELS / 1e6:.0f} million"
                )
            page = _page(document, index)
            try:
                bitmap = page.render(scale=scale)
                try:
                    image = bitmap.to_pil().convert("RGB")
                finally:
                    bitmap.close()
            except UnreadableDocument:
                raise
            except Exception as exc:  # noqa: BLE001 - PDFium's errors, whatever the content did
                raise UnreadableDocument(f"page {index + 1} cannot be rendered ({_why(exc)})") from None
            finally:
                page.close()
            out = io.BytesIO()
            image.save(out, format="PNG")
            images.append(out.getvalue())
        return images


def extract_text(data: bytes, max_pages: int) -> list[str]:
    """The text of each of the first `max_pages` pages of the PDF `data`, in reading order
    as PDFium finds it, lines ending in ``\\n``. A page without a text layer (a scan) gives
    ``""``. Raises `UnreadableDocument`."""
    with _opened(data) as (document, pages):
        texts = []
        for index in range(min(pages, max_pages)):
            page = _page(document, index)
            try:
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_range()
                finally:
                    textpage.close()
            except Exception as exc:  # noqa: BLE001
                raise UnreadableDocument(f"the text of page {index + 1} cannot be read ({_why(exc)})") from None
            finally:
                page.close()
            texts.append(text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", ""))
        return texts


# PDFium's reasons a document does not load (FPDF_GetLastError), in words.
_LOAD_ERRORS = {
    "FPDF_ERR_FILE": "PDFium cannot open it",
    "FPDF_ERR_FORMAT": "it is not a PDF, or it is damaged or truncated",
    "FPDF_ERR_PASSWORD": "it is password protected",
    "FPDF_ERR_SECURITY": "it is encrypted with a security handler PDFium does not support",
    "FPDF_ERR_PAGE": "its pages cannot be read",
}


@contextmanager
def _opened(data: bytes) -> Iterator[tuple[Any, int]]:
    """The open document and its page count; closed on leaving (under the PDFium lock)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a PDF's bytes are needed, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise UnreadableDocument("the file is empty")
    with _LOCK:
        import pypdfium2 as pdfium
        import pypdfium2.raw as raw

        # The raw loader, not PdfDocument(data): on failure its error code is the one this
        # call set (PdfDocument also refuses a document with no pages, with a stale code).
        handle = raw.FPDF_LoadMemDocument64(data, len(data), None)
        if not handle:
            code = raw.FPDF_GetLastError()
            reason = next((why for name, why in _LOAD_ERRORS.items() if getattr(raw, name, None) == code), None)
            raise UnreadableDocument(reason or f"PDFium cannot read it (error {code})")
        # PDFium reads from `data` while the document is open; it stays referenced here.
        document = pdfium.PdfDocument(handle)
        try:
            pages = raw.FPDF_GetPageCount(handle)
            if pages < 1:
                raise UnreadableDocument("it has no pages")
            yield document, pages
        finally:
            document.close()


def _page_size(document: Any, index: int) -> tuple[float, float]:
    try:
        return document.get_page_size(index)
    except Exception as exc:  # noqa: BLE001
        raise UnreadableDocument(f"page {index + 1} cannot be read ({_why(exc)})") from None


def _page(document: Any, index: int) -> Any:
    try:
        return document[index]
    except Exception as exc:  # noqa: BLE001
        raise UnreadableDocument(f"page {index + 1} cannot be read ({_why(exc)})") from None


def _why(exc: Exception) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__
