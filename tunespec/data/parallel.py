"""Validating one large local JSON Lines file on every core.

The file is cut into byte ranges that end right after a newline, so every range holds
whole lines. Forked worker processes each read one range (`file_conversations` over a
range-limited stream, the same code as the single-process path) and return what they
found: diagnostics (capped per code, with line numbers relative to the range), problem
counts, token statistics and duplicates. The parent shifts line numbers by the lines of
the ranges before, merges in file order, and meanwhile hashes the whole file itself, so
the file's content hash and the progress bar cost no extra pass.

Used only where it pays and is safe: a local, uncompressed JSONL file of at least
`MIN_PARALLEL_BYTES`, estimated token counts (an exact counter's tokenizer already uses
every core and may not survive a fork), Linux, and more than one CPU. Workers are
forked, so they inherit the rules, the format and the validation split's content keys
without pickling them.
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from tunespec.data.report import TokenStats
from tunespec.data.scan import ExampleScan
from tunespec.data.sources import FileStat, LocalSource
from tunespec.diagnostics import Diagnostic, Diagnostics, Location

MIN_PARALLEL_BYTES = 32 << 20
RANGE_BYTES = 16 << 20
WORKERS_ENV = "TUNESPEC_DATA_WORKERS"


def worker_count() -> int:
    """Processes to use: $TUNESPEC_DATA_WORKERS, else the CPUs this process may run on."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured.isdigit():
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split_ranges(path: str, size: int, target: int | None = None) -> list[tuple[int, int]]:
    """[start, end) byte ranges of about `target` bytes, each ending after a newline."""
    target = target or RANGE_BYTES
    bounds = [0]
    with open(path, "rb") as fp:
        pos = target
        while pos < size:
            fp.seek(pos)
            while True:
                block = fp.read(1 << 16)
                if not block:
                    pos = size
                    break
                cut = block.find(b"\n")
                if cut >= 0:
                    pos += cut + 1
                    break
                pos += len(block)
            if pos >= size:
                break
            bounds.append(pos)
            pos += target
    bounds.append(size)
    return list(zip(bounds, bounds[1:]))


class _RangeStream:
    """Reads [start, end) of a file and counts the newlines it hands out."""

    def __init__(self, path: str, start: int, end: int):
        self.fp = open(path, "rb", buffering=0)
        self.fp.seek(start)
        self.left = end - start
        self.newlines = 0

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.fp.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        self.newlines += data.count(b"\n")
        return data

    def close(self) -> None:
        self.fp.close()

    def __enter__(self) -> "_RangeStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _RangeSource(LocalSource):
    """A local source whose `open` yields one byte range (what a worker reads)."""

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end
        self.stream: _RangeStream | None = None

    def open(self, path: str) -> BinaryIO:
        self.stream = _RangeStream(path, self.start, self.end)
        return self.stream  # type: ignore[return-value]


@dataclass
class RangeResult:
    index: int
    lines: int
    kept: list[Diagnostic]
    counts: Counter  # (code, severity) -> problems found, kept or not
    stats: TokenStats
    examples: int
    duplicates: int
    keys: set[bytes] | None


@dataclass
class _Job:
    ref: Any  # DataFileRef with a fixed format
    ranges: list[tuple[int, int]]
    make_scan: Callable[[Callable[[Diagnostic], None]], ExampleScan]
    conversations: Callable[..., Any]  # validate.file_conversations
    fields: Any
    max_record_bytes: int
    max_per_code: int


_JOB: _Job | None = None  # set in the parent just before forking; read by the workers


def _scan_range(index: int) -> RangeResult:
    job = _JOB
    assert job is not None
    gc.disable()  # short-lived process making many acyclic objects: collection is pure cost
    kept: list[Diagnostic] = []
    counts: Counter = Counter()
    per_code: Counter = Counter()

    def add(d: Diagnostic) -> None:
        counts[d.code, d.severity] += 1
        per_code[d.code] += 1
        if per_code[d.code] <= job.max_per_code:
            kept.append(d)

    scan = job.make_scan(add)
    if scan.split == "validation" and scan.validation_keys is not None:
        scan.validation_keys = set()  # this range's keys, sent back to the parent
    start, end = job.ranges[index]
    source = _RangeSource(start, end)
    ref = dataclasses.replace(job.ref, source=source)
    for conv in job.conversations(ref, [], job.fields, job.max_record_bytes, add, quick=scan.quick_handler):
        scan.feed(conv)
    scan.flush()
    lines = source.stream.newlines if source.stream is not None else 0
    keys = scan.validation_keys if scan.split == "validation" else None
    return RangeResult(index, lines, kept, counts, scan.stats, scan.examples, scan.duplicates, keys)


def scan_parallel(
    job: _Job,
    workers: int,
    on_bytes: Callable[[bytes], None] | None,
    on_range_done: Callable[[int], None],
) -> list[RangeResult]:
    """Run `job` over its ranges in `workers` forked processes; results in file order.
    While they work, the parent streams the whole file to `on_bytes` (hashing)."""
    global _JOB
    _JOB = job
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_scan_range, i) for i in range(len(job.ranges))]
            if on_bytes is not None:
                with open(job.ref.path, "rb", buffering=0) as fp:
                    while chunk := fp.read(1 << 20):
                        on_bytes(chunk)
            results = []
            for (start, end), future in zip(job.ranges, futures):
                results.append(future.result())
                on_range_done(end - start)
            return results
    finally:
        _JOB = None


def merge_into(results: list[RangeResult], path: str, diagnostics: Diagnostics) -> None:
    """Add the workers' diagnostics to `diagnostics` in file order, lines made absolute;
    problems a worker counted but did not keep are counted here too."""
    offset = 0
    for result in results:
        absolute = [_shifted(d, path, offset) for d in result.kept]
        diagnostics.absorb(absolute, result.counts)
        offset += result.lines


def _shifted(d: Diagnostic, path: str, offset: int) -> Diagnostic:
    """`d` with its line in `path` made absolute (a worker numbers lines from its range)."""
    loc = d.location
    line = loc.line + offset if (loc.line is not None and loc.file == path) else loc.line
    return Diagnostic(d.code, d.message, Location(loc.file, line, loc.column, loc.path), d.hint, d.severity)


def can_parallelize(stat: FileStat, source: Any, path: str, exact_counter: bool) -> bool:
    from tunespec.data.readers import layout_of

    return (
        stat.size >= MIN_PARALLEL_BYTES
        and type(source) is LocalSource
        and layout_of(path) == "jsonl"
        and not path.lower().endswith(".gz")
        and not exact_counter
        and sys.platform.startswith("linux")  # fork is only safe enough on Linux (macOS frameworks dislike it)
        and worker_count() > 1
    )
