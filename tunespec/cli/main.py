"""`tunespec`: validate, plan and apply tuning specs.

Exit codes: 0 success or nothing to do; 1 errors (bad spec, bad data, failed run);
2 `plan` found changes (like `terraform plan -detailed-exitcode`); 64 usage error (a bad
command line, as sysexits' EX_USAGE, so it is never mistaken for "changes"); 130
interrupted. Every user error is a rendered diagnostic; an unexpected exception is
reported as TS004 with the traceback saved to a file, never dumped on the user. With
`--output json` every outcome, errors and interrupts included, is one JSON document.

Everything the command prints goes through `tunespec.secrets.RedactingStream`: no
`${env:...}` value reaches stdout or stderr, whoever prints it.
"""

from __future__ import annotations

# Only what the interpreter has loaded anyway: everything else is imported inside `main`,
# where Ctrl-C is handled (an interrupt during a module-level import would be a traceback).
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from typing import Callable

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 64, 130


class UsageError(Exception):
    """A bad command line (argparse's complaint), reported with exit code 64."""

    def __init__(self, message: str, usage: str):
        super().__init__(message)
        self.usage = usage


def _parser_class() -> type:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # argparse would print and exit 2, the code `plan` uses for changes
            raise UsageError(message, self.format_usage())

    return Parser


def build_parser() -> "argparse.ArgumentParser":
    from tunespec import __version__

    _Parser = _parser_class()
    parser = _Parser(prog="tunespec", description="Compile fine-tuning specs into local, Ray and Vertex AI jobs.")
    parser.add_argument("--version", action="version", version=f"tunespec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_: str, func: Callable[[argparse.Namespace], int], specs: bool = False,
                outputs: tuple[str, ...] = ("human", "json")) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--output", "-o", choices=list(outputs), default="human",
                       help="output format (json for CI" + (", markdown for a pull-request comment)" if "markdown" in outputs else ")"))
        if specs:
            p.add_argument("paths", nargs="*", default=["."], help="spec files or directories (default: .)").completer = completion.spec_paths()  # type: ignore[attr-defined]
            p.add_argument("--state", help="state database (default: the project's .tunespec/state.db)")
        return p

    from tunespec.cli import commands as c
    from tunespec.cli import completion

    command("validate", "check specs, data and backend rules", c.validate, specs=True)
    command("plan", "show the job each spec compiles to and what apply would change", c.plan, specs=True,
            outputs=("human", "json", "markdown"))
    p = command("apply", "start (or resume) the runs whose specs changed", c.apply, specs=True)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before starting billable remote jobs")
    p.add_argument("--force", action="store_true", help="run again even if an identical run succeeded")
    p = command("status", "show the latest run of each spec, refreshing remote ones", c.status)
    p.add_argument("paths", nargs="*", help="only the specs in these files or directories (default: every spec in the state database)").completer = completion.spec_paths()  # type: ignore[attr-defined]
    p.add_argument("--state", help="state database (default: the project's .tunespec/state.db)")
    p = command("runs", "list recorded runs", c.runs)
    p.add_argument("spec_name", nargs="?", help="only runs of this spec").completer = completion.spec_names  # type: ignore[attr-defined]
    p.add_argument("--state", help="state database (default: the project's .tunespec/state.db)")
    p = command("cancel", "cancel the in-flight run of a spec (or a run id)", c.cancel)
    p.add_argument("target", help="spec name or run id").completer = completion.runs_and_specs  # type: ignore[attr-defined]
    p.add_argument("--state", help="state database (default: the project's .tunespec/state.db)")
    p = command("run-job", "run one spec here, into a given run folder (what a remote backend's job runs)", c.run_job)
    p.add_argument("spec", help="the spec file the job was given").completer = completion.spec_paths()  # type: ignore[attr-defined]
    p.add_argument("--run-dir", required=True, help="the run's staging folder to write into (checkpoints there are resumed)")
    p.add_argument("--run-id", help="the run's id (default: from the folder's name)")
    p.add_argument("--name", help="which spec, when the file holds several")
    p = command("predict", "generate with a run's tuned model: prompts in, JSONL out", c.predict)
    p.add_argument("run", help="a run folder, a run id, or a spec name (its latest run)").completer = completion.runs_and_specs  # type: ignore[attr-defined]
    p.add_argument("--input", "-i", required=True, help="prompts: a data file in any format tunespec reads (JSONL, JSON, CSV, Parquet), or a .txt file with one prompt per line")
    p.add_argument("--out", default="-", help="JSONL file to write (default: stdout)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per batch (default: 8)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation length limit (default: 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy, deterministic; above 0: sampling")
    p.add_argument("--state", help="state database (default: the project's .tunespec/state.db)")
    p = command("export", "write a run's tuned model as a standalone folder beside the run", c.export)
    p.add_argument("run", help="a run folder, a run id, or a spec name (its latest run)").completer = completion.runs_and_specs  # type: ignore[attr-defined]
    p.add_argument("--to", required=True, choices=["merged"], help="merged: a Hugging Face folder with the adapter merged into its base")
    p.add_argument("--force", action="store_true", help="export again over an earlier export")
    p.add_argument("--state", help="state database (default: the project's .tunespec/state.db)")
    p = command("verify", "check a run directory against its manifest", c.verify)
    p.add_argument("runs", nargs="+", help="run directories (local or gs://)").completer = completion.run_folders()  # type: ignore[attr-defined]
    p = command("schema", "print the JSON Schema of specs (with installed backends)", c.schema)
    p.add_argument("--write", metavar="FILE", help="write to FILE instead of stdout")
    p = command("completion", "print the shell completion script (bash, zsh or fish) to source", c.completion)
    p.add_argument("shell", choices=completion.SHELLS, help="your shell")
    p = command("plugins", "list plugins, what they register, and whether they can run", c.plugins)
    p = command("init", "write a commented starter spec", c.init)
    p.add_argument("path", nargs="?", default="tunespec.yaml",
                   help="the spec file to write (default: tunespec.yaml); with --plugin, the folder to create the package in (default: .)")
    p.add_argument("--backend", default="local", help="backend for the starter spec")
    p.add_argument("--plugin", metavar="NAME", help="scaffold a backend plugin package PATH/tunespec-NAME/ instead of a spec")
    return parser


