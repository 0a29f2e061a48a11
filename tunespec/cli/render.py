"""Human output: diagnostics with their source line and a caret, plans, reports, tables.

Everything prints through one rich Console on stdout (diagnostics on stderr), so colour
and width follow the terminal and CI logs stay plain.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.markup import escape

__all__ = ["escape"]
from rich.table import Table

from tunespec.diagnostics import Diagnostic, Severity
from tunespec.spec.loader import source_lines

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns and cut run ids
# and paths; logs can be wide.
LOG_WIDTH = 200
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else LOG_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else LOG_WIDTH)

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
MAX_ECHO_CHARS = 200

# What a terminal must not be sent from a spec or a file name: controls (escape sequences
# included), bidirectional overrides, invisible line separators and format characters.
UNPRINTABLE = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2069\\ufeff\\ufff9-\\ufffb]")
UNPRINTABLE_KEEP_NEWLINES = re.compile("[\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2069\\ufeff\\ufff9-\\ufffb]")


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` safe for a terminal: a tab becomes a space and any other control or invisible
    formatting character becomes U+FFFD, one column each, so a caret below still lines up."""
    text = text.replace("\t", " ")
    return (UNPRINTABLE_KEEP_NEWLINES if newlines else UNPRINTABLE).sub("\ufffd", text)


def _source_line(file: str, line: int) -> str | None:
    """Line `line` of a spec file, from the text the spec loader read. No other file is ever
    read to echo a line: a diagnostic may point at any path (a data file, /proc/...)."""
    lines = source_lines(file)
    if lines is None or not 1 <= line <= len(lines):
        return None
    return lines[line - 1]


def diagnostic(d: Diagnostic) -> None:
    style = STYLE[d.severity]
    path = f" [dim]({escape(printable(d.location.path))})[/dim]" if d.location.path else ""
    message = escape(printable(d.message, newlines=True))
    err.print(f"[bold]{escape(printable(str(d.location)))}[/bold]: [{style}]{d.severity.value}[/{style}] [dim]{d.code}[/dim] {message}{path}")
    text = _source_line(d.location.file, d.location.line) if d.location.file and d.location.line else None
    if text is not None:
        gutter = f"{d.location.line:>5} | "
        err.print(f"[dim]{gutter}[/dim]{escape(printable(text[:MAX_ECHO_CHARS]))}")
        if d.location.column and d.location.column <= MAX_ECHO_CHARS + 1:
            err.print(" " * (len(gutter) + d.location.column - 1) + f"[{style}]^[/{style}]")
    if d.hint:
        err.print(f"      [green]hint:[/green] {escape(printable(d.hint, newlines=True))}")


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
