"""Turn a data file's bytes into parsed records, one at a time, in constant memory.

Three layouts, chosen by file name:

- JSON Lines (``.jsonl``, ``.ndjson``, anything else; ``.gz`` streamed through gzip):
  read in 1 MiB chunks, split on ``\\n``, each line parsed with orjson. CRLF line ends
  and blank lines are accepted; a byte order mark is skipped with a warning; a line
  longer than the record limit is skipped (never buffered) and reported; a last line
  without ``\\n`` is accepted if it parses and reported as truncated if not.
- JSON array (``.json`` starting with ``[``): one array of records. The file is parsed
  whole (JSON arrays cannot be streamed by orjson), so it is bounded like one record
  (`MAX_ARRAY_BYTES`, `MAX_RECORD_VALUES`); prefer JSONL for large data. A ``.json``
  file that does not start with ``[`` is read as JSON Lines.
- Parquet (``.parquet``): rows read in batches through pyarrow (imported lazily); the
  "line" of a row is its 1-based row number.

Data files are untrusted (they arrive in pull requests), so reading is bounded in time and
memory whatever the bytes are:

- The first bytes of every file (decompressed for ``.gz``) are sniffed before anything
  is parsed: a file that is not data (binary, NUL bytes, an executable, an archive, text
  that is not JSON) gets one TS224 diagnostic that says what it looks like and never
  quotes it, and is not parsed (`tunespec.data.sniff`).
- Decompression errors of any kind (a cut-off stream, damaged blocks, a bad checksum)
  are diagnostics at the file that say after how many lines they happened.
- Blank lines cost no Python work: a chunk made mostly of short lines is walked by its
  non-blank lines, found in C, so a small .gz of gigabytes of newlines reads at
  decompression speed.
- A line over 1 MiB has its JSON values counted (in C) before it is parsed, and a record
  of more than `MAX_RECORD_VALUES` values is refused (TS228): parsed, millions of tiny
  values would take gigabytes.

Readers yield ``(line, record)`` tuples, or a `Diagnostic` for a line that cannot be
parsed, and call ``on_bytes(chunk)`` with every raw (still compressed) chunk they read
so the caller hashes and shows progress while reading: the file is read once.
"""

from __future__ import annotations

import gzip
import re
import zlib
from typing import Any, BinaryIO, Callable, Iterator

import orjson

from tunespec.data.sniff import SNIFF_BYTES, describe_non_data
from tunespec.diagnostics import Diagnostic, Location, Severity

CHUNK = 1 << 20
# Smaller reads from gzip: a read that hits a cut-off stream loses what it decoded, so a
# truncated .gz loses at most this much before the cut.
GZ_CHUNK = 64 << 10
BOM = b"\xef\xbb\xbf"

MAX_RECORD_VALUES = 1_000_000
"""Most JSON values one record (or one whole JSON array file) may hold. Parsed, each value
is a Python object of up to ~200 bytes, so a 30 MB line of ``[],[],...`` would take
gigabytes; such records are refused before they are parsed (TS228). Values are counted
in C (`count_values`); only lines over `VALUES_CHECK_BYTES` are counted (a shorter line
cannot hold enough values to matter)."""
VALUES_CHECK_BYTES = 1 << 20

MAX_ARRAY_BYTES = 64 << 20
"""Largest JSON array file (``.json`` starting with ``[``, decompressed) read: it is
parsed whole, so it is bounded like one record (TS229); JSON Lines has no such limit."""

# A chunk whose lines average fewer bytes than this is walked by its non-blank lines
# (found in C), so a file of millions of blank lines costs no Python work per line.
SPARSE_LINE_BYTES = 32
_NON_BLANK = re.compile(rb"[^ \t\r\n]")


class _Tap:
    """A read-only stream wrapper that shows every raw chunk to a callback (hash, progress)
    and keeps the file's first bytes (to say what a file that fails to decompress is)."""

    def __init__(self, raw: BinaryIO, on_bytes: Callable[[bytes], None]):
        self.raw = raw
        self.on_bytes = on_bytes
        self.head = b""

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            if len(self.head) < SNIFF_BYTES:
                self.head += data[: SNIFF_BYTES - len(self.head)]
            self.on_bytes(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()


def layout_of(path: str) -> str:
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".json"):
        return "json"
    return "jsonl"


