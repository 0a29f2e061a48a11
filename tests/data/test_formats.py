"""Every record format converts into the one conversation model, auto-detected per file."""

from __future__ import annotations

import pytest

from tunespec.data import iter_conversations, validate_data
from tunespec.diagnostics import DiagnosticError, Diagnostics

from .conftest import gemini, make_spec, openai, write_jsonl


def _problems(d: Diagnostics) -> list[tuple[str, int | None, str | None]]:
    return [(x.code, x.location.line, x.location.path) for x in d]


def test_gemini_records_become_conversations(tmp_path):
    write_jsonl(
        tmp_path / "train.jsonl",
        [
            gemini(("user", "Capital of France?"), ("model", "Paris."), system="Answer briefly."),
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "What is this?"}, {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/cat.png"}}]},
                    {"role": "model", "parts": [{"text": "A cat."}]},
                ]
            },
            {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "aGVsbG8="}}]}, {"role": "model", "parts": [{"text": "hi"}]}]},
        ],
    )
    convs = list(iter_conversations(make_spec(tmp_path, "train.jsonl"), "train"))
    assert [c.format for c in convs] == ["gemini"] * 3
    first = convs[0]
    assert [p.text for p in first.system] == ["Answer briefly."]
    assert [(t.role, [p.text for p in t.parts]) for t in first.turns] == [("user", ["Capital of France?"]), ("model", ["Paris."])]
    assert first.line == 1 and first.file == str(tmp_path / "train.jsonl")
    image = convs[1].turns[0].parts[1]
    assert (image.kind, image.mime_type, image.uri, image.path) == ("file", "image/png", "gs://b/cat.png", "$.contents[0].parts[1]")
    inline = convs[2].turns[0].parts[0]
    assert (inline.kind, inline.mime_type, inline.size) == ("inline", "image/png", 5)  # base64 of b"hello"


def test_openai_messages_map_assistant_to_model(tmp_path):
    write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}]},
                    {"role": "assistant", "content": "Dark."},
                ]
            },
        ],
    )
    convs = list(iter_conversations(make_spec(tmp_path, "chat.jsonl"), "train"))
    assert [p.text for p in convs[0].system] == ["Be terse."]
    assert [t.role for t in convs[0].turns] == ["user", "model"]
    assert convs[0].turns[1].path == "$.messages[2]"
    part = convs[1].turns[0].parts[1]
    assert (part.kind, part.mime_type, part.size, part.path) == ("inline", "image/jpeg", 3, "$.messages[0].content[1]")


def test_prompt_completion_uses_field_names_from_spec(tmp_path, diagnostics):
    write_jsonl(tmp_path / "pc.jsonl", [{"question": "Q1", "answer": "A1", "ctx": "sys"}, {"question": "Q2", "answer": 3}])
    spec = make_spec(tmp_path, "pc.jsonl", fields={"prompt": "question", "completion": "answer", "system": "ctx"})
    report = validate_data(spec, None, None, diagnostics)
    assert _problems(diagnostics) == [("TS203", 2, "$.answer")]
    assert report.files[0].format == "prompt_completion"
    assert report.splits["train"].examples == 1
    conversations = iter_conversations(spec, "train")
    conv = next(conversations)
    assert [p.text for p in conv.system] == ["sys"] and [t.parts[0].text for t in conv.turns] == ["Q1", "A1"]
    with pytest.raises(DiagnosticError) as bad:  # training never silently skips a bad record
        next(conversations)
    assert bad.value.diagnostics[0].location.line == 2


def test_format_is_detected_per_file_in_a_directory(tmp_path, diagnostics):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "a.jsonl", [gemini(("user", "a"), ("model", "b"))])
    write_jsonl(data / "b.jsonl", [openai(("user", "c"), ("assistant", "d"))])
    write_jsonl(data / "c.jsonl", [{"prompt": "e", "completion": "f"}])
    (data / "notes.txt").write_text("not data")
    report = validate_data(make_spec(tmp_path, "data"), None, None, diagnostics)
    assert not diagnostics.has_errors, list(diagnostics)
    assert [(f.path.rsplit("/", 1)[-1], f.format, f.examples) for f in report.files] == [
        ("a.jsonl", "gemini", 1),
        ("b.jsonl", "openai", 1),
        ("c.jsonl", "prompt_completion", 1),
    ]


def test_unrecognised_first_record_skips_file_with_ts204(tmp_path, diagnostics):
    write_jsonl(tmp_path / "x.jsonl", [{"input": "a", "output": "b"}, {"input": "c", "output": "d"}])
    report = validate_data(make_spec(tmp_path, "x.jsonl"), None, None, diagnostics)
    assert _problems(diagnostics) == [("TS204", 1, "$")]
    assert "input, output" in next(iter(diagnostics)).message
    assert report.splits["train"].examples == 0


def test_format_fixed_in_spec_reports_mismatches(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.jsonl", [openai(("user", "a"), ("assistant", "b")), gemini(("user", "a"), ("model", "b"))])
    validate_data(make_spec(tmp_path, [{"path": "t.jsonl", "format": "openai"}]), None, None, diagnostics)
    assert _problems(diagnostics) == [("TS203", 2, "$.messages")]


def test_unknown_format_name_points_at_spec(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.jsonl", [openai(("user", "a"), ("assistant", "b"))])
    validate_data(make_spec(tmp_path, "t.jsonl", format="alpaca"), None, None, diagnostics)
    [d] = list(diagnostics)
    assert d.code == "TS204" and "alpaca" in d.message and "gemini" in d.hint


@pytest.mark.parametrize(
    "record, code, path",
    [
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "TS210", "$.contents[0].role"),
        ({"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]}, "TS203", "$.contents[0].parts[0]"),
        ({"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png"}}]}]}, "TS203", "$.contents[0].parts[0].fileData"),
        ({"contents": "hello"}, "TS203", "$.contents"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "TS210", "$.messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "TS203", "$.messages[0].content"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]}, "TS207", "$.messages[1].role"),
    ],
)
def test_record_shape_problems_are_located_by_json_path(tmp_path, diagnostics, record, code, path):
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "ok"), ("model", "ok")) if "contents" in record else openai(("user", "ok"), ("assistant", "ok")), record])
    validate_data(make_spec(tmp_path, "t.jsonl"), None, None, diagnostics)
    assert (code, 2, path) in _problems(diagnostics)
    assert all(d.location.file == str(tmp_path / "t.jsonl") for d in diagnostics)
