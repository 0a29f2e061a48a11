"""`tunespec`: validate, plan and apply tuning specs.

Exit codes: 0 success or nothing to do; 1 errors (bad spec, bad data, failed run);
2 `plan` found changes (like `terraform plan -detailed-exitcode`); 130 interrupted.
Every user error is a rendered diagnostic; an unexpected exception is reported as TS004
with the traceback saved to a file, never dumped on the user.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

from tunespec import __version__

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunespec", description="Compile fine-tuning specs into local, Ray and Vertex AI jobs.")
    parser.add_argument("--version", action="version", version=f"tunespec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, func: Callable[[argparse.Namespace], int], specs: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--output", "-o", choices=["human", "json"], default="human", help="output format (json for CI)")
        if specs:
            p.add_argument("paths", nargs="*", default=["."], help="spec files or directories (default: .)")
            p.add_argument("--state", help="state database (default: nearest .tunespec/state.db)")
        return p

    from tunespec.cli import commands as c

    command("validate", "check specs, data and backend rules", c.validate, specs=True)
    command("plan", "show the job each spec compiles to and what apply would change", c.plan, specs=True)
    p = command("apply", "start (or resume) the runs whose specs changed", c.apply, specs=True)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before starting billable remote jobs")
    p.add_argument("--force", action="store_true", help="run again even if an identical run succeeded")
    command("status", "show the latest run of each spec, refreshing remote ones", c.status, specs=True)
    p = command("runs", "list recorded runs", c.runs)
    p.add_argument("spec_name", nargs="?", help="only runs of this spec")
    p.add_argument("--state", help="state database (default: nearest .tunespec/state.db)")
    p = command("cancel", "cancel the in-flight run of a spec (or a run id)", c.cancel)
    p.add_argument("target", help="spec name or run id")
    p.add_argument("--state", help="state database (default: nearest .tunespec/state.db)")
    p = command("verify", "check a run directory against its manifest", c.verify)
    p.add_argument("runs", nargs="+", help="run directories (local or gs://)")
    p = command("schema", "print the JSON Schema of specs (with installed backends)", c.schema)
    p.add_argument("--write", metavar="FILE", help="write to FILE instead of stdout")
    command("plugins", "list plugins, what they register, and whether they can run", c.plugins)
    p = command("init", "write a commented starter spec", c.init)
    p.add_argument("path", nargs="?", default="tunespec.yaml", help="file to write (default: tunespec.yaml)")
    p.add_argument("--backend", default="local", help="backend for the starter spec")
    p.add_argument("--plugin", metavar="NAME", help="scaffold a backend plugin package NAME instead of a spec")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        from tunespec.cli import render

        render.err.print("[yellow]interrupted[/yellow]: the run is recorded as interrupted; `tunespec apply` resumes it")
        return EXIT_INTERRUPTED
    except Exception:  # a bug, not a user error: keep the traceback, show a short message
        return _internal_error(args)


def _internal_error(args: Any) -> int:
    from tunespec.cli import render
    from tunespec.diagnostics import Diagnostic

    fd, log = tempfile.mkstemp(prefix="tunespec-error-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        traceback.print_exc(file=f)
    if os.environ.get("TUNESPEC_DEBUG"):
        traceback.print_exc()
    last = traceback.format_exc().strip().splitlines()[-1]
    render.diagnostic(
        Diagnostic("TS004", f"internal error: {last}", hint=f"this is a bug in tunespec or a plugin; the traceback is in {log}")
    )
    return EXIT_ERROR


def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":
    run()
