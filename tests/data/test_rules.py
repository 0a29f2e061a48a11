"""Conversation rules and modality rules (MIME types, counts, sizes, referenced files),
from tunespec's defaults and from a backend's own table."""

from __future__ import annotations

import base64

import pytest

from tunespec.data import DataRules, MediaLimits, rules_for, validate_data

from . import media
from .conftest import gemini, make_spec, write_jsonl


def _turns(*parts_per_turn):
    roles = ["user", "model"]
    return {"contents": [{"role": roles[i % 2], "parts": parts} for i, parts in enumerate(parts_per_turn)]}


def _file(mime: str, uri: str) -> dict:
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


def _validate(tmp_path, diagnostics, records, modality="text", rules=None, **data):
    # media parts are estimated at hundreds of tokens each: leave room so no example is over-long
    data.setdefault("max_seq_length", 65536)
    write_jsonl(tmp_path / "t.jsonl", records)
    report = validate_data(make_spec(tmp_path, "t.jsonl", modality=modality, **data), rules, None, diagnostics)
    return report, [(d.code, d.location.line, d.location.path) for d in diagnostics]


# Conversation rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "turns, expected",
    [
        ([("user", "a")], [("TS206", "$"), ("TS208", "$.contents[0]")]),
        ([("user", "a"), ("model", "b"), ("user", "c")], [("TS208", "$.contents[2]")]),
        ([("model", "a"), ("user", "b"), ("model", "c")], [("TS207", "$.contents[0]")]),
        ([("user", "a"), ("user", "b"), ("model", "c")], [("TS207", "$.contents[1]")]),
        ([("user", "a"), ("model", " ")], [("TS209", "$.contents[1].parts[0]")]),
        ([("user", "a"), ("model", "b"), ("user", "c"), ("model", "d")], []),
    ],
)
def test_conversation_rules(tmp_path, diagnostics, turns, expected):
    _, problems = _validate(tmp_path, diagnostics, [gemini(*turns)])
    assert [(code, path) for code, line, path in problems] == expected
    assert all(line == 1 for _, line, _ in problems)


def test_turn_without_parts_is_empty(tmp_path, diagnostics):
    _, problems = _validate(tmp_path, diagnostics, [{"contents": [{"role": "user", "parts": []}, {"role": "model", "parts": [{"text": "x"}]}]}])
    assert problems == [("TS209", 1, "$.contents[0]")]


def test_openai_conversation_rules_use_message_paths(tmp_path, diagnostics):
    record = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "assistant", "content": "b"}]}
    _, problems = _validate(tmp_path, diagnostics, [record])
    assert problems == [("TS209", 1, "$.messages[1].content"), ("TS207", 1, "$.messages[2]")]  # in record order


def test_backend_can_relax_nothing_but_can_forbid_system(tmp_path, diagnostics):
    rules = DataRules(allowed_roles=["user", "model"], require_alternation=False)
    _, problems = _validate(tmp_path, diagnostics, [gemini(("user", "a"), ("user", "b"), ("model", "c"), system="s")], rules=rules)
    # the backend's `require_alternation: false` does not loosen tunespec's default: stricter wins
    assert [c for c, _, _ in problems] == ["TS210", "TS207"]
    assert problems[0][2] == "$.systemInstruction.parts[0]"


# Modality rules ------------------------------------------------------------------------------


def test_text_modality_rejects_media_with_a_hint(tmp_path, diagnostics):
    _, problems = _validate(tmp_path, diagnostics, [_turns([{"text": "see"}, _file("image/png", "gs://b/x.png")], [{"text": "ok"}])])
    assert problems == [("TS211", 1, "$.contents[0].parts[1]")]
    assert "data.modality" in next(iter(diagnostics)).hint


def test_image_modality_checks_mime_and_count(tmp_path, diagnostics, monkeypatch):
    img = tmp_path / "cat.png"
    img.write_bytes(media.png())
    records = [
        _turns([_file("image/png", "cat.png"), {"text": "what?"}], [{"text": "a cat"}]),
        _turns([_file("image/gif", "cat.png")], [{"text": "x"}]),
        _turns([_file("audio/wav", "cat.png")], [{"text": "x"}]),
        _turns([_file("image/png", "cat.png")] * 31, [{"text": "many"}]),
    ]
    _, problems = _validate(tmp_path, diagnostics, records, modality="image")
    assert problems == [
        ("TS211", 2, "$.contents[0].parts[0]"),
        ("TS211", 3, "$.contents[0].parts[0]"),
        ("TS212", 4, "$"),
    ]
    messages = [d.message for d in diagnostics]
    assert "31 image parts" in messages[2] and "30" in messages[2]
    assert "data.modality: audio" in list(diagnostics)[1].hint


