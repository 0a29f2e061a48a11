"""Progress reporting for long work (data validation, upload, training, remote polling).

Backends receive a `Progress` and open tasks on it; the CLI gives a rich progress display
on a terminal and a quiet one in CI or with `--output json`, so backend code never checks.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator


class Task:
    """One progress line. `advance` moves it; `update` sets shown fields (loss, tokens/s)."""

    def __init__(self, progress: "Progress", task_id: Any):
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1) -> None:
        if self._progress._rich is not None:
            self._progress._rich.update(self._id, advance=amount)

    def update(self, completed: float | None = None, total: float | None = None, **fields: Any) -> None:
        if self._progress._rich is not None:
            info = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
            self._progress._rich.update(self._id, completed=completed, total=total, info=info)

    def log(self, message: str) -> None:
        self._progress.log(message)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Progress:
    """A progress display. ``Progress(enabled=False)`` prints nothing but still logs to stderr
    when `log` is called (so CI logs show what happened)."""

    def __init__(self, enabled: bool | None = None, quiet: bool = False):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled
        self.quiet = quiet
        self._rich = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        task_id = self._rich.add_task(description, total=total, info="") if self._rich is not None else None
        yield Task(self, task_id)

    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self._rich is not None:
            self._rich.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)