def reads_all_bytes(path: str) -> bool:
    """True if reading the records of `path` streams every raw byte through on_bytes
    (not so for Parquet, which seeks), so the file can be hashed while it is read."""
    return layout_of(path) != "parquet"


def read_records(stream: BinaryIO, path: str, on_bytes: Callable[[bytes], None], max_line_bytes: int, sniff: bool = True) -> Iterator[Any]:
    """Records of one file: ``(line, record)`` tuples and `Diagnostic`s, in file order.

    sniff: look at the first bytes first and refuse a file that is not data (TS224) with
    one diagnostic, without parsing it. False only for a byte range in the middle of a
    file whose start was already sniffed (parallel validation)."""
    layout = layout_of(path)
    if layout == "parquet":
        yield from _parquet_records(stream, path, sniff)
        return
    tap = _Tap(stream, on_bytes)
    data: Any = tap
    size = CHUNK
    gz = path.lower().endswith(".gz")
    if gz:
        data = gzip.GzipFile(fileobj=tap, mode="rb")  # type: ignore[arg-type]
        size = GZ_CHUNK
    head = _read(data, path, size, 0)
    if isinstance(head, Diagnostic):
        if gz and not tap.head.startswith(b"\x1f\x8b"):
            looks = describe_non_data(tap.head, layout)
            head = _not_data(path, "is named .gz but is not gzip-compressed" + (f"; it looks like {looks}" if looks else ""), "rename the file without .gz, or compress it with gzip")
        yield head
        return
    if sniff:
        looks = describe_non_data(head[:SNIFF_BYTES], layout)
        if looks is not None:
            hint = None
            if looks.startswith("gzip"):
                hint = "the data is gzip-compressed: name the file with .gz at the end (e.g. train.jsonl.gz)" if not gz else "the data was compressed twice; decompress it once"
            elif looks.startswith("UTF-"):
                hint = "save the file as UTF-8 (e.g. `iconv -f utf-16 -t utf-8`)"
            elif looks == "a Parquet file":
                hint = "name the file .parquet"
            yield _not_data(path, f"it looks like {looks}", hint)
            return
    if layout == "json" and head.lstrip(b" \t\r\n" + BOM)[:1] == b"[":
        yield from _array_records(head, data, path, size)
    else:
        yield from _jsonl_records(head, data, path, max_line_bytes, size)


def _not_data(path: str, why: str, hint: str | None = None) -> Diagnostic:
    """TS224 for a whole file. Never quotes the file, and has no line: nothing of it is shown."""
    return Diagnostic(
        "TS224",
        f"not a data file: {why}",
        Location(path),
        hint or "a data file holds JSON Lines (one JSON object per line), one JSON array of objects, or Parquet; check the path in the spec",
    )


