"""The corpus of invalid specs: each file says, in its last line, which diagnostic code
must be reported and at which line:column. Every one must exit 1 with no traceback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "invalid_specs"
CASES = sorted(CORPUS.glob("*.yaml"))
EXPECT = re.compile(r"# expect: (TS\d{3})(?: (\d+):(\d+))?")


def expectation(path: Path) -> tuple[str, int | None, int | None]:
    sidecar = path.with_name(path.name + ".expect")
    text = sidecar.read_text() if sidecar.exists() else path.read_text()
    code, line, col = EXPECT.search(text).groups()
    return code, int(line) if line else None, int(col) if col else None


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_invalid_spec_is_located(path, cli, tmp_path, monkeypatch):
    monkeypatch.delenv("TUNESPEC_TEST_SURELY_UNSET", raising=False)
    code, line, col = expectation(path)
    result = cli("validate", path, "--output", "json", "--state", tmp_path / "state.db")
    assert result.code == 1
    report = result.json
    found = report["diagnostics"] + [d for s in report["specs"] for d in s["diagnostics"]]
    matching = [d for d in found if d["code"] == code]
    assert matching, f"expected {code}, got {[(d['code'], d['message']) for d in found]}"
    if line is not None:
        positions = [(d["location"]["line"], d["location"]["column"]) for d in matching]
        assert (line, col) in positions, f"{code} reported at {positions}, expected {(line, col)}"
    assert all(d["location"]["file"] for d in matching)


def test_human_output_shows_source_line_and_caret(cli, tmp_path):
    result = cli("validate", CORPUS / "typo-in-hyperparameters.yaml", "--state", tmp_path / "s.db")
    assert result.code == 1
    assert "typo-in-hyperparameters.yaml:12:3" in result.err
    assert "learning_rte: 0.001" in result.err
    assert "\n" + " " * 10 + "^" in result.err  # caret under column 3 after the 8-char gutter
    assert "did you mean 'learning_rate'?" in result.err


def test_every_error_in_a_file_is_reported_in_one_run(cli, tmp_path):
    spec = tmp_path / "many.yaml"
    spec.write_text((CORPUS / "bad-metric.yaml").read_text().replace("name: corpus", "name: Bad_Name") + "hyperparameters:\n  epochs: 0\n  optimizr: sgd\n")
    result = cli("validate", spec, "--output", "json", "--state", tmp_path / "s.db")
    codes = sorted(d["code"] for d in result.json["diagnostics"])
    assert codes == ["TS110", "TS113", "TS114", "TS116"]


def test_directory_with_one_bad_file_among_good_ones(cli, tmp_path):
    folder = tmp_path / "specs"
    shutil.copytree(CORPUS / "data", folder / "data")
    good = (CORPUS / "bad-metric.yaml").read_text().replace("exact_match, bleu", "exact_match")
    (folder / "a.yaml").write_text(good.replace("name: corpus", "name: good-a"))
    (folder / "b.yaml").write_text(good.replace("name: corpus", "name: good-b"))
    shutil.copy(CORPUS / "typo-in-lora.yaml", folder / "c.yaml")
    result = cli("validate", folder, "--output", "json", "--state", tmp_path / "s.db")
    assert result.code == 1
    assert [d["location"]["file"].endswith("c.yaml") for d in result.json["diagnostics"]] == [True]
    assert sorted(s["name"] for s in result.json["specs"] if s["ok"]) == ["good-a", "good-b"]


def test_no_traceback_in_a_real_process(tmp_path):
    """The same through the installed console script, as a user runs it."""
    for name in ("python-object-tag", "alias-bomb", "yaml-syntax-error", "empty-file"):
        proc = subprocess.run(
            [sys.executable, "-m", "tunespec.cli.main", "validate", str(CORPUS / f"{name}.yaml"), "--state", str(tmp_path / "s.db")],
            capture_output=True, text=True, env={"TUNESPEC_PLUGINS": "tests.core.echo_plugin", "PATH": "", "PYTHONPATH": str(Path.cwd())},
        )
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert "TS1" in proc.stderr