def test_missing_referenced_file_relative_to_data_file(tmp_path, diagnostics):
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.png").write_bytes(media.png())
    records = [
        _turns([_file("image/png", "media/a.png")], [{"text": "ok"}]),
        _turns([_file("image/png", "media/missing.png")], [{"text": "x"}]),
        _turns([_file("image/png", str(tmp_path / "media" / "a.png"))], [{"text": "absolute"}]),
    ]
    _, problems = _validate(tmp_path, diagnostics, records, modality="image")
    assert problems == [("TS214", 2, "$.contents[0].parts[0]")]
    assert "media/missing.png" in next(iter(diagnostics)).message


def test_referenced_file_falls_back_to_the_spec_folder(tmp_path, diagnostics):
    (tmp_path / "data").mkdir()
    (tmp_path / "doc.pdf").write_bytes(media.pdf())
    write_jsonl(tmp_path / "data" / "t.jsonl", [_turns([_file("application/pdf", "doc.pdf")], [{"text": "summary"}])])
    validate_data(make_spec(tmp_path, "data/t.jsonl", modality="document", max_seq_length=4096), None, None, diagnostics)
    assert list(diagnostics) == []


def test_file_and_inline_size_limits(tmp_path, diagnostics):
    (tmp_path / "big.pdf").write_bytes(media.pdf(pad_to=2000))
    (tmp_path / "small.pdf").write_bytes(media.pdf())
    assert len(media.pdf()) < 1000
    rules = DataRules(media={"document": MediaLimits(mime_types=["application/pdf"], max_bytes=1000)})
    inline = base64.b64encode(media.pdf(pad_to=1500)).decode()
    records = [
        _turns([_file("application/pdf", "small.pdf")], [{"text": "ok"}]),
        _turns([_file("application/pdf", "big.pdf")], [{"text": "x"}]),
        _turns([{"inlineData": {"mimeType": "application/pdf", "data": inline}}], [{"text": "x"}]),
    ]
    _, problems = _validate(tmp_path, diagnostics, records, modality="document", rules=rules)
    assert problems == [("TS213", 2, "$.contents[0].parts[0]"), ("TS213", 3, "$.contents[0].parts[0]")]


def test_audio_allows_one_file_per_example(tmp_path, diagnostics):
    (tmp_path / "a.wav").write_bytes(media.wav())
    _, problems = _validate(tmp_path, diagnostics, [_turns([_file("audio/wav", "a.wav"), _file("audio/wav", "a.wav")], [{"text": "t"}])], modality="audio")
    assert problems == [("TS212", 1, "$")]


def test_backend_table_refuses_inline_data_and_local_files(tmp_path, diagnostics):
    (tmp_path / "a.png").write_bytes(media.png())
    rules = DataRules(allow_inline_data=False, file_uri_schemes=["gs"], media={"image": rules_for("image").media["image"]})
    records = [
        _turns([{"inlineData": {"mimeType": "image/png", "data": media.b64(media.png())}}], [{"text": "x"}]),
        _turns([_file("image/png", "a.png")], [{"text": "x"}]),
    ]
    _, problems = _validate(tmp_path, diagnostics, records, modality="image", rules=rules)
    assert problems == [("TS222", 1, "$.contents[0].parts[0]"), ("TS223", 2, "$.contents[0].parts[0]")]


def test_max_examples_per_split_points_at_the_spec(tmp_path, diagnostics):
    write_jsonl(tmp_path / "v.jsonl", [gemini(("user", str(i)), ("model", "x")) for i in range(3)])
    write_jsonl(tmp_path / "t.jsonl", [gemini(("user", "t"), ("model", "x"))])
    rules = DataRules(max_examples={"validation": 2})
    validate_data(make_spec(tmp_path, "t.jsonl", validation="v.jsonl"), rules, None, diagnostics)
    [d] = list(diagnostics)
    assert d.code == "TS216" and "3 validation examples" in d.message and d.location.path == "data.validation"


def test_data_file_over_the_backend_size_limit(tmp_path, diagnostics):
    rules = DataRules(max_file_bytes=100)
    _, problems = _validate(tmp_path, diagnostics, [gemini(("user", "a" * 200), ("model", "b"))], rules=rules)
    assert [c for c, _, _ in problems] == ["TS217"]


def test_merge_keeps_the_stricter_limit():
    vertex_like = DataRules(
        max_tokens_per_example=131072,
        media={"image": MediaLimits(mime_types=["image/png", "image/jpeg"], max_per_example=10, max_bytes=None)},
        max_examples={"validation": 5000},
    )
    merged = rules_for("image").merge(vertex_like)
    image = merged.media["image"]
    assert image.mime_types == ["image/png", "image/jpeg"]
    assert (image.max_per_example, image.max_bytes) == (10, 20 * 1024 * 1024)
    assert merged.max_tokens_per_example == 131072 and merged.max_examples == {"validation": 5000}
    # a modality the spec did not choose stays closed whatever the backend allows
    assert rules_for("text").merge(vertex_like).media == {}
