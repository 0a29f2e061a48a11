"""Large local JSONL files are validated on several processes by byte ranges; the result
must be exactly what one process finds (same diagnostics at the same lines, same stats)."""

from __future__ import annotations

import orjson
import pytest

from tunespec.data import DataRules, parallel, reuse, validate_data
from tunespec.diagnostics import Diagnostics

from .conftest import gemini, make_spec


def _dataset(tmp_path):
    lines = []
    for i in range(3000):
        if i % 397 == 5:
            lines.append(b'{"contents": [broken')
        elif i % 251 == 7:
            lines.append(orjson.dumps(gemini(("user", f"q{i}"), ("user", "again"))))
        elif i % 500 == 0:
            lines.append(b"")
        elif i % 733 == 9:
            lines.append(orjson.dumps(gemini(("user", "long " * 1000), ("model", "x"))))  # over the record limit
        elif i % 101 == 3:
            lines.append(orjson.dumps(gemini(("user", f"crlf {i}"), ("model", "y"))) + b"\r")
        else:
            lines.append(orjson.dumps(gemini(("user", f"question {i} " + "word " * (i % 40)), ("model", f"answer {i}"))))
    # a BOM first, and a last line cut off in the middle
    (tmp_path / "train.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n" + orjson.dumps(gemini(("user", "cut"), ("model", "off")))[:-7])
    (tmp_path / "val.jsonl").write_bytes(orjson.dumps(gemini(("user", "question 8 " + "word " * 8), ("model", "answer 8"))) + b"\n")


def _validate(tmp_path):
    reuse.forget()  # the same file validated again: really do it (this test compares how)
    diagnostics = Diagnostics(max_per_code=5)
    spec = make_spec(tmp_path, "train.jsonl", validation="val.jsonl", max_seq_length=16)
    report = validate_data(spec, DataRules(max_record_bytes=4096), None, diagnostics)
    return report, [(d.code, d.location.line, d.location.path, d.message) for d in diagnostics], diagnostics, spec


@pytest.mark.skipif(not parallel.sys.platform.startswith("linux"), reason="parallel validation forks, on Linux only")
def test_parallel_matches_single_process(tmp_path, monkeypatch):
    _dataset(tmp_path)
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    single = _validate(tmp_path)

    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 1)
    monkeypatch.setattr(parallel, "RANGE_BYTES", 8 * 1024)  # ~20 ranges
    ranges = []
    real_split = parallel.split_ranges
    monkeypatch.setattr(parallel, "split_ranges", lambda *a, **k: ranges.append(real_split(*a, **k)) or ranges[-1])
    multi = _validate(tmp_path)

    # both files went through the workers (validation first); train in many ranges
    assert len(ranges) == 2 and len(ranges[1]) > 10
    assert multi[0] == single[0]  # the whole report: stats, files, hashes, problem counts
    # the same diagnostics at the same absolute lines (token-length warnings come when a
    # batch is counted, so emission order differs; per code it is line order in both)
    assert sorted(multi[1]) == sorted(single[1])
    assert multi[2].counts == single[2].counts and multi[2].error_count == single[2].error_count
    assert multi[3].data_hashes == single[3].data_hashes
    report = single[0]
    assert report.problems["TS201"] == 8 and report.duplicates_between_splits == 1
    assert report.problems["TS219"] == 1 and report.problems["TS220"] == 1 and report.problems["TS221"] == 5
    assert ("TS201", 6, None) in [d[:3] for d in single[1]]
