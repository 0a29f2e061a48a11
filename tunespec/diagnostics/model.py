"""The Diagnostic record, its Location, and the collector every pipeline step fills."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Location:
    """Where a problem is. Printed as ``file:line:column`` (or the subject)."""

    file: str | None = None
    """The spec file or data file (as the user wrote or would recognise it)."""
    line: int | None = None
    """1-based line, when known."""
    column: int | None = None
    """1-based column, when known."""
    path: str | None = None
    """The field path in the spec (``hyperparameters.learning_rate``, ``data.train[1].path``) or
    the JSON path inside a data record (``$.contents[1].parts[0].text``)."""
    subject: str | None = None
    """What the problem concerns when it is in no file: ``run 20261124-...``, ``Cloud Storage``,
    ``command line`` (shown in place of a file name)."""

    def __str__(self) -> str:
        where = self.file or self.subject or "tunespec"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "path": self.path, "subject": self.subject}


@dataclass(frozen=True)
class Diagnostic:
    """One problem: what is wrong (message), how to fix it (hint), and where."""

    code: str
    """Stable code, e.g. `TS301` (see the table of codes)."""
    message: str
    """What is wrong, in one sentence; quote the offending value."""
    location: Location = field(default_factory=Location)
    """Where: `spec.locate("field.path")` for a spec field."""
    hint: str | None = None
    """How to fix it: the command to run, the value to write."""
    severity: Severity = Severity.ERROR
    """`error` stops validate/plan/apply (exit 1); `warning` and `info` are shown only."""

    @property
    def is_error(self) -> bool:
        """True for `Severity.ERROR`."""
        return self.severity is Severity.ERROR

    def to_json(self) -> dict[str, Any]:
        """The shape `--output json` prints: code, severity, message, hint, location."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "location": self.location.to_json(),
        }

    def __str__(self) -> str:
        path = f" [{self.location.path}]" if self.location.path else ""
        text = f"{self.location}: {self.severity.value} {self.code}: {self.message}{path}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


class DiagnosticError(Exception):
    """Raised by a step that cannot go on; carries the diagnostics that explain why."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__("; ".join(str(d) for d in self.diagnostics))


class Diagnostics:
    """An ordered collection of diagnostics, capped per code so a million bad data lines
    report the first few and a total count, in constant memory.

    ``add`` always counts; it keeps at most ``max_per_code`` records of each code.
    """

    def __init__(self, max_per_code: int = 20):
        self.max_per_code = max_per_code
        self._kept: list[Diagnostic] = []
        self.counts: Counter[str] = Counter()
        self.error_count = 0
        self.warning_count = 0

    def add(self, diagnostic: Diagnostic) -> None:
        """Count `diagnostic`, and keep it if fewer than `max_per_code` of its code are kept."""
        self.counts[diagnostic.code] += 1
        if diagnostic.severity is Severity.ERROR:
            self.error_count += 1
        elif diagnostic.severity is Severity.WARNING:
            self.warning_count += 1
        if self.counts[diagnostic.code] <= self.max_per_code:
            self._kept.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        """`add` each."""
        for d in diagnostics:
            self.add(d)

    def absorb(self, kept: Iterable[Diagnostic], counts: "Counter[tuple[str, Severity]]") -> None:
        """Take what another collector gathered (a worker process, an earlier validation of
        the same file): the diagnostics it kept, and the count of every (code, severity)
        it found, kept or not."""
        kept = list(kept)
        self.extend(kept)
        shown = Counter((d.code, d.severity) for d in kept)
        for (code, severity), n in counts.items():
            extra = n - shown[code, severity]
            if extra > 0:
                self.counts[code] += extra
                if severity is Severity.ERROR:
                    self.error_count += extra
                elif severity is Severity.WARNING:
                    self.warning_count += extra

    def error(self, code: str, message: str, location: Location | None = None, hint: str | None = None) -> None:
        """Add an error."""
        self.add(Diagnostic(code, message, location or Location(), hint, Severity.ERROR))

    def warning(self, code: str, message: str, location: Location | None = None, hint: str | None = None) -> None:
        """Add a warning (shown, never fails a command)."""
        self.add(Diagnostic(code, message, location or Location(), hint, Severity.WARNING))

    @property
    def has_errors(self) -> bool:
        """True once any error was added (kept or only counted)."""
        return self.error_count > 0

    def omitted(self) -> dict[str, int]:
        """Per code, how many were counted but not kept."""
        return {c: n - self.max_per_code for c, n in self.counts.items() if n > self.max_per_code}

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept)

    def to_json(self) -> dict[str, Any]:
        return {
            "diagnostics": [d.to_json() for d in self._kept],
            "counts": dict(self.counts),
            "errors": self.error_count,
            "warnings": self.warning_count,
        }
