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


# Nesting -------------------------------------------------------------------------------


def test_10000_deep_flow_nesting(cli, folder):
    path = write(folder, "deep.yaml", HEADER + "a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    # The root mapping is level 1, so the 64th `[` (column 67) is level 65. libyaml's
    # scanner looks up to 1,024 characters ahead for a key in a flow collection and stops
    # there on its own bound: the problem is located on the line, at or after column 67.
    d = refused(cli, path, "TS120", None, folder)
    assert "nested more than 64 deep" in d["message"]
    assert d["location"]["line"] == 11 and 67 <= d["location"]["column"] <= 1100


def test_deep_block_mappings(cli, folder):
    path = write(folder, "deep.yaml", HEADER + "".join(" " * i + "a:\n" for i in range(200)))
    refused(cli, path, "TS120", (75, 65), folder)


def test_deep_nesting_through_aliases_is_located_at_the_alias(cli, folder):
    chain = "".join(f"a{i}: &a{i} [{'*a%d' % (i - 1) if i else 1}]\n" for i in range(200))
    refused(cli, write(folder, "chain.yaml", HEADER + chain), "TS120", (74, 12), folder)


# Characters and encodings --------------------------------------------------------------


@pytest.mark.parametrize(
    "char",
    ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u2066", "\ufeff", "\ufffe"],
    ids=lambda c: f"U+{ord(c):04X}",
)
def test_control_and_invisible_characters(cli, folder, char):
    path = write(folder, "spec.yaml", HEADER + f"hyperparameters:\n  seed: 4{char}2\n")
    d = refused(cli, path, "TS109", (12, 10), folder)
    assert f"U+{ord(char):04X}" in d["message"]


def test_nul_bytes_are_counted_and_located_at_the_first(cli, folder):
    path = write(folder, "spec.yaml", (HEADER + "x: a\x00b\x00c\n").replace("kind", "ki\x00nd"))
    d = refused(cli, path, "TS109", (2, 3), folder)
    assert "(2 more in this file)" in d["message"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16", "utf-32", "utf-32-be", "utf-32-le"])
def test_utf16_and_utf32_with_and_without_a_bom(cli, folder, encoding):
    data = HEADER.encode(encoding)
    if encoding == "utf-32-be":
        data = b"\x00\x00\xfe\xff" + data  # with a BOM (Python writes one only for "utf-32")
    d = refused(cli, write(folder, "spec.yaml", data), "TS100", (1, 1), folder)
    assert "must be UTF-8" in d["message"] and "iconv" in d["hint"]


def test_invalid_utf8_is_located(cli, folder):
    refused(cli, write(folder, "spec.yaml", HEADER.encode() + b"x: caf\xe9\n"), "TS100", (11, 7), folder)


def test_crlf_line_ends_locate_and_echo_cleanly(cli, folder):
    path = write(folder, "spec.yaml", (HEADER + "hyperparameters:\n  epoch: 2\n").replace("\n", "\r\n"))
    refused(cli, path, "TS110", (12, 3), folder)
    human = cli("validate", path, "--state", folder / "s.db")
    assert "   12 |   epoch: 2\n" + " " * 10 + "^" in human.err
    assert "\r" not in human.err


def test_utf8_bom_at_the_start_is_fine(cli, folder):
    path = write(folder, "spec.yaml", "\ufeff" + HEADER)
    assert cli("validate", path, "--state", folder / "s.db").code == 0


# Numbers -------------------------------------------------------------------------------


def test_5000_digit_integer(cli, folder):
    path = write(folder, "spec.yaml", HEADER + "hyperparameters:\n  seed: " + "9" * 5000 + "\n")
    d = refused(cli, path, "TS113", (12, 9), folder)
    assert len(d["message"]) < 300


def test_long_sexagesimal_integer_is_not_computed(cli, folder):
    # YAML 1.1 reads 1:1:1 as base 60: 8000 parts would be a 14,000-digit number
    path = write(folder, "spec.yaml", HEADER + "hyperparameters:\n  seed: " + ":".join(["1"] * 8000) + "\n")
    refused(cli, path, "TS113", (12, 9), folder)


@pytest.mark.parametrize("seed", ["100000000000000000000000000000000", "1.0e+32", "18446744073709551616", "4294967296"])
def test_huge_seed_is_refused_before_plan(cli, folder, seed):
    """A seed past 64 bits used to pass validate and crash `plan` (the fingerprint's orjson)."""
    path = write(folder, "spec.yaml", HEADER + f"hyperparameters:\n  seed: {seed}\n")
    refused(cli, path, "TS113", (12, 9), folder, command="plan")


def test_largest_seed_is_accepted(cli, folder):
    path = write(folder, "spec.yaml", HEADER + "hyperparameters:\n  seed: 4294967295\n")
    assert cli("plan", path, "--state", folder / "s.db").code == 2


def test_negative_zero_is_zero(folder):
    plain = write(folder, "a.yaml", HEADER + "hyperparameters:\n  weight_decay: 0.0\n")
    negative = write(folder, "b.yaml", HEADER + "hyperparameters:\n  weight_decay: -0.0\n")
    (a,), _ = load_documents(plain)
    (b,), _ = load_documents(negative)
    value = b.data["hyperparameters"]["weight_decay"]
    assert value == 0.0 and str(value) == "0.0"
    assert a.data == b.data


# Size ----------------------------------------------------------------------------------


def test_spec_file_over_1_mib_is_refused_from_stat(cli, folder):
    path = folder / "huge.yaml"
    with open(path, "wb") as f:
        f.write(HEADER.encode())
        f.truncate(55 << 20)  # sparse: nothing must read it
    d = refused(cli, path, "TS120", (1, 1), folder)
    assert "57,671,680 bytes" in d["message"]


def test_spec_file_just_over_1_mib(cli, folder):
    line = "# " + "x" * 77 + "\n"
    path = write(folder, "big.yaml", HEADER + line * ((loader.MAX_FILE_BYTES - len(HEADER)) // len(line) + 1))
    refused(cli, path, "TS120", (1, 1), folder)


def test_one_megabyte_line(cli, folder):
    path = write(folder, "spec.yaml", HEADER + "x: " + "y" * 1_000_000 + "\n")
    refused(cli, path, "TS120", (11, 1), folder)


def test_too_many_lines(cli, folder):
    refused(cli, write(folder, "spec.yaml", HEADER + "\n" * 20_000), "TS120", (10_001, 1), folder)


def test_too_many_documents(cli, folder):
    path = write(folder, "spec.yaml", HEADER + "--- {}\n" * 150)
    d = refused(cli, path, "TS120", (110, 1), folder)  # document 101 starts on line 110
    assert "more than 100 documents" in d["message"]


def test_too_many_nodes_while_composing(cli, folder):
    items = "".join("  " + "1, " * 1000 + "\n" for _ in range(30))
    d = refused(cli, write(folder, "spec.yaml", HEADER + f"a: [\n{items}]\n"), "TS120", None, folder)
    assert "20,000 nodes" in d["message"]


def test_very_long_key(cli, folder):
    # PyYAML refuses implicit keys over 1024 characters itself; an explicit `? key` is ours to refuse
    implicit = write(folder, "a.yaml", HEADER.replace("  name: corpus\n", "  name: corpus\n  labels:\n    " + "k" * 5000 + ": v\n"))
    refused(cli, implicit, "TS101", None, folder)
    explicit = write(folder, "b.yaml", HEADER.replace("  name: corpus\n", "  name: corpus\n  labels:\n    ? " + "k" * 5000 + "\n    : v\n"))
    d = refused(cli, explicit, "TS120", (6, 7), folder)
    assert len(d["message"]) < 200


def test_huge_value_is_clipped_in_messages(cli, folder):
    path = write(folder, "spec.yaml", HEADER.replace("name: corpus", "name: " + "X" * 20_000))
    d = refused(cli, path, "TS116", (4, 9), folder)
    assert "20,000 characters" in d["message"] and len(d["message"]) < 300


# Aliases -------------------------------------------------------------------------------

LABELS = "  labels: {" + ", ".join(f"l{i}: *big" for i in range(300)) + "}\n"


def test_megabyte_line_aliased_300_times(cli, folder):
    spec = HEADER.replace("  name: corpus\n", '  name: corpus\n  description: &big "' + "x" * 1_000_000 + '"\n' + LABELS)
    refused(cli, write(folder, "spec.yaml", spec), "TS120", (5, 1), folder, command="plan")


def test_megabyte_block_aliased_300_times_stops_while_building(cli, folder):
    """Under the line limits, the expansion limit stops it at the first alias that passes 1 MiB."""
    block = "".join("    " + "x" * 24_999 + "\n" for _ in range(40))
    spec = HEADER.replace("  name: corpus\n", "  name: corpus\n  description: &big |\n" + block + LABELS)
    d = refused(cli, write(folder, "spec.yaml", spec), "TS104", (46, 16), folder, command="plan")
    assert "1,048,576 characters" in d["message"]


def test_small_aliases_within_the_limits_still_work(cli, folder):
    spec = HEADER.replace("  name: corpus\n", "  name: corpus\n  description: &d shared\n  labels: {a: *d, b: *d}\n")
    assert cli("validate", write(folder, "spec.yaml", spec), "--state", folder / "s.db").code == 0


# One file among others -----------------------------------------------------------------


def test_a_hostile_file_does_not_hide_the_others(cli, folder):
    write(folder, "a-deep.yaml", HEADER + "a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    write(folder, "b-typo.yaml", HEADER.replace("name: corpus", "name: typo") + "hyperparameters:\n  epoch: 2\n")
    write(folder, "c-nul.yaml", HEADER.replace("name: corpus", "name: nul") + "x: \x00\n")
    write(folder, "d-good.yaml", HEADER.replace("name: corpus", "name: good"))
    result = cli("validate", folder, "--output", "json", "--state", folder / "s.db")
    assert result.code == 1
    found = {(Path(d["location"]["file"]).name, d["code"]) for d in diagnostics(result)}
    assert found == {("a-deep.yaml", "TS120"), ("b-typo.yaml", "TS110"), ("c-nul.yaml", "TS109")}
    assert [s["name"] for s in result.json["specs"] if s["ok"]] == ["good"]


@pytest.mark.parametrize("error", [RecursionError, MemoryError, ValueError])
def test_an_unexpected_error_in_one_file_is_reported_for_that_file(cli, folder, monkeypatch, error):
    import tunespec.pipeline as pipeline

    real = pipeline.load_documents

    def flaky(file, env=None):
        if Path(file).name == "a.yaml":
            raise error("boom")
        return real(file, env)

    monkeypatch.setattr(pipeline, "load_documents", flaky)
    write(folder, "a.yaml", HEADER)
    write(folder, "b.yaml", HEADER.replace("name: corpus", "name: b") + "hyperparameters:\n  epoch: 2\n")
    result = cli("validate", folder, "--output", "json", "--state", folder / "s.db")
    assert result.code == 1
    found = {(Path(d["location"]["file"]).name, d["code"]) for d in diagnostics(result)}
    assert found == {("a.yaml", "TS121"), ("b.yaml", "TS110")}
    failure = next(d for d in diagnostics(result) if d["code"] == "TS121")
    assert error.__name__ in failure["message"] and "tunespec-error-" in failure["hint"]


# Files that are not specs --------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_spec_does_not_hang(cli, folder):
    os.mkfifo(folder / "pipe.yaml")
    result = cli("validate", folder, "--output", "json", "--state", folder / "s.db")
    assert result.code == 1
    assert [(d["code"], d["message"]) for d in diagnostics(result)] == [("TS100", "not a regular file")]
    direct = cli("validate", folder / "pipe.yaml", "--output", "json", "--state", folder / "s.db")
    assert [d["code"] for d in diagnostics(direct)] == ["TS100"]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
def test_a_link_out_of_the_folder_is_not_read(cli, tmp_path, monkeypatch):
    secret = tmp_path / "outside" / "credentials.yaml"
    secret.parent.mkdir()
    secret.write_text("[default]\naws_secret_access_key = TOPSECRET\n")
    specs = tmp_path / "repo" / "specs"
    shutil.copytree(CORPUS / "data", specs / "data")
    (specs / "leak.yaml").symlink_to(secret)
    (specs / "zero.yaml").symlink_to("/dev/zero")
    (specs / "good.yaml").write_text(HEADER)
    (specs / "alias.yaml").symlink_to("good.yaml")  # a link inside the folder is fine (and a duplicate name)
    monkeypatch.chdir(tmp_path / "repo")
    for output in ("json", "human"):
        result = cli("validate", "specs", "--output", output, "--state", tmp_path / "s.db")
        assert result.code == 1
        assert "TOPSECRET" not in result.text and "aws_secret" not in result.text
    codes = sorted((Path(d["location"]["file"]).name, d["code"]) for d in diagnostics(cli("validate", "specs", "--output", "json", "--state", tmp_path / "s.db")))
    assert codes == [("good.yaml", "TS118"), ("leak.yaml", "TS100"), ("zero.yaml", "TS100")]
    # a link named on the command line must stay inside the current directory
    direct = cli("validate", "specs/leak.yaml", "--output", "json", "--state", tmp_path / "s.db")
    assert [d["code"] for d in diagnostics(direct)] == ["TS100"] and "TOPSECRET" not in direct.text


# What the renderer echoes --------------------------------------------------------------


def test_only_lines_of_spec_files_the_loader_read_are_echoed(capsys):
    from tunespec.cli import render
    from tunespec.diagnostics import Diagnostic, Location

    render.diagnostic(Diagnostic("TS201", "malformed JSON", Location("/proc/self/environ", 1, 1)))
    render.diagnostic(Diagnostic("TS201", "malformed JSON", Location(__file__, 1, 1)))
    err = capsys.readouterr().err
    assert " | " not in err and "PATH=" not in err and '"""' not in err


def test_data_file_lines_are_not_echoed(cli, folder):
    (folder / "data" / "train.jsonl").write_text('{"contents": "TOPSECRET-TRAINING-LINE"\n')
    result = cli("validate", write(folder, "spec.yaml", HEADER), "--state", folder / "s.db")
    assert result.code == 1 and "train.jsonl:1" in result.err
    assert "TOPSECRET-TRAINING-LINE" not in result.err


def test_refused_files_are_not_echoed(cli, folder):
    path = write(folder, "spec.yaml", HEADER.replace("kind: TuningJob", "kind: Tuning\x00Job SECRET"))
    result = cli("validate", path, "--state", folder / "s.db")
    assert "TS109" in result.err and "SECRET" not in result.err


def test_echo_follows_the_text_the_loader_read_last(cli, folder):
    path = write(folder, "spec.yaml", HEADER + "hyperparameters:\n  epoch: 2\n")
    assert "  epoch: 2" in cli("validate", path, "--state", folder / "s.db").err
    path.write_text(HEADER + "hyperparameters:\n  epochz: 3\n")
    err = cli("validate", path, "--state", folder / "s.db").err
    assert "  epochz: 3" in err and "epoch: 2" not in err


def test_terminal_escapes_in_names_and_lines_are_neutralised(cli, folder):
    sub = folder / "specs"
    shutil.copytree(folder / "data", sub / "data")
    write(sub, "evil\x1b]0;pwned\x07\x1b[2J.yaml", HEADER + "hyperparameters:\n  epoch: 2\n")
    result = cli("validate", sub, "--state", folder / "s.db")
    assert result.code == 1 and "TS110" in result.err
    assert "\x1b" not in result.err and "\x07" not in result.err


def test_printable_keeps_caret_columns():
    from tunespec.cli.render import printable

    assert printable("a\tb\x1b[31mc\u202ed") == "a b\ufffd[31mc\ufffdd"
    assert printable("one\ntwo", newlines=True) == "one\ntwo"
    assert printable("one\ntwo") == "one\ufffdtwo"


def test_thousands_of_problems_in_one_file_are_counted_not_printed(cli, folder):
    path = write(folder, "spec.yaml", HEADER + "x:\n" + "  k: 1\n" * 3000)
    result = cli("validate", path, "--output", "json", "--state", folder / "s.db")
    found = diagnostics(result)
    assert result.code == 1 and len(found) == 51
    assert found[-1]["code"] == "TS122" and "2,949 more problems in this file not shown (2,949 TS102)" in found[-1]["message"]
    human = cli("validate", path, "--state", folder / "s.db")
    assert human.err.count("TS102") == 51 and "(2,949 TS102)" in human.err
