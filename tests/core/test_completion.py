"""Shell completion through argcomplete: the script bash sources really completes commands,
spec paths and run ids; zsh and fish get argcomplete's scripts and answers."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("argcomplete")


@pytest.fixture
def shell_env(tmp_path):
    """A `tunespec` on PATH that runs this checkout, with the echo test backend."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tunespec"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tunespec "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]), "TUNESPEC_PLUGINS": "tests.core.echo_plugin"}


def _complete(env: dict, line: str, cwd: Path, shell: str = "bash") -> list[str]:
    """What `tunespec` answers a shell asking to complete `line` (argcomplete's protocol)."""
    out = cwd / ".completions"
    request = {**env, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": shell, "COMP_LINE": line, "COMP_POINT": str(len(line)),
               "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}
    subprocess.run([sys.executable, "-m", "tunespec"], env=request, cwd=cwd, check=True, timeout=60, capture_output=True)
    words = out.read_text().split("\n")
    out.unlink()
    # (a lone answer ends with the space the shell then types)
    return [(w.split(":")[0] if shell == "zsh" else w.split("\t")[0]).rstrip(" ") for w in words if w]


def test_bash_completes_commands_through_the_script_tunespec_prints(shell_env, tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = subprocess.run(["tunespec", "completion", "bash"], env=shell_env, capture_output=True, text=True, check=True).stdout
    (tmp_path / "tunespec.bash").write_text(script)
    probe = ('source tunespec.bash; COMP_WORDS=(tunespec pl); COMP_CWORD=1; COMP_LINE="tunespec pl"; COMP_POINT=11; '
             '_python_argcomplete tunespec pl tunespec; printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", probe], env=shell_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["plan", "plugins"], done.stderr


def test_spec_paths_run_ids_and_spec_names_are_completed(cli, project, shell_env):
    (project.root / "specs").mkdir()
    spec = project.spec(name="triage", file="triage.yaml")
    (project.root / "notes.txt").write_text("not a spec")
    state = project.root / ".tunespec" / "state.db"
    assert cli("apply", spec, "--state", state).code == 0
    [run_id] = [p.name for p in (project.root / "runs" / "triage").iterdir()]
    env = {**shell_env, "TUNESPEC_STATE": str(state)}

    assert set(_complete(env, "tunespec validate ", project.root)) >= {"triage.yaml", "specs/", "data/"}
    assert "notes.txt" not in _complete(env, "tunespec plan ", project.root)  # specs are YAML
    assert _complete(env, "tunespec cancel tr", project.root) == ["triage"]
    assert _complete(env, f"tunespec predict {run_id[:8]}", project.root) == [run_id]
    assert [w for w in _complete(env, "tunespec runs ", project.root) if not w.startswith("-")] == ["triage"]
    assert set(_complete(env, "tunespec plan --out", project.root)) == {"--output"}
    assert set(_complete(env, "tunespec plan --output ", project.root)) == {"human", "json", "markdown"}


@pytest.mark.parametrize("shell, marker", [("zsh", "#compdef tunespec"), ("fish", "complete --command tunespec")])
def test_zsh_and_fish_get_argcomplete_scripts_and_answers(cli, project, shell_env, shell, marker):
    script = subprocess.run(["tunespec", "completion", shell], env=shell_env, capture_output=True, text=True, check=True).stdout
    assert marker in script
    assert set(_complete(shell_env, "tunespec ex", project.root, shell=shell)) == {"export"}
