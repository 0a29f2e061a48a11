"""Specs reviewed in pull requests and checked in git: `plan --output markdown` and the
pre-commit hooks, run by the real `pre-commit` tool on a real git repository."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The cells of each row of the Markdown table whose header starts with `header_start`
    (split the way GitHub does: on pipes that are not backslash-escaped)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_markdown_plan_says_what_will_run_why_and_what_it_costs(cli, project):
    spec = project.spec(backend_extra="  billable: true\n")
    state = project.root / "state.db"
    first = cli("plan", spec, "--state", state, "--output", "markdown")
    assert first.code == 2  # same exit codes as the human plan: changes
    md = first.out
    assert md.startswith("## tunespec plan")
    assert "billable jobs: **1**" in md
    [row] = _table_rows(md, "| spec")
    assert row[0] == "`echo-job`" and "create" in row[2] and row[3] == "**yes**"
    assert "no run of this spec is recorded yet" in md
    assert '"epochs": 2' in md  # the compiled job, folded

    assert cli("apply", spec, "--state", state, "--yes").code == 0
    assert cli("plan", spec, "--state", state, "-o", "markdown").code == 0  # nothing to do
    spec.write_text(spec.read_text().replace("epochs: 2", "epochs: 3"))
    train = project.root / "data" / "train.jsonl"
    examples_before = len(train.read_text().splitlines())
    train.write_text(train.read_text() + train.read_text().splitlines(keepends=True)[0])
    again = cli("plan", spec, "--state", state, "-o", "markdown")
    assert again.code == 2
    md = again.out
    [row] = _table_rows(md, "| spec")
    assert "replace" in row[2]
    assert "- `hyperparameters.epochs`" in md  # why: the field that changed
    [data] = _table_rows(md, "| file")
    assert data[3] == str(examples_before + 1) and data[5] == "**changed** (+1 examples)"
    tokens_before = int(re.search(r"trained tokens: \*\*~?([\d,]+)", first.out).group(1).replace(",", ""))
    tokens_now = int(re.search(r"trained tokens: \*\*~?([\d,]+)", md).group(1).replace(",", ""))
    assert tokens_now > tokens_before  # one more example, one more epoch


def test_markdown_plan_lists_problems_and_keeps_hostile_names_inert(cli, project):
    hostile = "tr|ain`](javascript:x)"
    data = project.root / "data"
    (data / f"{hostile}.jsonl").write_text((data / "train.jsonl").read_text())
    spec = project.spec()
    spec.write_text(spec.read_text().replace("data/train.jsonl", f"'data/{hostile}.jsonl'"))
    bad = project.spec(name="broken", file="bad.yaml")
    bad.write_text(bad.read_text().replace("epochs: 2", "epochs: 0"))
    result = cli("plan", project.root, "--state", project.root / "s.db", "-o", "markdown")
    assert result.code == 1
    md = result.out
    assert "### Problems" in md and "error** (nothing" not in md
    assert re.search(r"- \*\*error\*\* `TS113` `[^`]*bad\.yaml:10:\d+` 0 is out of range", md), md
    [data_row] = _table_rows(md, "| file")
    assert len(data_row) == 6  # the pipe in the file name did not open a cell
    assert data_row[0].startswith("``") and data_row[0].endswith("``") and "javascript" in data_row[0]
    outside_code = re.sub(r"(`+).*?\1", "", md.replace("\\|", "|"))
    assert "javascript" not in outside_code  # the name only ever appears as inert code


HOOK_SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: tiny-model
data:
  train: data/train.jsonl
hyperparameters:
  epochs: {epochs}
backend:
  name: echo
"""


@pytest.fixture
def git_project(tmp_path, monkeypatch):
    """A git repository with specs/ and its data, and a `tunespec` on PATH that runs this
    checkout (what `pip install tunespec` gives a team), with the echo test backend."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytest.importorskip("pre_commit")
    repo = tmp_path / "repo"
    (repo / "specs" / "data").mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "invalid_specs" / "data" / "train.jsonl", repo / "specs" / "data" / "train.jsonl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tunespec"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tunespec "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
        "TUNESPEC_PLUGINS": "tests.core.echo_plugin",
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    return repo, env


def _pre_commit(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_pre_commit_hook_passes_a_good_spec_and_stops_a_bad_one(git_project):
    """The hook as a team uses it: pre-commit reads this repository's .pre-commit-hooks.yaml
    (try-repo: the checkout as it is, no network), runs it on the staged specs."""
    repo, env = git_project
    (repo / "specs" / "triage.yaml").write_text(HOOK_SPEC.format(name="triage", epochs=2))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    good = _pre_commit(repo, env, "try-repo", str(ROOT), "tunespec-validate-system", "--all-files")
    assert good.returncode == 0, good.stdout + good.stderr
    assert re.search(r"tunespec validate \(installed tunespec\)\.+Passed", good.stdout)

    (repo / "specs" / "triage.yaml").write_text(HOOK_SPEC.format(name="triage", epochs=0))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    bad = _pre_commit(repo, env, "try-repo", str(ROOT), "tunespec-validate-system", "--all-files")
    assert bad.returncode == 1
    assert "Failed" in bad.stdout
    assert re.search(r"specs/triage\.yaml:10:\d+: error TS\d{3}", bad.stdout), bad.stdout  # the located diagnostic reaches the committer


def test_pre_commit_hook_blocks_the_commit_of_a_bad_spec(git_project):
    """Installed as the repository's git hook: `git commit` of a spec that does not validate
    is refused; once fixed, it commits."""
    repo, env = git_project
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"  - repo: {ROOT}\n"
        f"    rev: {_hooks_revision()}\n"
        "    hooks:\n"
        "      - id: tunespec-validate-system\n"
    )
    installed = _pre_commit(repo, env, "install")
    assert installed.returncode == 0, installed.stderr
    (repo / "specs" / "triage.yaml").write_text(HOOK_SPEC.format(name="triage", epochs=0))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    refused = subprocess.run(["git", "commit", "-q", "-m", "bad spec"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "TS" in refused.stdout + refused.stderr
    (repo / "specs" / "triage.yaml").write_text(HOOK_SPEC.format(name="triage", epochs=2))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    committed = subprocess.run(["git", "commit", "-q", "-m", "good spec"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert committed.returncode == 0, committed.stdout + committed.stderr


def _hooks_revision() -> str:
    """A commit of this checkout whose .pre-commit-hooks.yaml is the one in the work tree
    (pre-commit clones a `rev`): HEAD when it is unchanged, else skip."""
    git = ["git", "-C", str(ROOT)]
    if subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    dirty = subprocess.run([*git, "status", "--porcelain", "--", ".pre-commit-hooks.yaml"], capture_output=True, text=True).stdout
    if dirty.strip():
        pytest.skip(".pre-commit-hooks.yaml has uncommitted changes (pre-commit installs hooks from a commit)")
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
