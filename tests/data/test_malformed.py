"""Broken files never end in a traceback: each problem is a located diagnostic, and every
good line around it is still validated."""

from __future__ import annotations

import gzip

import orjson

from tunespec.data import validate_data

from .conftest import gemini, make_spec

GOOD = orjson.dumps(gemini(("user", "hi"), ("model", "hello")))


def _run(tmp_path, diagnostics, content: bytes, name: str = "t.jsonl", **data):
    path = tmp_path / name
    path.write_bytes(content)
    report = validate_data(make_spec(tmp_path, name, **data), None, None, diagnostics)
    return report, [(d.code, d.location.line, d.location.column) for d in diagnostics], str(path)


def test_malformed_json_line_is_reported_and_the_rest_validated(tmp_path, diagnostics):
    report, problems, path = _run(tmp_path, diagnostics, GOOD + b"\n" + b'{"contents": [}\n' + GOOD + b"\n")
    assert problems == [("TS201", 2, 15)]
    assert next(iter(diagnostics)).location.file == path
    assert report.splits["train"].examples == 2
    assert report.errors == 1 and report.problems == {"TS201": 1}


def test_invalid_utf8_points_at_the_byte(tmp_path, diagnostics):
    bad = b'{"contents": [{"role": "user", "parts": [{"text": "caf\xe9"}]}]}'
    report, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\n" + bad + b"\n")
    assert problems == [("TS202", 2, bad.index(b"\xe9") + 1)]
    assert "0xe9" in next(iter(diagnostics)).message
    assert report.splits["train"].examples == 1


def test_bom_is_a_warning_and_the_first_record_still_counts(tmp_path, diagnostics):
    report, problems, _ = _run(tmp_path, diagnostics, b"\xef\xbb\xbf" + GOOD + b"\n" + GOOD + b"\n")
    assert problems == [("TS219", 1, 1)]
    assert not diagnostics.has_errors
    assert report.splits["train"].examples == 2


def test_crlf_line_ends_and_blank_lines_are_accepted(tmp_path, diagnostics):
    report, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\r\n\r\n" + GOOD + b"\r\n  \n\n" + GOOD + b"\r\n")
    assert problems == []
    assert report.splits["train"].examples == 3
    # the next example's line number counts the blank lines
    path = tmp_path / "t.jsonl"
    path.write_bytes(GOOD + b"\r\n\r\n" + b"{oops}\r\n")
    diagnostics2 = type(diagnostics)()
    validate_data(make_spec(tmp_path, "t.jsonl"), None, None, diagnostics2)
    assert [(d.code, d.location.line) for d in diagnostics2] == [("TS201", 3)]


def test_a_50_mb_line_is_skipped_unbuffered_and_reported(tmp_path, diagnostics):
    huge = b'{"contents": [{"role": "user", "parts": [{"text": "' + b"x" * (50 * 1024 * 1024) + b'"}]}]}'
    report, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\n" + huge + b"\n" + GOOD + b"\n")
    assert problems == [("TS221", 2, None)]
    assert "50.0 MiB" in next(iter(diagnostics)).message
    assert report.splits["train"].examples == 2


def test_a_long_line_under_the_limit_is_parsed(tmp_path, diagnostics):
    long = orjson.dumps(gemini(("user", "y" * 3_000_000), ("model", "ok")))  # spans several read chunks
    report, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\n" + long + b"\n")
    assert problems == [("TS215", 2, None)]  # only: longer than max_seq_length (a warning)
    assert report.splits["train"].tokens_max > 700_000


def test_empty_file_is_an_error(tmp_path, diagnostics):
    report, problems, path = _run(tmp_path, diagnostics, b"")
    assert problems == [("TS205", None, None)]
    assert next(iter(diagnostics)).location.file == path
    assert report.errors == 1


def test_whitespace_only_file_is_empty(tmp_path, diagnostics):
    _, problems, _ = _run(tmp_path, diagnostics, b"\n\n  \r\n")
    assert problems == [("TS205", None, None)]


def test_truncated_last_line_is_reported_as_truncated(tmp_path, diagnostics):
    report, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\n" + GOOD[:-10])
    assert [(c, line) for c, line, _ in problems] == [("TS220", 2)]
    assert report.splits["train"].examples == 1


def test_last_line_without_newline_that_parses_is_fine(tmp_path, diagnostics):
    report, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\n" + GOOD)
    assert problems == []
    assert report.splits["train"].examples == 2


def test_record_that_is_not_an_object(tmp_path, diagnostics):
    _, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\n[1, 2]\n\"text\"\n")
    assert [(c, line) for c, line, _ in problems] == [("TS203", 2), ("TS203", 3)]


def test_truncated_gzip_reports_the_cut(tmp_path, diagnostics):
    packed = gzip.compress((GOOD + b"\n") * 2000)
    report, problems, _ = _run(tmp_path, diagnostics, packed[: len(packed) // 2], name="t.jsonl.gz")
    assert "TS220" in [c for c, _, _ in problems]
    assert report.splits["train"].examples > 0


def test_not_gzip_at_all(tmp_path, diagnostics):
    _, problems, _ = _run(tmp_path, diagnostics, GOOD + b"\n", name="t.jsonl.gz")
    assert problems == [("TS224", None, None)]
    [d] = diagnostics
    assert "named .gz but is not gzip-compressed" in d.message and "rename" in d.hint


def test_problems_beyond_the_cap_are_counted_not_kept(tmp_path):
    from tunespec.diagnostics import Diagnostics

    diagnostics = Diagnostics(max_per_code=3)
    report, problems, _ = _run(tmp_path, diagnostics, b"{bad\n" * 10 + GOOD + b"\n")
    assert problems == [("TS201", 1, 2), ("TS201", 2, 2), ("TS201", 3, 2)]
    assert report.problems == {"TS201": 10} and diagnostics.omitted() == {"TS201": 7}
