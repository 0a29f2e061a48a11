"""Sources and layouts: gzip, JSON array, Parquet, directories, gs:// (real client against
gcp-storage-emulator), and content hashing with the hash cache."""

from __future__ import annotations

import gzip
import hashlib
import os

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunespec.data import iter_conversations, validate_data
from tunespec.diagnostics import Diagnostics

from . import media
from .conftest import gemini, make_spec, openai, write_jsonl

RECORDS = [gemini(("user", f"q{i}"), ("model", f"a{i}")) for i in range(5)]


def test_gzip_jsonl_streams_and_hashes_the_compressed_bytes(tmp_path, diagnostics):
    raw = b"".join(orjson.dumps(r) + b"\n" for r in RECORDS) + b'{"contents": oops}\n'
    packed = gzip.compress(raw)
    (tmp_path / "t.jsonl.gz").write_bytes(packed)
    spec = make_spec(tmp_path, "t.jsonl.gz")
    report = validate_data(spec, None, None, diagnostics)
    assert [(d.code, d.location.line) for d in diagnostics] == [("TS201", 6)]
    assert report.splits["train"].examples == 5
    assert spec.data_hashes == {"t.jsonl.gz": "sha256:" + hashlib.sha256(packed).hexdigest()}


def test_json_array_file_reports_element_lines(tmp_path, diagnostics):
    text = (
        "[\n"
        '  {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},\n'
        '  {"messages": [{"role": "user", "content": "[not, a {bracket\\" ,"},\n'
        '                {"role": "assistant", "content": "fine"}]},\n'
        '  {"messages": [{"role": "user", "content": "c"}]}\n'
        "]\n"
    )
    (tmp_path / "t.json").write_text(text)
    report = validate_data(make_spec(tmp_path, "t.json"), None, None, diagnostics)
    assert report.splits["train"].examples == 3
    assert report.files[0].format == "openai"
    assert [(d.code, d.location.line, d.location.path) for d in diagnostics] == [("TS206", 5, "$"), ("TS208", 5, "$.messages[0]")]


def test_broken_json_array_is_located(tmp_path, diagnostics):
    (tmp_path / "t.json").write_text('[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "a" "completion": "b"}\n]\n')
    validate_data(make_spec(tmp_path, "t.json"), None, None, diagnostics)
    [d] = list(diagnostics)
    assert (d.code, d.location.line) == ("TS201", 3)


