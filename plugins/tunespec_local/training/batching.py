"""Which examples each optimizer step sees, and how they become tensors.

Data order: epoch `e` visits the training examples in a permutation drawn from
`Random(seed + e)`; step `s` of the run takes the next `batch_size` examples of its
epoch. The order is a pure function of (seed, step), so a resumed run sees exactly the
batches the uninterrupted run would have, whatever the number of workers: worker `r` of
`W` takes every W-th example of the step's batch.

Collation, two ways:

- packing (default): a micro-batch is one row of all its examples back to back, with
  `position_ids` restarting at 0 for each example and no attention mask. transformers
  turns restarting positions into a block-diagonal causal mask (flash-attention's
  varlen kernel on GPU, `find_packed_sequence_indices` for SDPA/eager), so no token
  attends to another example; the first label of every example is ignored, so no token
  is trained to predict the next example. No padding at all: every token is real.
- padding: rows padded to the longest example in the micro-batch, with an attention
  mask and ignored labels on the padding.
"""

from __future__ import annotations

import array
import functools
import random
from typing import Iterator, Sequence

from tunespec_local.encode import IGNORE_INDEX, Encoded


@functools.lru_cache(maxsize=2)
def epoch_order(num_examples: int, seed: int, epoch: int) -> Sequence[int]:
    """The epoch's permutation of example indices. Drawn once per epoch (not once per step:
    at a million examples a shuffle costs about a second) and held as 8 bytes per example
    (a list of ints would take 36); the same shuffle of the same generator, so the order
    is the one a list would get."""
    order = array.array("q", range(num_examples))
    random.Random(seed + epoch).shuffle(order)
    return order


def step_examples(num_examples: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Indices of the examples optimizer step `step` (0-based, over the whole run) trains on."""
    per_epoch = max(1, -(-num_examples // batch_size))
    epoch, index = divmod(step, per_epoch)
    order = epoch_order(num_examples, seed, epoch)
    return order[index * batch_size : (index + 1) * batch_size].tolist()


def rank_share(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    return list(indices[rank::world_size])


def micro_batches(indices: Sequence[int], micro_batch_size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), micro_batch_size):
        yield list(indices[start : start + micro_batch_size])


def most_micro_batches(examples: int, world_size: int, micro_batch_size: int) -> int:
    """Micro-batches of the worker with the largest share of `examples` (at least 1): every
    worker makes this many forwards (padding with zero-weighted ones), because with FSDP
    each forward is a collective that every worker must join."""
    largest_share = -(-examples // world_size)
    return max(1, -(-largest_share // micro_batch_size))


def collate(examples: Sequence[Encoded], packing: bool, pad_token_id: int) -> dict:
    """Tensors for one forward pass (see the module docstring)."""
    import torch

    if packing:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for e in examples:
            input_ids.extend(e.input_ids)
            labels.append(IGNORE_INDEX)  # never predict an example's first token from the previous one
            labels.extend(e.labels[1:])
            positions.extend(range(len(e)))
        return {
            "input_ids": torch.tensor([input_ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
        }
    width = max(len(e) for e in examples)
    input_ids_rows, labels_rows, mask_rows = [], [], []
    for e in examples:
        pad = width - len(e)
        input_ids_rows.append(e.input_ids + [pad_token_id] * pad)
        labels_rows.append(e.labels + [IGNORE_INDEX] * pad)
        mask_rows.append([1] * len(e) + [0] * pad)
    return {
        "input_ids": torch.tensor(input_ids_rows),
        "labels": torch.tensor(labels_rows),
        "attention_mask": torch.tensor(mask_rows),
    }


def real_tokens(batch: dict) -> int:
    """Tokens of actual examples in a collated batch (padding excluded)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())
