"""Human output: diagnostics with their source line and a caret, plans, reports, tables.

Everything prints through one rich Console on stdout (diagnostics on stderr), so colour
and width follow the terminal and CI logs stay plain.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.markup import escape

__all__ = ["escape"]
from rich.table import Table

from tunespec.diagnostics import Diagnostic, Severity

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns and cut run ids
# and paths; logs can be wide.
LOG_WIDTH = 200
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else LOG_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else LOG_WIDTH)

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
MAX_SOURCE_BYTES = 1 << 20


@lru_cache(maxsize=64)
def _source_lines(file: str) -> list[str] | None:
    path = Path(file)
    try:
        if not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None


def diagnostic(d: Diagnostic) -> None:
    style = STYLE[d.severity]
    path = f" [dim]({escape(d.location.path)})[/dim]" if d.location.path else ""
    err.print(f"[bold]{escape(str(d.location))}[/bold]: [{style}]{d.severity.value}[/{style}] [dim]{d.code}[/dim] {escape(d.message)}{path}")
    lines = _source_lines(d.location.file) if d.location.file and d.location.line else None
    if lines and d.location.line and d.location.line <= len(lines):
        gutter = f"{d.location.line:>5} | "
        text = lines[d.location.line - 1]
        err.print(f"[dim]{gutter}[/dim]{escape(text[:200])}")
        if d.location.column:
            err.print(" " * (len(gutter) + d.location.column - 1) + f"[{style}]^[/{style}]")
    if d.hint:
        err.print(f"      [green]hint:[/green] {escape(d.hint)}")


def diagnostics(items: Iterable[Diagnostic], omitted: dict[str, int] | None = None) -> None:
    for d in items:
        diagnostic(d)
    for code, count in sorted((omitted or {}).items()):
        err.print(f"      [dim]... and {count} more {code} problems not shown[/dim]")


def summary(errors: int, warnings: int) -> None:
    if errors:
        err.print(f"[bold red]{errors} error{'s' * (errors != 1)}[/bold red], {warnings} warning{'s' * (warnings != 1)}")
    elif warnings:
        err.print(f"[yellow]{warnings} warning{'s' * (warnings != 1)}[/yellow]")


def rows(title: str, items: Iterable[tuple[str, Any]]) -> None:
    """A titled block of `key  value` lines, keys aligned and dimmed. Printed as one piece
    of text (a rich Table per block made `validate` of many specs spend most of its time
    laying out tables)."""
    pairs = [(str(key), value if isinstance(value, str) else json.dumps(value, default=str)) for key, value in items]
    if not pairs:
        return
    width = max(len(key) for key, _ in pairs)
    lines = [f"[italic]{escape(title)}[/italic]"] if title else []
    lines += [f"[dim]{escape(key.ljust(width))}[/dim]  {escape(value)}" for key, value in pairs]
    out.print("\n".join(lines))


def table(title: str, columns: list[str], body: Iterable[Iterable[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for row in body:
        t.add_row(*(escape("" if v is None else str(v)) for v in row))
    out.print(t)


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str)) if out.is_terminal else print(json.dumps(value, indent=2, default=str))