def main(argv: list[str] | None = None) -> int:
    from tunespec import secrets

    secrets.forget_all()  # one command per process: only this command's values are secrets
    _forget_reused_validation()
    stdout, stderr, unraisablehook = sys.stdout, sys.stderr, sys.unraisablehook
    signal_handlers = _signal_handlers()
    sys.stdout, sys.stderr = secrets.RedactingStream(stdout), secrets.RedactingStream(stderr)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr, sys.unraisablehook = stdout, stderr, unraisablehook
        # A command run inside another program (tests, notebooks) gives its signal handlers
        # back: a SIGINT left ignored would be inherited by every process started later,
        # which then could not be interrupted at all.
        _restore_signal_handlers(signal_handlers)
        if "tunespec.state.store" in sys.modules:
            sys.modules["tunespec.state.store"].StateStore.close_all()


def _signal_handlers() -> dict[int, Any]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    import signal

    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


def _forget_reused_validation() -> None:
    """Data validation remembers file outcomes within a command (see tunespec.data.reuse);
    a command run in the same process as another (tests, notebooks) starts afresh."""
    if "tunespec.data.reuse" in sys.modules:
        sys.modules["tunespec.data.reuse"].forget()


def _main(argv: list[str]) -> int:
    json_output = _wants_json(argv)
    _terminate_like_ctrl_c()
    sys.unraisablehook = _keep_interrupts
    try:
        parser = build_parser()
        from tunespec.cli.completion import hook

        hook(parser)  # a shell asking for completions: answered here, and the process exits
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage_error(exc, json_output)
    except KeyboardInterrupt:
        return _interrupted(json_output)
    from tunespec.diagnostics import DiagnosticError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _interrupted(json_output)
    except DiagnosticError as exc:  # a step that could not go on (a damaged state database, ...)
        return _failed(exc, json_output)
    except Exception:  # a bug, not a user error: keep the traceback, show a short message
        return _internal_error(json_output)


