"""Every outcome of every command is one JSON document with `--output json` (errors,
internal errors and interrupts included), and each kind of outcome has its own exit code:
0 ok, 1 error, 2 `plan` found changes, 64 usage error, 130 interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def interruptible() -> None:
    """`preexec_fn` for a child the test will Ctrl-C: SIGINT at its default whatever this
    test process inherited (an ignored SIGINT is inherited across exec, and Python then
    installs no Ctrl-C handler in the child)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env() -> dict[str, str]:
    return {**os.environ, "TUNESPEC_PLUGINS": "tests.core.echo_plugin", "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("argv", [
    ("plan", "--no-such-flag"),
    ("frobnicate",),
    (),
    ("runs", "a", "b"),
    ("plan", "--output", "yaml"),
])
def test_a_usage_error_exits_64_never_2(cli, argv):
    result = cli(*argv)
    assert result.code == 64, result.text
    assert "TS005" in result.err and "usage:" in result.err


def test_a_usage_error_with_output_json_is_json(cli):
    result = cli("plan", "--output", "json", "--no-such-flag")
    assert result.code == 64
    [problem] = result.json["diagnostics"]
    assert problem["code"] == "TS005" and "--no-such-flag" in problem["message"]


def test_every_command_answers_json_on_failure(cli, project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere" / "spec.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: tunespec.dev/v1\nkind: TuningJob\nmetadata: {name: x}\n")
    for argv in (
        ("validate", missing), ("plan", missing), ("apply", missing), ("validate", bad), ("plan", bad), ("apply", bad),
        ("status", missing), ("runs",), ("cancel", "no-such-spec"), ("verify", tmp_path / "no-run"),
        ("init", bad), ("schema", "--write", tmp_path / "no" / "such" / "dir" / "schema.json"),
    ):
        result = cli(*argv, "--output", "json")
        assert result.code in (0, 1), (argv, result.text)
        document = json.loads(result.out)  # one JSON document, nothing else on stdout
        assert isinstance(document, dict), argv
        if result.code:
            assert document.get("errors"), (argv, document)


def test_an_internal_error_is_json_too(cli, project, monkeypatch):
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin,tests.core.crashing_plugin")
    from tunespec.plugins.host import reset_plugin_host

    reset_plugin_host()
    spec = project.spec()
    spec.write_text(spec.read_text().replace("name: echo", "name: crashing"))
    result = cli("plan", spec, "--output", "json", allow_internal_error=True)
    assert result.code == 1
    [problem] = result.json["diagnostics"]
    assert problem["code"] == "TS004" and "tunespec-error-" in problem["hint"]
    assert "Traceback" not in result.text


def test_an_interrupted_apply_answers_json_and_exits_130(project):
    spec = project.spec(backend_extra="  steps: 400\n  step_seconds: 0.05\n")
    proc = subprocess.Popen([sys.executable, "-m", "tunespec.cli.main", "apply", str(spec), "--output", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=project.root,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 30
    while not list((project.root / "runs" / "echo-job").glob(".*.partial/steps.txt")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    document = json.loads(out)
    assert document["interrupted"] is True and document["diagnostics"][0]["code"] == "TS006"
    assert "Traceback" not in out + err


def start_up_seconds() -> float:
    """How long `tunespec --version` takes here, now: the interpreter's own start-up (which
    no program can answer for) is over by then, whatever the machine's load."""
    tunespec = Path(sys.executable).with_name("tunespec")
    samples = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run([str(tunespec), "--version"], capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return max(samples)


@pytest.mark.parametrize("after", [1.5, 2.0, 3.0, 4.5])
def test_ctrl_c_during_start_up_is_exit_130_without_a_traceback(project, after):
    """Ctrl-C while tunespec is still importing and loading plugins, through the console
    script a user runs, at multiples of the bare start-up time."""
    spec = project.spec()
    tunespec = Path(sys.executable).with_name("tunespec")
    delay = start_up_seconds() * after  # measured just before: the machine's load changes
    proc = subprocess.Popen([str(tunespec), "validate", str(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=project.root,
                            preexec_fn=interruptible)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in out + err
    assert proc.returncode in (130, 0), (proc.returncode, err)  # 0: it had finished already


def test_an_interrupted_command_in_process_gives_its_signal_handlers_back(monkeypatch):
    """A command run inside another program (a test, a notebook) must not leave SIGINT
    ignored: processes started afterwards would inherit that and ignore Ctrl-C."""
    from tunespec.cli import main as cli_main

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli_main, "build_parser", interrupted)
    assert cli_main.main(["validate", "x.yaml"]) == 130
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