def test_json_file_holding_lines_is_read_as_jsonl(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.json", RECORDS[:2])
    report = validate_data(make_spec(tmp_path, "t.json"), None, None, diagnostics)
    assert list(diagnostics) == [] and report.splits["train"].examples == 2


def test_parquet_rows(tmp_path, diagnostics):
    table = pa.table({"prompt": ["p1", "p2", "p3"], "completion": ["c1", "", "c3"]})
    pq.write_table(table, tmp_path / "t.parquet")
    spec = make_spec(tmp_path, "t.parquet")
    report = validate_data(spec, None, None, diagnostics)
    assert [(d.code, d.location.line, d.location.path) for d in diagnostics] == [("TS209", 2, "$.completion")]
    assert report.files[0].format == "prompt_completion" and report.splits["train"].examples == 3
    assert spec.data_hashes["t.parquet"] == "sha256:" + hashlib.sha256((tmp_path / "t.parquet").read_bytes()).hexdigest()
    assert [c.turns[1].parts[0].text for c in iter_conversations(spec, "train")] == ["c1", "", "c3"]


def test_parquet_with_nested_gemini_records(tmp_path, diagnostics):
    pq.write_table(pa.Table.from_pylist(RECORDS[:2]), tmp_path / "g.parquet")
    report = validate_data(make_spec(tmp_path, "g.parquet"), None, None, diagnostics)
    assert list(diagnostics) == [] and report.files[0].format == "gemini" and report.splits["train"].examples == 2


def test_directory_lists_data_files_recursively_sorted_skipping_hidden(tmp_path, diagnostics):
    d = tmp_path / "data"
    (d / "part2").mkdir(parents=True)
    (d / ".cache").mkdir()
    write_jsonl(d / "b.jsonl", RECORDS[:1])
    write_jsonl(d / "a.jsonl", RECORDS[:2])
    write_jsonl(d / "part2" / "c.jsonl", RECORDS[:3])
    write_jsonl(d / ".cache" / "x.jsonl", [{"junk": 1}])
    (d / "README.md").write_text("docs")
    report = validate_data(make_spec(tmp_path, "data"), None, None, diagnostics)
    assert list(diagnostics) == []
    assert [os.path.relpath(f.path, d) for f in report.files] == ["a.jsonl", "b.jsonl", "part2/c.jsonl"]
    assert report.splits["train"].examples == 6


def test_missing_source_points_at_the_spec_entry(tmp_path, diagnostics):
    write_jsonl(tmp_path / "t.jsonl", RECORDS)
    validate_data(make_spec(tmp_path, ["t.jsonl", "nope.jsonl"]), None, None, diagnostics)
    [d] = list(diagnostics)
    assert d.code == "TS200" and d.location.path == "data.train[1].path" and "nope.jsonl" in d.message


def test_unknown_scheme_has_no_source(tmp_path, diagnostics):
    validate_data(make_spec(tmp_path, "s3://bucket/x.jsonl"), None, None, diagnostics)
    [d] = list(diagnostics)
    assert d.code == "TS200" and "s3://" in d.message


class CountingCache:
    """The HashCache protocol, keyed as the state store keys it, counting calls."""

    def __init__(self):
        self.entries: dict = {}
        self.stores = 0

    def lookup(self, stat):
        return self.entries.get((stat.path, stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns))

    def store(self, stat, digest):
        self.stores += 1
        self.entries[(stat.path, stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns)] = digest


def test_hash_cache_skips_rehashing_unchanged_files(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", RECORDS)
    cache = CountingCache()
    first = make_spec(tmp_path, "t.jsonl")
    validate_data(first, None, None, Diagnostics(), hash_cache=cache)
    assert cache.stores == 1
    digest = first.data_hashes["t.jsonl"]
    assert digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()

    # Unchanged: the cached hash is used, the file not re-hashed.
    second = make_spec(tmp_path, "t.jsonl")
    validate_data(second, None, None, Diagnostics(), hash_cache=cache)
    assert cache.stores == 1 and second.data_hashes["t.jsonl"] == digest

    # A real change moves the mtime: re-hashed, new digest, new fingerprint.
    st = path.stat()
    path.write_bytes(path.read_bytes().replace(b"q0", b"Q0"))
    third = make_spec(tmp_path, "t.jsonl")
    validate_data(third, None, None, Diagnostics(), hash_cache=cache)
    assert cache.stores == 2 and third.data_hashes["t.jsonl"] != digest
    assert third.fingerprint != first.fingerprint


def test_fingerprint_follows_data_content(tmp_path):
    write_jsonl(tmp_path / "t.jsonl", RECORDS)
    a, b = make_spec(tmp_path, "t.jsonl"), make_spec(tmp_path, "t.jsonl")
    validate_data(a, None, None, Diagnostics())
    validate_data(b, None, None, Diagnostics())
    assert a.fingerprint == b.fingerprint
    write_jsonl(tmp_path / "t.jsonl", RECORDS[:4])
    c = make_spec(tmp_path, "t.jsonl")
    validate_data(c, None, None, Diagnostics())
    assert c.fingerprint != a.fingerprint


# gs:// through the real google-cloud-storage client and gcp-storage-emulator ------------------


@pytest.fixture
def bucket(gcs_emulator, request):
    name = "tunespec-" + hashlib.md5(request.node.name.encode()).hexdigest()[:12]
    return gcs_emulator.create_bucket(name)


def test_gcs_object_and_prefix(tmp_path, diagnostics, bucket):
    body = b"".join(orjson.dumps(r) + b"\n" for r in RECORDS)
    bucket.blob("data/train/a.jsonl").upload_from_string(body)
    bucket.blob("data/train/b.jsonl.gz").upload_from_string(gzip.compress(orjson.dumps(openai(("user", "x"), ("assistant", "y"))) + b"\n"))
    bucket.blob("data/train/notes.txt").upload_from_string(b"ignored")
    bucket.blob("data/val.jsonl").upload_from_string(orjson.dumps(RECORDS[0]) + b"\n" + b"{broken\n")
    spec = make_spec(tmp_path, f"gs://{bucket.name}/data/train/", validation=f"gs://{bucket.name}/data/val.jsonl")
    report = validate_data(spec, None, None, diagnostics)
    assert [(d.code, d.location.file, d.location.line) for d in diagnostics if d.is_error] == [("TS201", f"gs://{bucket.name}/data/val.jsonl", 2)]
    assert [(f.path.rsplit("/", 1)[-1], f.format, f.examples) for f in report.files] == [
        ("a.jsonl", "gemini", 5),
        ("b.jsonl.gz", "openai", 1),
        ("val.jsonl", "gemini", 1),
    ]
    assert report.duplicates_between_splits == 1
    # Cloud Storage already knows each object's MD5: the fingerprint uses it
    assert all(v.startswith("md5:") for v in spec.data_hashes.values()) and len(spec.data_hashes) == 3
    assert [c.turns[0].parts[0].text for c in iter_conversations(spec, "train")] == ["q0", "q1", "q2", "q3", "q4", "x"]


def test_gcs_missing_object_and_referenced_files(tmp_path, diagnostics, bucket):
    bucket.blob("img/cat.png").upload_from_string(media.png())
    records = [
        {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": f"gs://{bucket.name}/img/cat.png"}}]}, {"role": "model", "parts": [{"text": "cat"}]}]},
        {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": f"gs://{bucket.name}/img/dog.png"}}]}, {"role": "model", "parts": [{"text": "dog"}]}]},
        {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "img/cat.png"}}]}, {"role": "model", "parts": [{"text": "relative to the data file"}]}]},
    ]
    bucket.blob("t.jsonl").upload_from_string(b"".join(orjson.dumps(r) + b"\n" for r in records))
    spec = make_spec(tmp_path, f"gs://{bucket.name}/t.jsonl", validation=f"gs://{bucket.name}/nothing-here.jsonl", modality="image", max_seq_length=4096)
    validate_data(spec, None, None, diagnostics)
    problems = sorted((d.code, d.location.file, d.location.line, d.location.path) for d in diagnostics)
    assert problems == [
        ("TS200", str(tmp_path / "spec.yaml"), None, "data.validation[0].path"),  # spec built without positions
        ("TS214", f"gs://{bucket.name}/t.jsonl", 2, "$.contents[0].parts[0]"),
    ]


def test_gcs_bucket_missing_is_a_located_diagnostic(tmp_path, diagnostics, gcs_emulator):
    validate_data(make_spec(tmp_path, "gs://no-such-bucket-here/x.jsonl"), None, None, diagnostics)
    [d] = list(diagnostics)
    assert d.code == "TS200" and d.location.path == "data.train[0].path"


def test_unreachable_store_leaves_references_unchecked_with_one_warning(tmp_path, diagnostics, monkeypatch):
    # No emulator and credentials that cannot load: what a laptop without ADC sees.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    record = {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}]}, {"role": "model", "parts": [{"text": "x"}]}]}
    write_jsonl(tmp_path / "t.jsonl", [record] * 3)
    report = validate_data(make_spec(tmp_path, "t.jsonl", modality="image", max_seq_length=4096), None, None, diagnostics)
    assert len(diagnostics) == 1, [str(d) for d in diagnostics]
    [d] = list(diagnostics)
    assert (d.code, d.is_error, d.location.line) == ("TS200", False, 1)
    assert "not checked" in d.message and report.splits["train"].examples == 3
