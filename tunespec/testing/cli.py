"""Run the `tunespec` CLI in-process, as a user would from a shell, and capture what it says.

In-process (not a subprocess) so that what the test set up in this process is reused: an
emulator's address in the environment, a Ray cluster already started by a fixture, the
plugin host. A plugin bug surfaces as the CLI's internal error TS004; `run_cli` turns that
into a test failure that shows the saved traceback instead of a one-line message.
"""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRACEBACK_LOG = re.compile(r"(\S*tunespec-error-\S+?\.log)")


@dataclass
class CliResult:
    """Exit code and captured output of one CLI command."""

    argv: list[str]
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        """stdout parsed as JSON (for commands run with ``--output json``)."""
        return json.loads(self.out)

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(*argv: Any, allow_internal_error: bool = False) -> CliResult:
    """Run ``tunespec *argv`` in this process. Fails the calling test when the command hit an
    internal error (a traceback), unless `allow_internal_error`."""
    from tunespec.cli.main import main

    args = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse: --help, --version, a usage error
            code = exc.code if isinstance(exc.code, int) else 1
    result = CliResult(args, code, out.getvalue(), err.getvalue())
    if not allow_internal_error and ("TS004" in result.text or "Traceback (most recent call last)" in result.text):
        raise AssertionError(f"`tunespec {' '.join(args)}` crashed (TS004):\n{result.err}\n{_saved_traceback(result.text)}")
    return result


def _saved_traceback(text: str) -> str:
    match = TRACEBACK_LOG.search(text)
    if not match:
        return ""
    try:
        return Path(match.group(1)).read_text()
    except OSError:
        return ""
