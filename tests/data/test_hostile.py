"""Hostile data: specs and data arrive in pull requests, so every data file and every media
part is untrusted. Whatever the bytes are, validation ends in located diagnostics (never an
internal error), in bounded time and memory, and never echoes a file that is not data."""

from __future__ import annotations

import hashlib
import os

from tunespec.data import validate_data
from tunespec.data.sources import LocalSource
from tunespec.diagnostics import Diagnostics
from tunespec.state.store import StateStore

from .conftest import gemini, make_spec, write_jsonl

RECORDS = [gemini(("user", f"q{i}"), ("model", f"a{i}")) for i in range(5)]


# The content hash cache ----------------------------------------------------------------


def test_file_changed_in_place_with_size_and_mtime_restored_is_hashed_again(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", RECORDS)
    store = StateStore(tmp_path / "state" / "state.db")
    first = make_spec(tmp_path, "t.jsonl")
    validate_data(first, None, None, Diagnostics(), hash_cache=store)
    assert first.data_hashes["t.jsonl"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()

    # Same size, same mtime (set back with utime), different bytes.
    st = path.stat()
    path.write_bytes(path.read_bytes().replace(b"q0", b"Q0"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    second = make_spec(tmp_path, "t.jsonl")
    validate_data(second, None, None, Diagnostics(), hash_cache=store)
    assert second.data_hashes["t.jsonl"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert second.data_hashes["t.jsonl"] != first.data_hashes["t.jsonl"]
    assert second.fingerprint != first.fingerprint

    # Unchanged since: the stored hash is reused (the cache still works).
    now = LocalSource().stat(str(path))
    assert now.inode == st.st_ino and now.ctime_ns is not None
    assert store.lookup(now) == second.data_hashes["t.jsonl"]
    store.close()
