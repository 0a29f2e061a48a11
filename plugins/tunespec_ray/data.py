"""How the tokenised training data reaches the Ray workers without the driver holding it.

The driver tokenises nothing into memory: `encode_data` streams each split into the local
backend's on-disk cache (tunespec_local.encoded) and the driver passes the workers the
cache's location, never the examples. Each worker reads, by positioned reads, only the
examples of its own share of each optimizer step (batching.rank_share): with W workers,
about 1/W of the data set over an epoch, a few examples in memory at a time. The order is
the local loop's, a pure function of (seed, step), so a worker group that Ray Train
restarts from a checkpoint continues at exactly the next step's examples.

Why not Ray Data's `streaming_split` (`TorchTrainer(datasets=...)` and
`ray.train.get_dataset_shard`): it hands blocks to whichever worker asks next, so which
examples a worker sees differs between attempts, and a group restarted from a checkpoint
would repeat some examples of the epoch and skip others. The loop's order needs random
access by index, which the cache gives with one positioned read per file.

Where the workers find the cache:

- an embedded cluster (the workers run on this machine): the cache folder itself;
- an existing cluster: the driver may be elsewhere (Ray Client) and the nodes need not
  share a file system, so the cache's files travel through Ray's object store in chunks of
  `CHUNK_BYTES` (`ship`: one chunk in the driver's memory at a time; the object store
  spills to disk) and each worker writes them to its node's local disk (`receive`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunespec_local.encoded import EncodedSequences
from tunespec_local.encoded.store import FILES, MEDIA_FILES, META_FILE
from tunespec_local.training import TrainData

CHUNK_BYTES = 64 << 20


@dataclass
class ShippedSplit:
    """A cache folder as object-store chunks: file name -> chunk references, in order."""

    name: str
    chunks: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class ShippedData:
    train: ShippedSplit
    validation: ShippedSplit | None


def ship(data: TrainData) -> ShippedData:
    """Put both splits' cache files in the object store, a chunk at a time."""
    validation = data.validation if isinstance(data.validation, EncodedSequences) and len(data.validation) else None
    return ShippedData(ship_split(data.train), ship_split(validation) if validation is not None else None)


def ship_split(split: EncodedSequences) -> ShippedSplit:
    import ray

    folder = Path(split.folder)
    shipped = ShippedSplit(folder.name)
    for name in (*FILES, *(MEDIA_FILES if split.has_media else ()), META_FILE):
        refs = []
        with open(folder / name, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                refs.append(ray.put(chunk))
        shipped.chunks[name] = refs
    return shipped


def worker_data(value: Any, scratch: Path) -> TrainData:
    """The training data on a worker: the cache folders as they are (embedded cluster), or
    the shipped chunks written to this node's disk under `scratch` (existing cluster)."""
    if isinstance(value, ShippedData):
        validation = receive(value.validation, scratch) if value.validation is not None else []
        return TrainData(receive(value.train, scratch), validation)
    return value


def receive(shipped: ShippedSplit, scratch: Path) -> EncodedSequences:
    """Write a shipped split's chunks into `scratch/<name>/` (temp folder + rename) and open it."""
    import ray

    final = Path(scratch) / shipped.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{shipped.name}.", dir=scratch))
    try:
        for name, refs in shipped.chunks.items():
            with open(tmp / name, "wb") as f:
                for ref in refs:
                    f.write(ray.get(ref))  # one chunk in memory at a time
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return EncodedSequences(final)
