"""The on-disk form of a tokenised split, written as a stream and read back by position.

One folder per split, named by its cache key (see cache.py)::

    tokens.bin    int32 token ids of every sequence, back to back (little-endian)
    mask.bin      one byte per token: 1 where the token is trained, 0 where it only gives context
    offsets.bin   int64 end offset of each sequence in tokens.bin (sequence i spans
                  [end[i-1], end[i]), end[-1] = 0)
    flags.bin     one byte per sequence: 1 where it was cut to max_seq_length
    meta.json     what the folder holds (sequences, examples, kind, skipped); written last

Multimodal splits (meta `media: true`) add the bytes of each sequence's media items
(images, audio, rendered PDF pages), decoded only when a batch needs them::

    media.bin         every item's bytes, back to back
    media_ends.bin    int64 end offset of each item in media.bin
    media_kinds.bin   one byte per item: b"i" image, b"a" audio
    media_index.bin   int64 end index of each sequence's items in media_ends.bin

A preference pair is two sequences, 2i (preferred) and 2i+1 (non-preferred).

Writing goes into a hidden temp folder beside the final one and ends with one rename, so a
reader sees a complete cache or none: a crash or Ctrl-C mid-write leaves only the temp
folder, which is not a cache (no reader looks at it; the next writer deletes it). Memory
while writing is one example plus the files' write buffers, whatever the split's size.

Reading (`EncodedSequences`) does three or four positioned reads (`os.pread`) per example
and keeps nothing else: the training loop's batching takes examples by index from it as
from a list. It pickles as its folder path, so DataLoader workers and Ray workers reopen
the files themselves.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterable

from tunespec.state.store import pid_alive
from tunespec_local.encode import IGNORE_INDEX, Encoded

FORMAT_VERSION = 1
META_FILE = "meta.json"
FILES = ("tokens.bin", "mask.bin", "offsets.bin", "flags.bin")
MEDIA_FILES = ("media.bin", "media_ends.bin", "media_kinds.bin", "media_index.bin")
_LITTLE = sys.byteorder == "little"


class SplitWriter:
    """Appends encoded examples (`Encoded`, or pairs with `.chosen`/`.rejected`) to a temp
    folder; `commit()` renames it into place. Use as a context manager: leaving it without
    `commit()` (an exception, Ctrl-C) deletes the temp folder."""

    def __init__(self, final: Path, pairs: bool):
        self.final = Path(final)
        self.pairs = pairs
        self.final.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(self.final)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.{os.getpid()}.", suffix=".tmp", dir=self.final.parent))
        self._files = {name: open(self.tmp / name, "wb", buffering=1 << 20) for name in FILES + MEDIA_FILES}
        self.end = 0
        self.media_end = 0
        self.media_items = 0
        self.has_media = False
        self.examples = 0
        self.sequences = 0
        self.tokens = 0

    def __enter__(self) -> "SplitWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()
        shutil.rmtree(self.tmp, ignore_errors=True)  # nothing left after a commit (renamed away)

    def add(self, example: Any) -> None:
        for sequence in ((example.chosen, example.rejected) if self.pairs else (example,)):
            self._add_sequence(sequence)
        self.examples += 1

    def _add_sequence(self, e: Encoded) -> None:
        ids = array.array("i", e.input_ids)
        if not _LITTLE:
            ids.byteswap()
        f = self._files
        f["tokens.bin"].write(ids.tobytes())
        f["mask.bin"].write(bytes(label != IGNORE_INDEX for label in e.labels))
        self.end += len(ids)
        f["offsets.bin"].write(struct.pack("<q", self.end))
        f["flags.bin"].write(b"\x01" if e.truncated else b"\x00")
        for data, kind in zip(e.media, e.media_kinds):
            self.has_media = True
            f["media.bin"].write(data)
            self.media_end += len(data)
            f["media_ends.bin"].write(struct.pack("<q", self.media_end))
            f["media_kinds.bin"].write(kind.encode())
            self.media_items += 1
        f["media_index.bin"].write(struct.pack("<q", self.media_items))
        self.sequences += 1
        self.tokens += len(ids)

    def commit(self, **extra: Any) -> Path:
        """Flush, write meta.json, rename into place. If another process committed the same
        key first, theirs stays (same inputs, same content) and this one is dropped."""
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
        self._close()
        meta = {"version": FORMAT_VERSION, "kind": "pairs" if self.pairs else "sequences", "examples": self.examples,
                "sequences": self.sequences, "tokens": self.tokens, **({"media": True} if self.has_media else {}), **extra}
        if not self.has_media:
            for name in MEDIA_FILES:
                (self.tmp / name).unlink()
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        try:
            os.rename(self.tmp, self.final)
        except OSError:
            if not is_complete(self.final):
                raise
        return self.final

    def _close(self) -> None:
        for f in self._files.values():
            if not f.closed:
                f.close()


def is_complete(folder: Path) -> bool:
    """A committed cache folder (meta.json is written last, just before the rename)."""
    try:
        return json.loads((Path(folder) / META_FILE).read_text()).get("version") == FORMAT_VERSION
    except (OSError, ValueError):
        return False


def remove_abandoned(final: Path) -> None:
    """Delete temp folders of `final` left by writers that died (SIGKILL, power loss)."""
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        pid = tmp.name[len(final.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    return pid == os.getpid() or pid_alive(pid)


class EncodedSequences(Sequence):
    """A committed split as a read-only sequence of `Encoded` (or pairs), read on demand."""

    def __init__(self, folder: str | Path):
        self.folder = str(folder)
        meta = json.loads((Path(folder) / META_FILE).read_text())
        self.pairs = meta["kind"] == "pairs"
        self.has_media = bool(meta.get("media"))
        self.examples = int(meta["examples"])
        self.meta = meta
        self._fds: dict[str, int] | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.examples

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.examples))]
        if index < 0:
            index += self.examples
        if not 0 <= index < self.examples:
            raise IndexError(index)
        if not self.pairs:
            return self._sequence(index)
        from tunespec_local.training.objectives import EncodedPair

        return EncodedPair(self._sequence(2 * index), self._sequence(2 * index + 1))

    def _sequence(self, s: int) -> Encoded:
        fds = self._open()
        if s == 0:
            start, end = 0, struct.unpack("<q", os.pread(fds["offsets.bin"], 8, 0))[0]
        else:
            start, end = struct.unpack("<qq", os.pread(fds["offsets.bin"], 16, (s - 1) * 8))
        ids = array.array("i")
        ids.frombytes(os.pread(fds["tokens.bin"], (end - start) * 4, start * 4))
        if not _LITTLE:
            ids.byteswap()
        mask = os.pread(fds["mask.bin"], end - start, start)
        truncated = os.pread(fds["flags.bin"], 1, s) == b"\x01"
        input_ids = ids.tolist()
        labels = [token if trained else IGNORE_INDEX for token, trained in zip(input_ids, mask)]
        if not self.has_media:
            return Encoded(input_ids, labels, truncated)
        return Encoded(input_ids, labels, truncated, *self._media(s, fds))

    def _media(self, s: int, fds: dict[str, int]) -> tuple[tuple[bytes, ...], str]:
        """The bytes and kinds of sequence `s`'s media items."""
        first = 0 if s == 0 else struct.unpack("<q", os.pread(fds["media_index.bin"], 8, (s - 1) * 8))[0]
        last = struct.unpack("<q", os.pread(fds["media_index.bin"], 8, s * 8))[0]
        if last == first:
            return (), ""
        starts = [0] if first == 0 else list(struct.unpack("<q", os.pread(fds["media_ends.bin"], 8, (first - 1) * 8)))
        ends = list(struct.unpack(f"<{last - first}q", os.pread(fds["media_ends.bin"], 8 * (last - first), first * 8)))
        bounds = list(zip(starts + ends[:-1], ends))
        kinds = os.pread(fds["media_kinds.bin"], last - first, first).decode()
        return tuple(os.pread(fds["media.bin"], end - start, start) for start, end in bounds), kinds

    def _open(self) -> dict[str, int]:
        # File descriptors are per process: a forked DataLoader worker opens its own.
        if self._fds is None or self._pid != os.getpid():
            names = FILES + MEDIA_FILES if self.has_media else FILES
            self._fds = {name: os.open(os.path.join(self.folder, name), os.O_RDONLY) for name in names}
            self._pid = os.getpid()
        return self._fds

    def close(self) -> None:
        if self._fds is not None and self._pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"])

    def __repr__(self) -> str:
        return f"EncodedSequences({self.folder!r}, {self.examples} {'pairs' if self.pairs else 'examples'})"


def write_split(final: Path, examples: Iterable[Any], pairs: bool, **extra: Any) -> EncodedSequences:
    """Stream `examples` into the cache folder `final` and open it."""
    with SplitWriter(final, pairs) as writer:
        for example in examples:
            writer.add(example)
        writer.commit(**extra)
    return EncodedSequences(final)
