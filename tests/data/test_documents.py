"""PDF documents: pages counted, rendered and read as text by PDFium (tunespec.data.documents),
and validation that opens every PDF whose bytes are here, reporting an unreadable one
(TS235) or one longer than `data.documents.max_pages` (TS234) at its data line, through the
CLI, never with a traceback."""

from __future__ import annotations

import io
import random

import pytest

from tunespec.data import validate_data
from tunespec.data.documents import MAX_PAGE_PIXELS, UnreadableDocument, extract_text, page_count, render_pages
from tunespec.data.rules import DataRules, rules_for
from tunespec.diagnostics import Diagnostics
from tunespec.plugins.host import reset_plugin_host
from tunespec.spec.model import TuningJob
from tunespec.testing import run_cli

from . import media
from .conftest import make_spec, write_jsonl

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


# The spec option and the rules -------------------------------------------------------------


def _job(documents: dict | None = None, modality: str = "document") -> dict:
    data = {"train": "t.jsonl", "modality": modality, **({"documents": documents} if documents is not None else {})}
    return {"apiVersion": "tunespec.dev/v1", "kind": "TuningJob", "metadata": {"name": "docs"}, "model": {"base": "m"},
            "data": data, "backend": {"name": "local"}}


def test_the_documents_option_has_defaults_and_bounds():
    options = TuningJob.model_validate(_job()).data.documents
    assert (options.pages_as, options.max_pages, options.render_dpi) == ("image", 8, 72)
    assert TuningJob.model_validate(_job({"pages_as": "text", "max_pages": 1000, "render_dpi": 300}, modality="text"))
    for bad in ({"max_pages": 0}, {"max_pages": 1001}, {"render_dpi": 17}, {"render_dpi": 301}, {"pages_as": "ocr"}, {"pages": 3}):
        with pytest.raises(ValueError):
            TuningJob.model_validate(_job(bad))


def test_the_page_limit_reaches_the_rules_for_documents_unless_the_backend_reads_pdfs_itself():
    assert rules_for("document", "sft", 8).max_pdf_pages == 8
    assert rules_for("image", "sft", 8).max_pdf_pages is None  # only documents have PDFs
    assert rules_for("document").max_pdf_pages is None  # rules without a spec: no limit
    assert rules_for("document", "sft", 8).merge(DataRules(max_pdf_pages=5)).max_pdf_pages == 5
    native = rules_for("document", "sft", 8).merge(DataRules(pdf_native=True))
    assert native.max_pdf_pages is None and native.pdf_native


def test_the_fingerprint_ignores_the_option_at_its_defaults_and_outside_documents(tmp_path):
    def fingerprint(documents: dict | None, modality: str = "document") -> str:
        spec = make_spec(tmp_path, "t.jsonl", modality=modality, **({"documents": documents} if documents is not None else {}))
        return spec.fingerprint

    assert fingerprint(None) == fingerprint({"max_pages": 8, "pages_as": "image", "render_dpi": 72})
    assert fingerprint(None) != fingerprint({"pages_as": "text"})
    assert fingerprint(None, "text") == fingerprint({"pages_as": "text"}, "text")


# Validation --------------------------------------------------------------------------------


def _record(*parts: dict) -> dict:
    return {"contents": [{"role": "user", "parts": [*parts, {"text": "Summarise the document."}]},
                         {"role": "model", "parts": [{"text": "An invoice."}]}]}


def _file(uri: str) -> dict:
    return {"fileData": {"mimeType": "application/pdf", "fileUri": uri}}


def _openai(file_data: str) -> dict:
    return {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_data": file_data}}, {"type": "text", "text": "Summarise."}]},
                         {"role": "assistant", "content": "An invoice."}]}


SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: documents
model:
  base: tiny-model
data:
  train: [gemini.jsonl, openai.jsonl]
  modality: document
  max_seq_length: 8192
  documents:
    max_pages: 2
backend:
  name: echo
"""


@pytest.fixture
def echo_backend(monkeypatch):
    """The CLI with the core tests' echo backend (it trains nothing, validates data for real)."""
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin")
    reset_plugin_host()
    yield
    reset_plugin_host()


def _validate(tmp_path, gemini_records: list, openai_records: list):
    write_jsonl(tmp_path / "gemini.jsonl", gemini_records)
    write_jsonl(tmp_path / "openai.jsonl", openai_records)
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = run_cli("validate", tmp_path / "spec.yaml", "--state", tmp_path / "state" / "state.db", "--output", "json")
    found = [d for spec in result.json["specs"] for d in spec["diagnostics"]] if "specs" in result.json else result.json["diagnostics"]
    return result, found