def _jsonl_records(head: bytes, stream: Any, path: str, max_line_bytes: int, size: int) -> Iterator[Any]:
    loads = orjson.loads
    big = min(max_line_bytes, VALUES_CHECK_BYTES)
    line_no = 0
    pending = b""
    skipping = 0  # >0 while discarding an over-long line: bytes discarded so far
    chunk = head
    if chunk.startswith(BOM):
        yield _bom_warning(path)
        chunk = chunk[3:]
    while chunk:
        if skipping:
            cut = chunk.find(b"\n")
            if cut < 0:
                skipping += len(chunk)
                chunk = _read(stream, path, size, line_no)
                if isinstance(chunk, Diagnostic):
                    yield chunk
                    return
                continue
            line_no += 1
            yield _too_long(path, line_no, skipping + cut, max_line_bytes)
            skipping = 0
            chunk = chunk[cut + 1 :]
        lines = chunk.split(b"\n")
        if pending:
            lines[0] = pending + lines[0]
        pending = lines.pop()
        if len(lines) > (len(chunk) // SPARSE_LINE_BYTES) + 1:
            # Many short lines (blank lines, or tiny records): visit only the non-blank ones.
            yield from _sparse_lines(chunk, lines[0], line_no, path, max_line_bytes)
            line_no += len(lines)
        else:
            for line in lines:
                line_no += 1
                if len(line) > big:
                    problem = _big_line_problem(line, path, line_no, max_line_bytes)
                    if problem is not None:
                        yield problem
                        continue
                try:
                    yield line_no, loads(line)
                except orjson.JSONDecodeError as exc:
                    problem = _parse_problem(line, exc, path, line_no, last=False)
                    if problem is not None:
                        yield problem
        if len(pending) > max_line_bytes:
            skipping, pending = len(pending), b""
        chunk = _read(stream, path, size, line_no)
        if isinstance(chunk, Diagnostic):
            yield chunk
            return
    if skipping:
        yield _too_long(path, line_no + 1, skipping, max_line_bytes)
    elif pending:
        line_no += 1
        problem = _big_line_problem(pending, path, line_no, max_line_bytes) if len(pending) > big else None
        if problem is not None:
            yield problem
            return
        try:
            yield line_no, loads(pending)
        except orjson.JSONDecodeError as exc:
            problem = _parse_problem(pending, exc, path, line_no, last=True)
            if problem is not None:
                yield problem


def _sparse_lines(chunk: bytes, first: bytes, line_no: int, path: str, max_line_bytes: int) -> Iterator[Any]:
    """The complete lines of `chunk` (the first of which, `first`, may begin in the chunk
    before), skipping blank lines in C: only non-blank lines cost Python work."""
    item = _one_line(first, line_no + 1, path, max_line_bytes)
    if item is not None:
        yield item
    pos = chunk.find(b"\n") + 1  # start of the chunk's second line
    end = chunk.rfind(b"\n")  # the newline that ends its last complete line
    n = line_no + 2  # the line number of the line starting at pos
    search, count, find, rfind = _NON_BLANK.search, chunk.count, chunk.find, chunk.rfind
    while pos <= end:
        m = search(chunk, pos, end)
        if m is None:
            break
        at = m.start()
        start = rfind(b"\n", pos, at) + 1 or pos
        n += count(b"\n", pos, start)
        stop = find(b"\n", at, end + 1)
        item = _one_line(chunk[start:stop], n, path, max_line_bytes)
        if item is not None:
            yield item
        n += 1
        pos = stop + 1


def _one_line(line: bytes, line_no: int, path: str, max_line_bytes: int) -> Any:
    """One complete line: ``(line, record)``, a Diagnostic, or None (blank)."""
    if len(line) > min(max_line_bytes, VALUES_CHECK_BYTES):
        problem = _big_line_problem(line, path, line_no, max_line_bytes)
        if problem is not None:
            return problem
    try:
        return line_no, orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _parse_problem(line, exc, path, line_no, last=False)


def _big_line_problem(line: bytes, path: str, line_no: int, max_line_bytes: int) -> Diagnostic | None:
    """A line too long to read, or holding too many JSON values to parse; None if fine."""
    if len(line) > max_line_bytes:
        return _too_long(path, line_no, len(line), max_line_bytes)
    n = count_values(line)
    if n > MAX_RECORD_VALUES:
        return Diagnostic(
            "TS228",
            f"record holds {n:,} JSON values, over the limit of {MAX_RECORD_VALUES:,}; skipped",
            Location(path, line_no),
            "split the record; large media belongs in a file referenced with fileData/fileUri, or in one base64 string",
        )
    return None


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def count_values(text: bytes) -> int:
    """How many JSON values `text` holds, counted in C without parsing it.

    Every value but the outermost is an element of an array or object, and a container
    of k elements has k-1 commas, so values = 1 + commas + non-empty containers (counted
    as ``{`` and ``[`` less ``{}`` and ``[]``). Counted first over all bytes, strings
    included: an upper bound, exact when no string holds those characters. Only when that
    is over `MAX_RECORD_VALUES` are the characters inside strings taken off, string by
    string (a long text full of commas is still one value); a text with more strings
    than the limit holds too many values either way and is not walked.
    """
    n = _structure(text, 0, len(text))
    if n <= MAX_RECORD_VALUES or text.count(b'"') // 2 > MAX_RECORD_VALUES:
        return n
    for m in _JSON_STRING.finditer(text):
        start, end = m.span()
        if end - start > 2:
            n -= _structure(text, start, end) - 1
    return n


def _structure(text: bytes, start: int, end: int) -> int:
    containers = text.count(b"{", start, end) + text.count(b"[", start, end)
    empty = text.count(b"{}", start, end) + text.count(b"[]", start, end)
    return 1 + text.count(b",", start, end) + containers - empty


def _read(stream: Any, path: str, size: int, lines: int) -> bytes | Diagnostic:
    """The next chunk, or a Diagnostic saying why it cannot be read (and after how many
    lines). Messages never quote the file: gzip's own errors may hold some of its bytes."""
    after = f" after line {lines:,}" if lines else " at its start"
    before = f"; the {lines:,} lines before were read" if lines else ""
    try:
        return stream.read(size)
    except EOFError:
        # A .gz cut short loses its tail: say so instead of dropping it silently.
        return Diagnostic("TS220", f"compressed file ends early{after}{before}", Location(path), "the file is truncated; copy or compress it again")
    except gzip.BadGzipFile as exc:
        text = str(exc)
        if "CRC" in text or "length" in text:
            why = "its checksum does not match the data (the data is damaged)"
        elif "Not a gzipped file" in text:
            why = "data that is not gzip follows the compressed stream"
        else:
            why = "a gzip header is damaged"
        return Diagnostic("TS200", f"cannot decompress{after}: {why}{before}", Location(path), _GZ_HINT)
    except zlib.error as exc:
        reason = str(exc).rpartition("data: ")[2] or "invalid data"
        return Diagnostic("TS200", f"cannot decompress{after}: the compressed data is damaged ({reason}){before}", Location(path), _GZ_HINT)
    except OSError as exc:
        return Diagnostic("TS200", f"cannot read{after}: {exc.strerror or type(exc).__name__}{before}", Location(path), "check the file is complete and readable")
    except Exception as exc:  # a remote stream's own errors (network, service)
        return Diagnostic("TS200", f"cannot read{after}: {type(exc).__name__}{before}", Location(path), "check the file is complete and readable, and try again")


_GZ_HINT = "the .gz file is damaged: compress the data again (`gzip -t FILE` tests a file)"


def _parse_problem(line: bytes, exc: orjson.JSONDecodeError, path: str, line_no: int, last: bool) -> Diagnostic | None:
    """Why a line failed to parse, or None for a blank line (accepted)."""
    if not line.strip():
        return None
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Diagnostic(
            "TS202",
            f"invalid UTF-8 byte 0x{line[bad.start]:02x}",
            Location(path, line_no, bad.start + 1),
            "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        )
    if last:
        return Diagnostic(
            "TS220",
            f"last line is cut off: {exc.msg}",
            Location(path, line_no, exc.colno),
            "the file looks truncated (an interrupted write or copy); regenerate it or delete the partial line",
        )
    return Diagnostic("TS201", f"malformed JSON: {exc.msg}", Location(path, line_no, exc.colno), "each line must be one complete JSON object")


def _too_long(path: str, line_no: int, size: int, limit: int) -> Diagnostic:
    return Diagnostic(
        "TS221",
        f"line is {size / 2**20:.1f} MiB, over the {limit / 2**20:.1f} MiB record limit; skipped",
        Location(path, line_no),
        "reference large media with fileData/fileUri instead of inlining it, or split the record",
    )


def _bom_warning(path: str) -> Diagnostic:
    return Diagnostic(
        "TS219",
        "file starts with a UTF-8 byte order mark (ignored)",
        Location(path, 1, 1),
        "some services reject a BOM; save as UTF-8 without BOM",
        Severity.WARNING,
    )


# Structural characters of JSON outside strings, and what ends a string.
_STRUCT = re.compile(rb'[\[\]{}",]')
_STRING_END = re.compile(rb'["\\]')


def _array_records(head: bytes, stream: Any, path: str, size: int) -> Iterator[Any]:
    """The elements of a JSON array file. It is parsed whole, so it is bounded like one
    record: at most `MAX_ARRAY_BYTES` (decompressed) and `MAX_RECORD_VALUES` values."""
    chunks = [head]
    total = len(head)
    while True:
        chunk = _read(stream, path, size, 0)
        if isinstance(chunk, Diagnostic):
            yield chunk
            return
        if not chunk:
            break
        total += len(chunk)
        if total > MAX_ARRAY_BYTES:
            yield Diagnostic(
                "TS229",
                f"JSON array file is over {MAX_ARRAY_BYTES >> 20} MiB: too large to parse at once; not read",
                Location(path),
                "write the records as JSON Lines, one object per line (`jq -c '.[]' data.json > data.jsonl`), which streams at any size",
            )
            return
        chunks.append(chunk)
    text = b"".join(chunks)
    del chunks
    if text.startswith(BOM):
        yield _bom_warning(path)
        text = text[3:]
    n = count_values(text)
    if n > MAX_RECORD_VALUES:
        yield Diagnostic(
            "TS228",
            f"JSON array holds {n:,} JSON values, over the limit of {MAX_RECORD_VALUES:,} for a file parsed at once; not read",
            Location(path),
            "write the records as JSON Lines, one object per line (`jq -c '.[]' data.json > data.jsonl`), which streams at any size",
        )
        return
    try:
        records = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        bad = _parse_problem(text, exc, path, exc.lineno, last=False)
        if bad is not None:
            yield Diagnostic(bad.code, bad.message, Location(path, exc.lineno, exc.colno), "the file must hold one JSON array of records: [{...}, {...}]")
        return
    for line, record in zip(_element_lines(text), records):
        yield line, record


def _element_lines(text: bytes) -> Iterator[int]:
    """1-based line on which each top-level element of a valid JSON array starts."""
    depth, pos, line, line_pos = 0, 0, 1, 0
    expecting = False
    while True:
        m = _STRUCT.search(text, pos)
        if m is None:
            return
        ch, at = m.group(), m.start()
        if expecting and depth == 1:
            start = at if ch in b'{["' else _first_non_space(text, pos)
            line += text.count(b"\n", line_pos, start)
            line_pos = start
            yield line
            expecting = False
        if ch == b'"':
            pos = _string_end(text, at + 1)
            continue
        if ch in b"[{":
            depth += 1
            expecting = depth == 1
        elif ch in b"]}":
            depth -= 1
        elif ch == b"," and depth == 1:
            expecting = True
        pos = at + 1


def _first_non_space(text: bytes, pos: int) -> int:
    while text[pos : pos + 1] in (b" ", b"\t", b"\r", b"\n"):
        pos += 1
    return pos


def _string_end(text: bytes, pos: int) -> int:
    while True:
        m = _STRING_END.search(text, pos)
        if m is None:
            return len(text)
        if m.group() == b"\\":
            pos = m.start() + 2
            continue
        return m.start() + 1


def _parquet_records(stream: BinaryIO, path: str, sniff: bool = True) -> Iterator[Any]:
    if sniff:
        try:
            head = stream.read(SNIFF_BYTES)
            stream.seek(0)
        except Exception as exc:  # OSError, or a stream that cannot seek
            yield Diagnostic("TS200", f"cannot read Parquet file: {type(exc).__name__}", Location(path), "check the file is a complete Parquet file")
            return
        if head and not head.startswith(b"PAR1"):
            looks = describe_non_data(head)
            yield _not_data(
                path,
                "is named .parquet but is not a Parquet file" + (f"; it looks like {looks}" if looks else "; it looks like JSON"),
                "give the file the extension of its format (.jsonl, .json, .parquet)",
            )
            return
    try:
        import pyarrow.parquet as pq  # imported only when a Parquet file is read
    except ImportError:
        yield Diagnostic("TS200", "reading Parquet needs pyarrow", Location(path), "pip install pyarrow (or 'tunespec[local]')")
        return
    try:
        pf = pq.ParquetFile(stream)
        row = 0
        for batch in pf.iter_batches(batch_size=2048):
            for record in batch.to_pylist():
                row += 1
                yield row, record
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for damaged files
        yield Diagnostic("TS200", f"cannot read Parquet file: {exc}", Location(path), "check the file is a complete Parquet file")
