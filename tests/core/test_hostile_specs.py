"""Hostile specs: what a contributor could put in a pull request to make `tunespec` run code,
exhaust memory or time, crash, or print what it should not. Every case must end in a
located diagnostic with exit 1 (never TS004 or TS121). The files are written at test time
(binary ones, and big ones that must never be committed); small text cases live in
invalid_specs/. Limits are documented in tunespec/spec/loader.py; no timing is asserted
here (bench/hostile_specs.py measures it)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tunespec.spec import loader
from tunespec.spec.loader import load_documents

CORPUS = Path(__file__).parent / "invalid_specs"
HEADER = (CORPUS / "bad-metric.yaml").read_text().split("evaluation:")[0]  # 10 lines, a valid spec
assert HEADER.count("\n") == 10


def diagnostics(result) -> list[dict]:
    report = result.json
    return report["diagnostics"] + [d for s in report["specs"] for d in s["diagnostics"]]


def refused(cli, path: Path, code: str, at: tuple[int, int] | None, tmp_path: Path, command: str = "validate") -> dict:
    """Run the CLI on `path`; it must exit 1 with `code` (at line:col) and no crash."""
    result = cli(command, path, "--output", "json", "--state", tmp_path / "state" / "s.db")
    assert result.code == 1, result.text[:2000]
    found = diagnostics(result)
    assert not [d for d in found if d["code"] in ("TS004", "TS121")], found
    matching = [d for d in found if d["code"] == code]
    assert matching, f"expected {code}, got {[(d['code'], d['message'][:200]) for d in found]}"
    if at is not None:
        positions = [(d["location"]["line"], d["location"]["column"]) for d in matching]
        assert at in positions, f"{code} at {positions}, expected {at}"
    assert all(d["location"]["file"] and d["hint"] for d in matching)
    return matching[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with the corpus' training data, for specs written at test time."""
    shutil.copytree(CORPUS / "data", tmp_path / "data")
    return tmp_path


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# Numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["100000000000000000000000000000000", "1.0e+32", "18446744073709551616", "4294967296"])
def test_huge_seed_is_refused_before_plan(cli, folder, seed):
    """A seed past 64 bits used to pass validate and crash `plan` (the fingerprint's orjson)."""
    path = write(folder, "spec.yaml", HEADER + f"hyperparameters:\n  seed: {seed}\n")
    refused(cli, path, "TS113", (12, 9), folder, command="plan")


def test_largest_seed_is_accepted(cli, folder):
    path = write(folder, "spec.yaml", HEADER + "hyperparameters:\n  seed: 4294967295\n")
    assert cli("plan", path, "--state", folder / "s.db").code == 2
