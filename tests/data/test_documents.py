"""PDF documents: pages counted, rendered and read as text by PDFium (tunespec.data.documents);
bad input is always an UnreadableDocument with a reason, never another error."""

from __future__ import annotations

import io
import random

import pytest

from tunespec.data.documents import MAX_PAGE_PIXELS, UnreadableDocument, extract_text, page_count, render_pages

from . import media

THREE = media.pdf_pages(["Invoice 1001\nTotal 120.50 EUR", "Page two", "Terms and conditions"], width=200, height=100)


# The functions ---------------------------------------------------------------------------


def test_pages_are_counted_and_their_text_extracted_line_by_line():
    assert page_count(THREE) == 3
    assert extract_text(THREE, max_pages=8) == ["Invoice 1001\nTotal 120.50 EUR", "Page two", "Terms and conditions"]
    assert extract_text(THREE, max_pages=2) == ["Invoice 1001\nTotal 120.50 EUR", "Page two"]
    assert page_count(media.pdf()) == 1  # the one-page fixture other tests use
    assert page_count(media.pdf_pages(["x"] * 300)) == 300


def test_pages_render_to_rgb_png_at_the_requested_resolution():
    Image = pytest.importorskip("PIL.Image")

    def sizes(dpi: int, max_pages: int = 8) -> list[tuple[tuple[int, int], str]]:
        out = []
        for png in render_pages(THREE, max_pages=max_pages, dpi=dpi):
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            with Image.open(io.BytesIO(png)) as image:
                out.append((image.size, image.mode))
        return out

    assert sizes(72) == [((200, 100), "RGB")] * 3  # one pixel per point
    assert sizes(144, max_pages=2) == [((400, 200), "RGB")] * 2
    # The page is drawn: white paper with dark text, not a blank image.
    with Image.open(io.BytesIO(render_pages(THREE, 1, 72)[0])) as image:
        colours = {colour for _, colour in image.getcolors(maxcolors=1 << 16)}
    assert (255, 255, 255) in colours and min(sum(c) for c in colours) < 200


def _encrypted() -> bytes:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=72, height=72)
    writer.encrypt(user_password="secret", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BAD = {
    "empty": (lambda: b"", "the file is empty"),
    "random bytes": (lambda: random.Random(7).randbytes(4096), "not a PDF"),
    "a PNG": (lambda: media.png(4, 4), "not a PDF"),
    "a PDF header and nothing else": (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "not a PDF"),
    "a truncated PDF": (lambda: THREE[: len(THREE) // 3], "damaged or truncated"),
    "no pages": (lambda: media.pdf_pages([]), "no pages"),
    "password protected": (_encrypted, "password protected"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_an_unreadable_document_with_a_reason_never_another_error(name):
    make, reason = BAD[name]
    data = make()
    for call in (lambda: page_count(data), lambda: render_pages(data, 8, 72), lambda: extract_text(data, 8)):
        with pytest.raises(UnreadableDocument, match=reason):
            call()


def test_a_page_too_large_to_render_is_refused_before_any_memory_is_taken():
    huge = media.pdf_pages(["poster"], width=14400, height=14400)  # 200 x 200 inches, PDF's largest page
    assert page_count(huge) == 1
    with pytest.raises(UnreadableDocument, match="3,600 million pixels, over the limit of 25 million"):
        render_pages(huge, max_pages=1, dpi=300)
    assert 14400 * 14400 > MAX_PAGE_PIXELS  # even at 72 dpi: 207 million pixels
    with pytest.raises(UnreadableDocument, match="page 1 is 200x200 inches"):
        render_pages(huge, max_pages=1, dpi=72)


def test_a_pdf_that_claims_more_pages_than_it_has_is_counted_but_not_rendered_past_its_end():
    lying = media.pdf_pages(["only page"]).replace(b"/Count 1 ", b"/Count 900000 ")
    assert b"/Count 900000" in lying
    assert page_count(lying) == 900000
    with pytest.raises(UnreadableDocument, match="page 2 cannot be read"):
        render_pages(lying, max_pages=3, dpi=72)
    with pytest.raises(UnreadableDocument, match="page 2"):
        extract_text(lying, max_pages=3)
