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
    """Where a problem is.

    file:    the spec file or data file (as the user wrote or would recognise it)
    line:    1-based line, when known
    column:  1-based column, when known
    path:    the field path in the spec (``hyperparameters.learning_rate``) or the JSON
             path inside a data record (``$.contents[1].parts[0].text``)
    subject: what the problem concerns when it is in no file: ``run 20261124-...``,
             ``Cloud Storage``, ``command line`` (shown in place of a file name)
    """

    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None
    subject: str | None = None

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
    message: str
    location: Location = field(default_factory=Location)
    hint: str | None = None
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_json(self) -> dict[str, Any]:
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
        self.counts[diagnostic.code] += 1
        if diagnostic.severity is Severity.ERROR:
            self.error_count += 1
        elif diagnostic.severity is Severity.WARNING:
            self.warning_count += 1
        if self.counts[diagnostic.code] <= self.max_per_code:
            self._kept.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
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
        self.add(Diagnostic(code, message, location or Location(), hint, Severity.ERROR))

    def warning(self, code: str, message: str, location: Location | None = None, hint: str | None = None) -> None:
        self.add(Diagnostic(code, message, location or Location(), hint, Severity.WARNING))

    @property
    def has_errors(self) -> bool:
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
