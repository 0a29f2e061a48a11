"""Tokenised splits cached on disk, keyed by everything that decides their tokens.

The key is a sha256 of: the split's data files (content hashes from the data report, and
formats), the spec's field mapping, the tokenizer (its full serialisation) and special
tokens, the chat template, `max_seq_length`, the objective (a preference pair is encoded
differently from a conversation) and the store's format version. Change any of them and
the key changes, so a stale cache is never read; unchanged inputs reuse the folder, so a
re-run (or a resumed run) does not tokenise again.

Where: `<cache root>/encoded/<key>/` (the model cache's root: `backend.cache_dir`,
$TUNESPEC_CACHE_DIR, or ~/.cache/tunespec).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from tunespec_local.encode import ChatTokenizer
from tunespec_local.encoded.store import FORMAT_VERSION, EncodedSequences, SplitWriter, is_complete

ENCODED_DIR = "encoded"
BATCH = 256
"""Conversations tokenised together (one `encode_batch`): all cores busy, little memory."""


def split_key(files: list[tuple[str, str | None]], fields: Any, tokenizer: ChatTokenizer, max_seq_length: int, objective: str,
              media: Any = None) -> str:
    """The cache key of one split (see the module docstring). `files`: (content hash, format).
    `media`: for multimodal data, what else decides the tokens (the processor's settings,
    how documents are read); media files themselves are named by the data files' content."""
    identity = {
        **({"media": media} if media is not None else {}),
        "version": FORMAT_VERSION,
        "files": [list(f) for f in files],
        "fields": fields,
        "tokenizer": tokenizer_digest(tokenizer),
        "max_seq_length": max_seq_length,
        "objective": objective,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:40]


_DIGESTS: dict[int, str] = {}


def tokenizer_digest(tokenizer: ChatTokenizer) -> str:
    """sha256 of what turns a conversation into tokens: the tokenizer's own serialisation
    (vocabulary, merges, normaliser...), its special tokens and the chat template."""
    cached = _DIGESTS.get(id(tokenizer))
    if cached is None:
        digest = hashlib.sha256(tokenizer.tokenizer.to_str().encode())
        digest.update(json.dumps([tokenizer.special_tokens, tokenizer.chat_template], sort_keys=True).encode())
        cached = _DIGESTS[id(tokenizer)] = digest.hexdigest()
    return cached


def cached_split(
    root: Path,
    key: str,
    conversations: Callable[[], Iterable[Any]],
    encode: Callable[[list[Any]], list[Any]],
    pairs: bool,
    log: Callable[[str], None],
    what: str,
) -> EncodedSequences:
    """The split's cache folder, built now if it is not there yet: `conversations()` streamed
    through `encode` (a batch of conversations -> their encodings) `BATCH` at a time,
    dropping examples with nothing to train (and multimodal ones that do not fit: `encode`
    gives None for them)."""
    folder = Path(root) / ENCODED_DIR / key
    if is_complete(folder):
        split = EncodedSequences(folder)
        log(f"{what}: {len(split):,} tokenised examples reused from {folder}")
        return split
    started = time.perf_counter()
    skipped = 0
    with SplitWriter(folder, pairs) as writer:
        stream = iter(conversations())
        while batch := list(itertools.islice(stream, BATCH)):
            for encoded in encode(batch):
                if encoded is None or encoded.trained_tokens == 0:
                    skipped += 1
                else:
                    writer.add(encoded)
        writer.commit(skipped=skipped)
    split = EncodedSequences(folder)
    log(f"{what}: {len(split):,} examples tokenised in {time.perf_counter() - started:.1f} s, cached in {folder}")
    return split
