"""What data validation reuses instead of doing again.

Two things, both keyed so that a reused answer is always the answer validation would give:

- **File outcomes, within one process.** Validating a folder of specs that share data (a
  monorepo of 500 specs on one dataset) would read, check and count the same files once
  per spec. `remembered(key)` returns the outcome of a file validated earlier in this
  process under the same key: the file itself (its stat: path, size, mtime, inode,
  ctime, and any stored digest), the split, format and fields, the rules, the token
  counter, `max_seq_length`, how many problems are kept, and, for a train file, the
  validation files whose examples it is compared with. Its diagnostics are replayed.
- **Token counts, across processes.** Counting with a model's tokenizer and chat
  template is most of what validating text data costs, and it depends only on the file's
  content, its format and the tokenizer. With a `TokenCountCache` (the state database),
  the counts of each file are stored by (content hash, format, fields, tokenizer) and
  replayed, so `validate`/`plan` of unchanged data never load the tokenizer.
"""

from __future__ import annotations

import array
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from tunespec.data.conversation import Conversation
from tunespec.data.report import TokenStats
from tunespec.diagnostics import Diagnostic, Diagnostics


class TokenCountCache(Protocol):
    """Stores the token count of every example of a file by a key (the state store
    implements it)."""

    def lookup_counts(self, key: str) -> bytes | None: ...

    def store_counts(self, key: str, packed: bytes) -> None: ...


# File outcomes --------------------------------------------------------------------------


@dataclass
class FileOutcome:
    """What validating one file found, enough to give the same report again."""

    examples: int
    format_name: str | None
    digest: str
    stats: TokenStats
    duplicates: int
    kept: list[Diagnostic]
    counts: Counter  # (code, severity) -> problems found in the file, kept or not
    validation_keys: set[bytes] | None = None
    """For a validation file: the content keys it added (train files are checked against them)."""


_OUTCOMES: dict[tuple, FileOutcome] = {}
MAX_REMEMBERED = 4096


def remembered(key: tuple | None) -> FileOutcome | None:
    return _OUTCOMES.get(key) if key is not None else None


def remember(key: tuple | None, outcome: FileOutcome) -> None:
    if key is None:
        return
    if len(_OUTCOMES) >= MAX_REMEMBERED:
        _OUTCOMES.pop(next(iter(_OUTCOMES)))
    _OUTCOMES[key] = outcome


def forget() -> None:
    _OUTCOMES.clear()


@dataclass
class DiagnosticRecorder:
    """Passes every diagnostic on, and keeps what a replay needs: the first `max_per_code`
    of each code and how many of each (code, severity) there were."""

    add_to: Any  # Callable[[Diagnostic], None]
    max_per_code: int
    kept: list[Diagnostic] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    _per_code: Counter = field(default_factory=Counter)

    def add(self, d: Diagnostic) -> None:
        self.add_to(d)
        self.counts[d.code, d.severity] += 1
        self._per_code[d.code] += 1
        if self._per_code[d.code] <= self.max_per_code:
            self.kept.append(d)


def replay(outcome: FileOutcome, diagnostics: Diagnostics) -> None:
    """Add a remembered file's diagnostics: the kept ones, and the count of the rest."""
    diagnostics.absorb(outcome.kept, outcome.counts)


def copy_stats(stats: TokenStats) -> TokenStats:
    out = TokenStats(stats.max_seq_length, stats.long_examples)
    out.merge(stats)
    return out


# Token counts -----------------------------------------------------------------------------


def pack(counts: list[int]) -> bytes:
    return zlib.compress(array.array("I", counts).tobytes(), 6)


def unpack(packed: bytes) -> array.array:
    """The stored counts as a compact array (4 bytes a count; a list of ints takes about 36:
    at a million examples, 4 MB instead of 36)."""
    values = array.array("I")
    values.frombytes(zlib.decompress(packed))
    return values


class RecordingCounter:
    """Counts with `counter` and keeps every count, in order, to be stored."""

    exact = True

    def __init__(self, counter: Any):
        self.counter = counter
        self.name = counter.name
        self.counts = array.array("I")  # compact: one per example of the file

    def count(self, conversations: list[Conversation]) -> list[int]:
        counts = self.counter.count(conversations)
        self.counts.extend(counts)
        return counts


class ReplayCounter:
    """Gives stored counts back in order; counts with `counter` past their end (it never
    happens while the key is right, but a wrong count must never be made up)."""

    exact = True

    def __init__(self, counts: "array.array | list[int]", counter: Any):
        self.counts = counts
        self.position = 0
        self.counter = counter
        self.name = counter.name

    def count(self, conversations: list[Conversation]) -> list[int]:
        start, self.position = self.position, self.position + len(conversations)
        if self.position <= len(self.counts):
            return list(self.counts[start : self.position])
        return self.counter.count(conversations)
