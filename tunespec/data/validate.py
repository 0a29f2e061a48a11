"""Data validation: read every data file once, check every example, and report.

`validate_data` streams each source of each split exactly once. While reading it hashes
the raw bytes (the hash feeds the spec fingerprint, and a `HashCache` skips it for files
whose inode, size, mtime and ctime did not change), parses each record with orjson, converts it to a
`Conversation` through its format, applies the conversation and modality rules, counts
tokens, and accumulates statistics in constant memory (`scan.ExampleScan`). Problems go
to the `Diagnostics` collector with file:line and the JSON path inside the record.

Two shortcuts keep it near parsing speed without changing any result: plain text
examples are proven fine straight from the record (`quick`), and large local JSONL
files are validated by byte ranges on every core (`parallel`).

`iter_conversations` is what backends use to read the data for training: the same
reading path, without the checks, raising on the first bad record.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Protocol

from tunespec.data import parallel, reuse
from tunespec.data.checks import FileReferences
from tunespec.data.conversation import Conversation
from tunespec.data.formats import DataFormat, detect_format
from tunespec.data.readers import read_records, reads_all_bytes
from tunespec.data.registry import data_formats, data_sources, format_named, source_for
from tunespec.data.report import DataFile, DataReport, TokenStats
from tunespec.data.rules import DataRules, rules_for
from tunespec.data.scan import ExampleScan, located
from tunespec.data.sources import DataSource, FileStat, NotARegularFile
from tunespec.data.tokens import EstimatedTokenCounter, TokenCounter
from tunespec.diagnostics import Diagnostic, DiagnosticError, Diagnostics, Location, Severity
from tunespec.progress import Progress
from tunespec.spec.model import PromptCompletionFields
from tunespec.spec.resolve import ResolvedSpec

Split = Literal["train", "validation"]
HASH_CHUNK = 1 << 20
MAX_FILE_ERRORS = 10_000
"""Lines or records of one file that may fail to parse or to fit the format before the
file is given up on (TS230): a small .gz can hold millions of short bad lines, each
costing microseconds to report, so a file of nothing else is not read to its end."""
# Codes that say a file (or its lines) could not be read: no need to add "holds no examples".
_FILE_PROBLEMS = frozenset({"TS200", "TS201", "TS202", "TS204", "TS220", "TS221", "TS224", "TS228", "TS229", "TS230"})


class HashCache(Protocol):
    """Remembers content hashes by what a source's stat says of a file, so unchanged files
    are not re-hashed (the state store implements it).

    An entry is valid only for the same path, size, mtime, inode and ctime: a file changed
    in place with its size and mtime set back (``os.utime``) still gets a new ctime, which
    no user can set, so its old hash is never reused. Sources that know no mtime (and
    files that carry their own digest, like Cloud Storage objects) are not cached.
    """

    def lookup(self, stat: FileStat) -> str | None: ...

    def store(self, stat: FileStat, digest: str) -> None: ...


@dataclass
class DataFileRef:
    """One data file of a split, with the source that reads it and the spec entry it came from."""

    split: Split
    path: str
    source: DataSource
    format: DataFormat | None
    """The format the spec fixes for this file; None: detect it from the first record."""


def data_files(spec: ResolvedSpec, split: Split, sources: list[DataSource], formats: list[DataFormat]) -> Iterator[DataFileRef]:
    """Every data file of a split, in spec order (directories and prefixes expanded, sorted).
    Raises `DiagnosticError` for a source that does not exist (TS200) or an unknown format
    name (TS204)."""
    data = spec.job.data
    for i, entry in enumerate(getattr(data, split)):
        where = spec.locate(f"data.{split}[{i}].path")
        path = spec.resolve_path(entry.path)
        source = source_for(path, sources, where)
        try:
            files = source.list(path)
        except NotARegularFile as exc:
            raise DiagnosticError(
                Diagnostic(
                    "TS200",
                    f"{split} data {entry.path!r} is not a regular file: {exc}",
                    where,
                    "data sources are files or folders of files; a device, FIFO or socket is never read",
                )
            ) from None
        except FileNotFoundError as exc:
            raise DiagnosticError(
                Diagnostic("TS200", f"{split} data {entry.path!r} not found: {exc}", where, "check the path; local paths are relative to the spec file")
            ) from None
        except OSError as exc:
            raise DiagnosticError(Diagnostic("TS200", f"cannot read {split} data {entry.path!r}: {exc}", where)) from None
        name = entry.format if entry.format != "auto" else data.format
        fmt = None if name == "auto" else format_named(name, formats, spec.locate(f"data.{split}[{i}].format" if entry.format != "auto" else "data.format"))
        for path in files:
            yield DataFileRef(split, path, source, fmt)


def file_conversations(
    ref: DataFileRef,
    formats: list[DataFormat],
    fields: PromptCompletionFields,
    max_record_bytes: int,
    report: Callable[[Diagnostic], None],
    on_bytes: Callable[[bytes], None] = lambda b: None,
    chosen: list[DataFormat | None] | None = None,
    quick: Callable[[DataFormat, str], Callable[[Any, int], bool] | None] | None = None,
    sniff: bool = True,
) -> Iterator[Conversation]:
    """The conversations of one file, in order. Problems go to `report` located at
    file:line [JSON path]; a record with problems is skipped. `chosen` (a one-item list)
    receives the format used, detected from the first record when the spec says auto.
    `quick(format, file)` may give a handler that takes records off this path
    (validation's quick check for plain examples, see `tunespec.data.quick`): its
    ``handler(record, line)`` returning True means handled. `sniff`: see
    `tunespec.data.readers.read_records` (False only for byte ranges past a file's start).

    Every byte of the file goes through `on_bytes`, also when reading stops early (a
    file that is not data, an unknown format): the content hash always covers the file."""
    fmt = ref.format
    path = ref.path
    handler = quick(fmt, path) if quick is not None and fmt is not None else None
    bad = 0  # lines or records refused so far: a file of nothing else is given up on
    with ref.source.open(path) as stream:
        for item in read_records(stream, path, on_bytes, max_record_bytes, sniff):
            if type(item) is not tuple:
                report(item)
                if item.severity is Severity.ERROR:
                    bad += 1
                    if bad >= MAX_FILE_ERRORS:
                        report(_gave_up(path))
                        break
                continue
            line, record = item
            if fmt is None:
                fmt = detect_format(record, formats, fields)
                if fmt is None:
                    report(_unknown_format(record, path, line, formats, fields))
                    _drain(stream, on_bytes)
                    return
                if chosen is not None:
                    chosen[0] = fmt
                handler = quick(fmt, path) if quick is not None else None
            if handler is not None and handler(record, line):
                continue
            try:
                conv = fmt.to_conversation(record, fields)
            except DiagnosticError as exc:
                for d in exc.diagnostics:
                    report(located(d, path, line))
                bad += 1
                if bad >= MAX_FILE_ERRORS:
                    report(_gave_up(path))
                    break
                continue
            except Exception as exc:  # a bug in a (plugin) format: name it, keep going
                report(_format_crashed(fmt, exc, path, line))
                continue
            conv.file = path
            conv.line = line
            if conv.format is None:
                conv.format = fmt.name
            yield conv
        if reads_all_bytes(path):
            _drain(stream, on_bytes)
    if chosen is not None and chosen[0] is None:
        chosen[0] = fmt


def _gave_up(path: str) -> Diagnostic:
    return Diagnostic(
        "TS230",
        f"stopped reading this file after {MAX_FILE_ERRORS:,} lines that are not valid records; the rest was not validated",
        Location(path),
        "fix the problems reported above (is the file in the format you expect?) and validate again",
    )


def _unknown_format(record: Any, path: str, line: int, formats: list[DataFormat], fields: PromptCompletionFields) -> Diagnostic:
    keys = ", ".join(sorted(record)[:8]) if isinstance(record, dict) else type(record).__name__
    return Diagnostic(
        "TS204",
        f"cannot tell the data format from the first record (keys: {keys}); file skipped",
        Location(path, line, None, "$"),
        f"expected `contents` (gemini), `messages` (openai) or `{fields.prompt}`+`{fields.completion}` (prompt_completion); "
        "set `format:` on the source or `data.fields` for other field names",
    )


def _format_crashed(fmt: DataFormat, exc: Exception, path: str, line: int) -> Diagnostic:
    return Diagnostic(
        "TS004",
        f"data format {fmt.name!r} failed on this record: {type(exc).__name__}: {exc}",
        Location(path, line, None, "$"),
        "a bug in the format's plugin: report it with this record",
    )


def _drain(stream: Any, on_bytes: Callable[[bytes], None]) -> None:
    """Read the rest of a file we stopped parsing, so its hash still covers every byte
    (raw bytes: a .gz is not decompressed for this)."""
    try:
        while chunk := stream.read(HASH_CHUNK):
            on_bytes(chunk)
    except Exception:  # the reader already reported why the file cannot be read
        pass


def iter_conversations(spec: ResolvedSpec, split: Split) -> Iterator[Conversation]:
    """Stream the conversations of a split for training. Raises `DiagnosticError` on the
    first bad record; backends call it after `validate_data` found no errors."""
    sources, formats = data_sources(), data_formats()
    fields = spec.job.data.fields

    def fail(d: Diagnostic) -> None:
        if d.severity is Severity.ERROR:
            raise DiagnosticError(d)

    for ref in data_files(spec, split, sources, formats):
        yield from file_conversations(ref, formats, fields, rules_for(spec.job.data.modality).max_record_bytes, fail)


def validate_data(
    spec: ResolvedSpec,
    rules: DataRules | None,
    counter: TokenCounter | None,
    diagnostics: Diagnostics,
    progress: Progress | None = None,
    hash_cache: HashCache | None = None,
) -> DataReport:
    """Validate every data file of `spec` once; fill ``spec.data_hashes``; return the report.

    rules:   the backend's table (``backend.data_rules(spec)``) or None. It is merged with
             tunespec's defaults for the spec's modality (``rules_for(modality)``), the
             stricter limit winning, so passing an already merged table is harmless.
    counter: the backend's exact token counter, or None to estimate.
    """
    return _Validation(spec, rules, counter, diagnostics, progress, hash_cache).run()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Validation makes millions of short-lived, acyclic objects; the cyclic garbage
    collector would rescan the surviving batch over and over (about 40% of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _BackgroundHasher:
    """sha256 on a helper thread: hashlib releases the GIL on large updates, so the file is
    hashed on another core while this thread parses it. A bounded queue keeps at most a
    few chunks in memory."""

    def __init__(self) -> None:
        import queue
        import threading

        self._sha = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, name="tunespec-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._sha.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def hexdigest(self) -> str:
        self._chunks.put(None)
        self._thread.join()
        return self._sha.hexdigest()


class _Validation:
    def __init__(self, spec, rules, counter, diagnostics, progress, hash_cache):
        self.spec: ResolvedSpec = spec
        data = spec.job.data
        self.rules: DataRules = rules_for(data.modality, spec.job.method.objective, data.documents.max_pages).merge(rules)
        self.counter: TokenCounter = counter or EstimatedTokenCounter()
        self.diagnostics: Diagnostics = diagnostics
        self.progress: Progress = progress or Progress(enabled=False, quiet=True)
        self.hash_cache = hash_cache
        # The state store also keeps token counts by content hash (see `reuse`).
        self.count_cache = hash_cache if hasattr(hash_cache, "lookup_counts") else None
        self.sources = data_sources()
        self.formats = data_formats()
        self.references = FileReferences(self.sources, spec.base_dir)
        self.data = spec.job.data
        self.files: list[DataFile] = []
        self.stats: dict[str, TokenStats] = {}
        self.examples: dict[str, int] = {}
        # Content keys of the validation split, to find train examples that repeat them.
        self.validation_keys: set[bytes] | None = set() if self.data.validation else None
        self.duplicates = 0
        self.counts_before = diagnostics.counts.copy()
        self.errors_before, self.warnings_before = diagnostics.error_count, diagnostics.warning_count

    def run(self) -> DataReport:
        with _gc_paused():
            # Validation first: its content keys (small) let train examples be checked for
            # duplicates as they stream past, without keeping train in memory.
            order: list[Split] = ["validation", "train"] if self.data.validation else ["train"]
            for split in order:
                self.examples[split] = 0
                self.stats[split] = TokenStats(self.data.max_seq_length, self.long_examples)
                try:
                    for ref in data_files(self.spec, split, self.sources, self.formats):
                        self._validate_file(ref)
                except DiagnosticError as exc:
                    self.diagnostics.extend(exc.diagnostics)
                self._check_split_size(split)
        return self._report()

    def _check_split_size(self, split: Split) -> None:
        limit = self.rules.max_examples.get(split)
        if limit is not None and self.examples[split] > limit:
            self.diagnostics.error(
                "TS216",
                f"{self.examples[split]:,} {split} examples, over the limit of {limit:,}",
                self.spec.locate(f"data.{split}"),
                f"use at most {limit:,} {split} examples",
            )

    def _scan(self, split: str, add: Callable[[Diagnostic], None], counter: TokenCounter | None = None) -> ExampleScan:
        return ExampleScan(split, self.rules, self.references, counter or self.counter, self.data.max_seq_length, self.validation_keys, add, self.data.fields)

    # One file -------------------------------------------------------------------------

    def _validate_file(self, ref: DataFileRef) -> None:
        stat = self._stat(ref)
        if stat is None:
            return
        key = self._outcome_key(ref, stat)
        outcome = reuse.remembered(key)
        if outcome is not None:  # validated earlier in this process, unchanged: the same answer
            self._reuse(ref, stat, outcome)
            return
        digest = stat.digest or self._cached_digest(stat)
        if digest is None and not reads_all_bytes(ref.path):
            digest = self._hash_file(ref, stat)
        hasher = _BackgroundHasher() if digest is None else None
        name = ref.path.rsplit("/", 1)[-1]
        with self.progress.task(f"validating {ref.split} {name}", total=stat.size) as task:

            def on_bytes(chunk: bytes) -> None:
                if hasher is not None:
                    hasher.update(chunk)
                task.advance(len(chunk))

            scanned, counter = None, None  # what can be reused: only from a scan in this process
            try:
                parallel_format = self._parallel_format(ref, stat)
                if parallel_format is not None:
                    examples, fmt = self._scan_parallel(dataclasses.replace(ref, format=parallel_format), hasher, on_bytes, task), parallel_format
                else:
                    examples, fmt, scanned, counter = self._scan_here(ref, on_bytes, digest)
            except OSError as exc:
                self.diagnostics.error("TS200", f"cannot read: {exc}", Location(ref.path))
                return
            finally:
                if hasher is not None:  # waits for the hashing thread, and stops it on errors too
                    digest = "sha256:" + hasher.hexdigest()
        if hasher is not None and self.hash_cache is not None and stat.mtime_ns is not None:
            self.hash_cache.store(stat, digest)  # type: ignore[arg-type]
        if scanned is not None:
            scanned.digest = digest  # type: ignore[assignment]
            if isinstance(counter, reuse.RecordingCounter):
                self._store_counts(counter, ref, digest)  # type: ignore[arg-type]
            reuse.remember(key, scanned)
        self._finish_file(ref, stat, examples, fmt.name if fmt else None, digest)  # type: ignore[arg-type]

    def _finish_file(self, ref: DataFileRef, stat: FileStat, examples: int, format_name: str | None, digest: str) -> None:
        if examples == 0 and not self._file_had_errors(ref.path):
            self.diagnostics.error("TS205", "data file holds no examples", Location(ref.path), "remove the file from the spec or fill it")
        self.examples[ref.split] += examples
        self.spec.data_hashes[self._key(ref.path)] = digest
        self.files.append(DataFile(path=ref.path, split=ref.split, format=format_name, bytes=stat.size, sha256=digest or "", examples=examples))

    # Reuse: the same file, validated the same way, gives the same answer -------------------

    def _outcome_key(self, ref: DataFileRef, stat: FileStat) -> tuple | None:
        """Everything a file's outcome depends on, or None when it cannot be reused (no
        identity for the file's content)."""
        if stat.digest is None and (stat.mtime_ns is None or stat.inode is None):
            return None
        against: tuple = ()
        if ref.split == "train" and self.validation_keys is not None:
            against = tuple((f.path, f.sha256) for f in self.files if f.split == "validation")
        counter = self.counter
        return (
            ref.path, ref.split, stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns, stat.digest,
            ref.format.name if ref.format else None, self.data.format, self.data.fields.model_dump_json(),
            self.rules.model_dump_json(), type(counter).__name__, counter.name, getattr(counter, "cache_key", None),
            self.data.max_seq_length, self.diagnostics.max_per_code, str(self.spec.base_dir), against,
        )

    def _reuse(self, ref: DataFileRef, stat: FileStat, outcome: reuse.FileOutcome) -> None:
        reuse.replay(outcome, self.diagnostics)
        self._absorb(ref.split, reuse.copy_stats(outcome.stats), outcome.duplicates)
        if outcome.validation_keys is not None and self.validation_keys is not None:
            self.validation_keys |= outcome.validation_keys
        if self.hash_cache is not None and stat.mtime_ns is not None and stat.digest is None and self._cached_digest(stat) is None:
            self.hash_cache.store(stat, outcome.digest)  # a cache this process did not fill yet
        self._finish_file(ref, stat, outcome.examples, outcome.format_name, outcome.digest)

    def _counts_key(self, ref: DataFileRef, digest: str | None) -> str | None:
        """The key of a file's token counts in the count cache: its content, how its records
        become conversations, and the tokenizer. None when counts are not worth storing."""
        cache_key = getattr(self.counter, "cache_key", None)
        if self.count_cache is None or not self.counter.exact or cache_key is None or digest is None:
            return None
        how = f"{ref.format.name if ref.format else self.data.format}|{self.data.fields.model_dump_json()}"
        return f"{digest}|{how}|{cache_key}"

    def _store_counts(self, counter: reuse.RecordingCounter, ref: DataFileRef, digest: str) -> None:
        key = self._counts_key(ref, digest)
        if key is not None:
            self.count_cache.store_counts(key, reuse.pack(counter.counts))  # type: ignore[union-attr]

    def _scan_here(self, ref: DataFileRef, on_bytes: Callable[[bytes], None], digest: str | None) -> tuple[int, DataFormat | None, reuse.FileOutcome, Any]:
        """Validate a file in this process (small files, remote files, exact token counts).
        Token counts come from the count cache when it has this file's; otherwise they are
        recorded to be stored. Returns what a later validation can reuse, and the counter
        used (a `RecordingCounter` holds counts to store once the file's hash is known)."""
        chosen: list[DataFormat | None] = [None]
        recorder = reuse.DiagnosticRecorder(self.diagnostics.add, self.diagnostics.max_per_code)
        counter: Any = self.counter
        counts_key = self._counts_key(ref, digest)
        if self.counter.exact and self.count_cache is not None and getattr(self.counter, "cache_key", None):
            packed = self.count_cache.lookup_counts(counts_key) if counts_key is not None else None
            counter = reuse.ReplayCounter(reuse.unpack(packed), self.counter) if packed else reuse.RecordingCounter(self.counter)
        keys_before = set(self.validation_keys) if ref.split == "validation" and self.validation_keys is not None else None
        scan = self._scan(ref.split, recorder.add, counter)
        feed = scan.feed
        conversations = file_conversations(ref, self.formats, self.data.fields, self.rules.max_record_bytes, recorder.add, on_bytes, chosen, scan.quick_handler)
        for conv in conversations:
            feed(conv)
        scan.flush()
        self._absorb(ref.split, scan.stats, scan.duplicates)
        fmt = chosen[0]
        outcome = reuse.FileOutcome(
            examples=scan.examples, format_name=fmt.name if fmt else None, digest="", stats=reuse.copy_stats(scan.stats),
            duplicates=scan.duplicates, kept=recorder.kept, counts=recorder.counts,
            validation_keys=(self.validation_keys - keys_before) if keys_before is not None else None,  # type: ignore[operator]
        )
        return scan.examples, fmt, outcome, counter

    def _parallel_format(self, ref: DataFileRef, stat: FileStat) -> DataFormat | None:
        """The format to validate `ref` with on every core, or None to validate it here
        (too small, not local JSONL, exact counter, or its first record is not recognised:
        the in-process path then reports why)."""
        if not parallel.can_parallelize(stat, ref.source, ref.path, self.counter.exact):
            return None
        # Read up to the first record even when the format is fixed: this sniffs the
        # file's start (the workers' ranges are not sniffed), and a file that is not data
        # is left to the in-process path, which reports it.
        with ref.source.open(ref.path) as stream:
            for item in read_records(stream, ref.path, lambda b: None, self.rules.max_record_bytes):
                if type(item) is tuple:
                    return ref.format or detect_format(item[1], self.formats, self.data.fields)
                if item.code == "TS224":
                    return None
        return None

    def _scan_parallel(self, ref: DataFileRef, hasher: Any, on_bytes: Callable[[bytes], None], task: Any) -> int:
        job = parallel._Job(
            ref=ref,
            ranges=parallel.split_ranges(ref.path, ref.source.stat(ref.path).size),  # type: ignore[union-attr]
            make_scan=lambda add: self._scan(ref.split, add),
            conversations=functools.partial(file_conversations, sniff=False),  # _parallel_format sniffed the start
            fields=self.data.fields,
            max_record_bytes=self.rules.max_record_bytes,
            max_per_code=self.diagnostics.max_per_code,
        )
        # The progress bar follows the hashing pass when there is one, else finished ranges.
        results = parallel.scan_parallel(
            job,
            parallel.worker_count(),
            on_bytes=on_bytes if hasher is not None else None,
            on_range_done=(lambda n: None) if hasher is not None else task.advance,
        )
        parallel.merge_into(results, ref.path, self.diagnostics)
        for r in results:
            self._absorb(ref.split, r.stats, r.duplicates)
            if r.keys is not None and self.validation_keys is not None:
                self.validation_keys |= r.keys
        return sum(r.examples for r in results)

    def _absorb(self, split: str, stats: TokenStats, duplicates: int) -> None:
        if stats is not self.stats[split]:
            self.stats[split].merge(stats)
        self.duplicates += duplicates

    def _key(self, path: str) -> str:
        """A data file's name in the fingerprint: relative to the spec folder when inside
        it, so moving the checkout does not change the fingerprint."""
        base = str(self.spec.base_dir.resolve()) + "/"
        return path[len(base) :] if path.startswith(base) else path

    def _stat(self, ref: DataFileRef) -> FileStat | None:
        try:
            stat = ref.source.stat(ref.path)
        except DiagnosticError as exc:
            self.diagnostics.extend(exc.diagnostics)
            return None
        if stat is None:
            self.diagnostics.error("TS200", "data file disappeared or cannot be read", Location(ref.path))
            return None
        if self.rules.max_file_bytes is not None and stat.size > self.rules.max_file_bytes:
            self.diagnostics.error(
                "TS217",
                f"data file is {stat.size / 1e9:.2f} GB, over the {self.rules.max_file_bytes / 1e9:.2f} GB limit",
                Location(ref.path),
                "split it into several files and list them (or their folder) in the spec",
            )
        return stat

    def _file_had_errors(self, path: str) -> bool:
        """True if a problem was already reported for this file (no need to add 'empty')."""
        return any(d.location.file == path and d.code in _FILE_PROBLEMS for d in self.diagnostics)

    def _cached_digest(self, stat: FileStat) -> str | None:
        if self.hash_cache is None or stat.mtime_ns is None:
            return None
        return self.hash_cache.lookup(stat)

    def _hash_file(self, ref: DataFileRef, stat: FileStat) -> str:
        """Hash a file that its reader does not stream front to back (Parquet)."""
        hasher = hashlib.sha256()
        with ref.source.open(ref.path) as stream:
            while chunk := stream.read(HASH_CHUNK):
                hasher.update(chunk)
        digest = "sha256:" + hasher.hexdigest()
        if self.hash_cache is not None and stat.mtime_ns is not None:
            self.hash_cache.store(stat, digest)
        return digest

    # Report ----------------------------------------------------------------------------

    LONG_BASIS = {"truncated": "after truncation", "dropped": "without the over-long examples", "kept": "whole"}

    @property
    def long_examples(self) -> str:
        return self.rules.long_examples or "truncated"

    def _report(self) -> DataReport:
        hp = self.spec.job.hyperparameters
        splits = {s: self.stats[s].stats(self.examples[s]) for s in ("train", "validation") if s in self.stats}
        train = splits.get("train")
        trained, basis = 0, "no training data"
        if train is not None and train.examples:
            if hp.max_steps is not None:
                # Steps per epoch: packed sequences of max_seq_length, or examples, per batch.
                sequences = -(-train.tokens_after_truncation // self.data.max_seq_length) if hp.packing else train.examples
                steps_per_epoch = max(1, -(-sequences // hp.batch_size))
                trained = round(train.tokens_after_truncation * hp.max_steps / steps_per_epoch)
                basis = f"{hp.max_steps:,} steps of ~{steps_per_epoch:,} per epoch"
            else:
                trained = train.tokens_after_truncation * hp.epochs
                basis = f"train tokens {self.LONG_BASIS[self.long_examples]} x {hp.epochs} epochs"
        counts = self.diagnostics.counts - self.counts_before
        return DataReport(
            splits=splits,
            max_seq_length=self.data.max_seq_length,
            long_examples=self.long_examples,
            tokens_estimated=not self.counter.exact,
            token_counter=self.counter.name,
            trained_tokens=trained,
            trained_tokens_basis=basis,
            duplicates_between_splits=self.duplicates,
            files=sorted(self.files, key=lambda f: f.split != "train"),  # train first, then validation
            problems=dict(counts),
            errors=self.diagnostics.error_count - self.errors_before,
            warnings=self.diagnostics.warning_count - self.warnings_before,
        )
