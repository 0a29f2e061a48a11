"""`tunespec predict`: prompts in, the tuned model's answers out, as JSONL.

Prompts are read streaming and sent in batches; each answer is written (and flushed) as
soon as its batch is done, so memory stays bounded and an interrupted prediction keeps
what it finished. The output is written beside its final name and renamed into place
when complete.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import orjson

from tunespec.diagnostics import Diagnostic, DiagnosticError, Location

if TYPE_CHECKING:
    from tunespec.backend import Backend, PredictOptions
    from tunespec.progress import Progress
    from tunespec.results import PromptItem, PublishedRun


def predict(run: "PublishedRun", backend: "Backend", prompts: Iterator["PromptItem"], output: Path, options: "PredictOptions",
            progress: "Progress", total: int | None = None) -> int:
    """Write one JSON line per prompt to `output`: `source` (file:line of the prompt),
    `messages`, `output`, and `reference` when the input had the answer. Returns how many."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        sink = open(partial, "wb")
    except OSError as exc:
        raise DiagnosticError(Diagnostic("TS007", f"cannot write {output}: {exc.strerror}", Location(str(output)), "choose a folder you can write")) from None
    predictor = backend.predictor(run, options)
    written = 0
    try:
        with sink, progress.task("generating", total=total) as task:
            for batch in _batches(prompts, options.batch_size):
                answers = predictor.generate([item.messages for item in batch])
                for item, answer in zip(batch, answers):
                    sink.write(orjson.dumps(_line(run, item, answer)) + b"\n")
                sink.flush()
                written += len(batch)
                task.advance(len(batch))
        os.replace(partial, output)
    finally:
        predictor.close()
        partial.unlink(missing_ok=True)
    return written


def _line(run: "PublishedRun", item: "PromptItem", answer: str) -> dict[str, Any]:
    line: dict[str, Any] = {"source": item.source, "messages": item.messages, "output": answer, "run_id": run.run_id}
    if item.reference is not None:
        line["reference"] = item.reference
    return line


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch


def count_prompts(path: str) -> int | None:
    """How many prompts `path` holds, for the progress bar (None when counting would mean
    reading it twice at length: more than 64 MiB)."""
    from tunespec.results import read_prompts

    if Path(path).stat().st_size > 64 << 20:
        return None
    return sum(1 for _ in read_prompts(path))
