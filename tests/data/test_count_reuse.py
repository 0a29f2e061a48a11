"""Stored token counts replay exactly: what validation recorded for a file is what a later
validation of the unchanged file is given back, batch for batch, without counting."""

from __future__ import annotations

import array

from tunespec.data import Conversation, EstimatedTokenCounter, Part, Turn
from tunespec.data import reuse


def conversations(n: int) -> list[Conversation]:
    return [Conversation(system=[], turns=[Turn("user", [Part.of_text("word " * (i % 50))]), Turn("model", [Part.of_text(f"answer {i}")])])
            for i in range(n)]


def test_recorded_counts_pack_and_replay_in_the_same_batches():
    data = conversations(1000)
    recording = reuse.RecordingCounter(EstimatedTokenCounter())
    batches = [recording.count(data[i : i + 64]) for i in range(0, len(data), 64)]
    stored = reuse.pack(recording.counts)

    counts = reuse.unpack(stored)
    assert isinstance(counts, array.array) and counts.itemsize == 4  # compact: not a list of a million ints
    replay = reuse.ReplayCounter(counts, EstimatedTokenCounter())
    assert [replay.count(data[i : i + 64]) for i in range(0, len(data), 64)] == batches
    assert all(isinstance(b, list) for b in batches)
    assert len({tuple(b) for b in batches}) > 1  # the counts differ, so the comparison means something


def test_replay_past_the_stored_counts_counts_for_real():
    data = conversations(10)
    replay = reuse.ReplayCounter(reuse.unpack(reuse.pack([7] * 4)), EstimatedTokenCounter())
    assert replay.count(data[:4]) == [7, 7, 7, 7]
    assert replay.count(data[4:]) == EstimatedTokenCounter().count(data[4:])