def _keep_interrupts(unraisable: Any) -> None:
    """`sys.unraisablehook`: a Ctrl-C that lands where Python cannot raise it (a callback
    inside native code, a finaliser) is delivered again instead of printed and lost."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        import signal

        signal.raise_signal(signal.SIGINT)
        return
    sys.__unraisablehook__(unraisable)


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (a CI job's time-out, `tunespec cancel` of a run this process drives) stops
    the command as Ctrl-C does: checkpoints are kept and the run is recorded, never lost.
    Only in the main thread of the main interpreter, where Python delivers signals."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wants_json(argv: list[str]) -> bool:
    """`--output json` anywhere on the command line, read before parsing it, so even a
    command line argparse refuses gets its answer as JSON."""
    for i, arg in enumerate(argv):
        if arg in ("--output=json", "-ojson") or (arg in ("--output", "-o") and argv[i + 1 : i + 2] == ["json"]):
            return True
    return False


def _report(diagnostic: Any, json_output: bool, **extra: Any) -> None:
    from tunespec.cli import render

    if json_output:
        render.print_json({**extra, "diagnostics": [diagnostic.to_json()], "errors": 1})
    else:
        render.diagnostic(diagnostic)


def _failed(exc: Any, json_output: bool) -> int:
    from tunespec.cli import render

    if json_output:
        render.print_json({"diagnostics": [d.to_json() for d in exc.diagnostics], "errors": len(exc.diagnostics)})
    else:
        render.diagnostics(exc.diagnostics)
    return EXIT_ERROR


def _usage_error(exc: UsageError, json_output: bool) -> int:
    from tunespec.diagnostics import Diagnostic, Location

    if not json_output:
        sys.stderr.write(exc.usage)
    _report(Diagnostic("TS005", f"usage: {exc}", Location(subject="command line"), "see `tunespec --help` (or `tunespec COMMAND --help`)"), json_output)
    return EXIT_USAGE


def _interrupted(json_output: bool) -> int:
    """Report an interrupt with nothing but the standard library: it may have landed in the
    middle of importing something (rich, yaml), which must not be imported again now."""
    import json
    import signal

    # Handled: from here on the process only reports and exits with 130. A second Ctrl-C
    # (or the first one still pending while the interpreter shuts down) must not turn
    # that into a death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    message, hint = "interrupted: a run that was in progress is recorded as interrupted", "`tunespec apply` resumes it"
    if json_output:
        location = {"file": None, "line": None, "column": None, "path": None, "subject": None}
        problem = {"code": "TS006", "severity": "warning", "message": message, "hint": hint, "location": location}
        sys.stdout.write(json.dumps({"interrupted": True, "diagnostics": [problem], "errors": 1}, indent=2) + "\n")
    else:
        sys.stderr.write(f"tunespec: warning TS006 {message}\n      hint: {hint}\n")
    return EXIT_INTERRUPTED


def _internal_error(json_output: bool) -> int:
    from tunespec.diagnostics import Diagnostic

    import tempfile
    import traceback

    fd, log = tempfile.mkstemp(prefix="tunespec-error-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(_redacted_traceback())
    if os.environ.get("TUNESPEC_DEBUG"):
        sys.stderr.write(_redacted_traceback())
    last = traceback.format_exc().strip().splitlines()[-1]
    _report(Diagnostic("TS004", f"internal error: {last}", hint=f"this is a bug in tunespec or a plugin; the traceback is in {log}"), json_output)
    return EXIT_ERROR


def _redacted_traceback() -> str:
    import traceback

    from tunespec import secrets

    return secrets.redact(traceback.format_exc())


def run() -> None:
    """The console script. Ctrl-C at any point, start-up included, ends with exit code 130
    and a message, never a traceback."""
    import signal

    try:
        code = main()
    except KeyboardInterrupt:  # before main's own handler was in place
        code = EXIT_INTERRUPTED
    # The command is over: a Ctrl-C now, while the interpreter shuts down, would only turn
    # its exit code into a death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == EXIT_INTERRUPTED:
        # An interrupt that landed inside an import can leave CPython's "unhandled Ctrl-C"
        # mark set though it was handled; at exit CPython would then kill this process with
        # SIGINT instead of exiting 130. The report is written: leave now, with the code.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