def test_good_pdfs_pass_validation(tmp_path, echo_backend):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "invoice.pdf").write_bytes(media.pdf_pages(["Invoice 1001", "Total 120.50 EUR"]))
    result, found = _validate(
        tmp_path,
        [_record(_file("docs/invoice.pdf")), _record(_file("docs/invoice.pdf"))],
        [_openai("data:application/pdf;base64," + media.b64(media.pdf("Hello")))],
    )
    assert result.code == 0, result.text
    assert found == []


def test_unreadable_and_too_long_pdfs_are_reported_at_their_data_line(tmp_path, echo_backend):
    (tmp_path / "good.pdf").write_bytes(media.pdf())
    (tmp_path / "cut.pdf").write_bytes(THREE[: len(THREE) // 3])
    (tmp_path / "long.pdf").write_bytes(THREE)
    (tmp_path / "empty-doc.pdf").write_bytes(media.pdf_pages([]))
    broken = "data:application/pdf;base64," + media.b64(b"%PDF-1.4\n" + random.Random(1).randbytes(2000))
    result, found = _validate(
        tmp_path,
        [_record(_file("good.pdf")), _record(_file("cut.pdf")), _record(_file("long.pdf")), _record(_file("empty-doc.pdf"))],
        [_openai("data:application/pdf;base64," + media.b64(THREE)), _openai(broken)],
    )
    assert result.code == 1
    gemini, openai = str(tmp_path / "gemini.jsonl"), str(tmp_path / "openai.jsonl")
    where = [(d["code"], d["severity"], d["location"]["file"], d["location"]["line"], d["location"]["path"]) for d in found]
    assert where == [
        ("TS235", "error", gemini, 2, "$.contents[0].parts[0]"),
        ("TS234", "error", gemini, 3, "$.contents[0].parts[0]"),
        ("TS235", "error", gemini, 4, "$.contents[0].parts[0]"),
        ("TS234", "error", openai, 1, "$.messages[0].content[0]"),
        ("TS235", "error", openai, 2, "$.messages[0].content[0]"),
    ]
    messages = [d["message"] for d in found]
    assert messages[0] == "referenced file 'cut.pdf' cannot be read as a PDF: it is not a PDF, or it is damaged or truncated"
    assert messages[1] == "referenced file 'long.pdf' has 3 pages, over the limit of 2 (`data.documents.max_pages`)"
    assert messages[2] == "referenced file 'empty-doc.pdf' cannot be read as a PDF: it has no pages"
    assert messages[3] == "inline PDF has 3 pages, over the limit of 2 (`data.documents.max_pages`)"
    assert messages[4].startswith("inline PDF cannot be read as a PDF: ")
    assert "data.documents.max_pages" in found[1]["hint"] and "split the PDF" in found[1]["hint"]
    assert "password" in found[0]["hint"]
    human = run_cli("validate", tmp_path / "spec.yaml", "--state", tmp_path / "state" / "state.db")
    assert human.code == 1 and "TS235" in human.text and "TS234" in human.text and "Traceback" not in human.text


def test_a_pdf_used_by_many_examples_is_opened_once(tmp_path, monkeypatch):
    from tunespec.data import documents

    opened = []
    real = documents.page_count
    monkeypatch.setattr(documents, "page_count", lambda data: opened.append(len(data)) or real(data))
    (tmp_path / "manual.pdf").write_bytes(THREE)
    write_jsonl(tmp_path / "t.jsonl", [_record(_file("manual.pdf"))] * 50)
    diagnostics = Diagnostics(max_per_code=100)
    validate_data(make_spec(tmp_path, "t.jsonl", modality="document", documents={"max_pages": 2}, max_seq_length=65536), None, None, diagnostics)
    assert [d.code for d in diagnostics] == ["TS234"] * 50  # every example that uses it is reported
    assert opened == [len(THREE)]


def test_remote_pdfs_are_not_fetched_and_the_limit_is_lifted_where_the_backend_reads_pdfs(tmp_path):
    (tmp_path / "long.pdf").write_bytes(THREE)
    (tmp_path / "cut.pdf").write_bytes(THREE[:300])
    write_jsonl(tmp_path / "t.jsonl", [_record(_file("long.pdf")), _record(_file("cut.pdf")), _record(_file("https://example.com/a.pdf"))])
    spec = make_spec(tmp_path, "t.jsonl", modality="document", documents={"max_pages": 2}, max_seq_length=65536)
    diagnostics = Diagnostics()
    validate_data(spec, DataRules(media=rules_for("document").media, pdf_native=True), None, diagnostics)
    assert [(d.code, d.location.line) for d in diagnostics] == [("TS235", 2)]  # unreadable everywhere; no TS234
