"""The data report: what validation learned about the data, for `plan`, `--output json`
and the run manifest. JSON-serialisable (pydantic)."""

from __future__ import annotations

import math
import os
from collections import Counter

from pydantic import BaseModel, Field

from tunespec import secrets


class SplitStats(BaseModel):
    examples: int = Field(0, description="Examples that parsed (including ones with rule problems).")
    tokens_total: int = Field(0, description="Tokens over all examples (before truncation). A preference pair counts both of "
                              "its sequences: prompt + preferred and prompt + non-preferred response.")
    tokens_p50: int = Field(0, description="Median tokens per example.")
    tokens_p95: int = Field(0, description="95th percentile of tokens per example.")
    tokens_max: int = Field(0, description="Longest example, in tokens.")
    over_length: int = Field(0, description="Examples longer than `data.max_seq_length` (what training does with them: "
                             "`DataReport.long_examples`); for a pair, either of its sequences.")
    tokens_after_truncation: int = Field(0, description="Tokens training will see over all examples: each cut to "
                                         "`data.max_seq_length` (text), an over-long example left out (media), or whole "
                                         "(a backend that does not cut), as `DataReport.long_examples` says.")


class DataFile(BaseModel):
    path: str
    split: str
    format: str | None = Field(description="Record format used (detected or from the spec); None if the file had no records.")
    bytes: int
    sha256: str = Field(description="Content hash that feeds the spec fingerprint (sha256 of the bytes, or the store's digest, e.g. `md5:...` for gs://).")
    examples: int = 0


class DataReport(BaseModel):
    splits: dict[str, SplitStats] = Field(default_factory=dict)
    max_seq_length: int
    long_examples: str = Field("truncated", description="What training does with an example over `max_seq_length`: "
                               "`truncated`, `dropped` (media examples: never cut through their media) or `kept` (the "
                               "backend trains it whole).")
    tokens_estimated: bool = Field(description="True when token counts are estimates (no tokenizer for this backend).")
    token_counter: str = Field(description="What counted the tokens.")
    trained_tokens: int = Field(0, description="Tokens the training will process: train tokens x epochs, or per `max_steps` when set.")
    trained_tokens_basis: str = ""
    duplicates_between_splits: int = Field(0, description="Validation examples whose content also appears in train.")
    files: list[DataFile] = Field(default_factory=list)
    problems: dict[str, int] = Field(default_factory=dict, description="Problems found, per diagnostic code (all of them, not only those listed).")
    errors: int = 0
    warnings: int = 0

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for the CLI's data table."""
        est = "~" if self.tokens_estimated else ""
        rows: list[tuple[str, str]] = []
        for split, s in self.splits.items():
            rows.append((f"{split} examples", f"{s.examples:,}"))
            rows.append(
                (f"{split} tokens/example", f"p50 {est}{s.tokens_p50:,}  p95 {est}{s.tokens_p95:,}  max {est}{s.tokens_max:,}")
            )
            rows.append((f"{split} tokens", f"{est}{s.tokens_total:,}"))
            if s.over_length:
                rows.append((f"{split} over max_seq_length", f"{s.over_length:,} ({self.over_length_fate()})"))
        rows.append(("trained tokens", f"{est}{self.trained_tokens:,} ({self.trained_tokens_basis})"))
        rows.append(("token counts", f"{'estimated' if self.tokens_estimated else 'exact'}: {self.token_counter}"))
        if "validation" in self.splits:
            rows.append(("duplicates train/validation", f"{self.duplicates_between_splits:,}"))
        for f in self.files:
            rows.append((f"file ({f.split})", f"{_display(f.path)}  {f.format or '-'}  {_size(f.bytes)}  {f.examples:,} examples  {f.sha256[:19]}"))
        if self.problems:
            rows.append(("problems", ", ".join(f"{code} x{n:,}" for code, n in sorted(self.problems.items()))))
        return rows


    def over_length_fate(self) -> str:
        if self.long_examples == "dropped":
            return "dropped from training"
        if self.long_examples == "kept":
            return "trained whole: this backend does not cut them"
        return f"truncated to {self.max_seq_length:,} tokens"


def _display(path: str) -> str:
    """A local path relative to the working directory when under it (shorter to read).
    A path made from an interpolated value is shown with its reference (a relative form
    would show part of the value)."""
    path = secrets.redact(path)
    if "://" in path or not os.path.isabs(path):
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


class TokenStats:
    """Accumulates token counts of one split in constant memory: a histogram of lengths
    (examples share lengths, so it stays small) gives exact percentiles."""

    def __init__(self, max_seq_length: int, long_examples: str = "truncated"):
        self.max_seq_length = max_seq_length
        self.long_examples = long_examples  # DataRules.long_examples: how an over-long example counts in `truncated_total`
        self.histogram: Counter[int] = Counter()
        self.examples = 0
        self.total = 0
        self.truncated_total = 0
        self.over = 0

    def add(self, counts: list[int]) -> None:
        limit = self.max_seq_length
        self.histogram.update(counts)
        self.examples += len(counts)
        total = sum(counts)
        self.total += total
        over = [c for c in counts if c > limit]
        self.over += len(over)
        self.truncated_total += total - sum(over) + sum(self.trained(c) for c in over)

    def add_one(self, count: int) -> None:
        self.histogram[count] += 1
        self.examples += 1
        self.total += count
        if count > self.max_seq_length:
            self.over += 1
        self.truncated_total += self.trained(count)

    def trained(self, count: int) -> int:
        """Tokens training sees of one sequence of `count` tokens."""
        if count <= self.max_seq_length or self.long_examples == "kept":
            return count
        return 0 if self.long_examples == "dropped" else self.max_seq_length

    def add_pair(self, chosen: int, rejected: int) -> None:
        """A preference pair: both of its sequences are trained on, so the example's tokens
        are their sum; each is truncated to `max_seq_length` on its own."""
        limit = self.max_seq_length
        self.histogram[chosen + rejected] += 1
        self.examples += 1
        self.total += chosen + rejected
        if chosen > limit or rejected > limit:
            self.over += 1
        self.truncated_total += self.trained(chosen) + self.trained(rejected)

    def merge(self, other: "TokenStats") -> None:
        self.histogram.update(other.histogram)
        self.examples += other.examples
        self.total += other.total
        self.truncated_total += other.truncated_total
        self.over += other.over

    def percentile(self, q: float) -> int:
        """Nearest-rank percentile (q in 0..100)."""
        if not self.examples:
            return 0
        rank = max(1, math.ceil(q / 100 * self.examples))
        seen = 0
        for length in sorted(self.histogram):
            seen += self.histogram[length]
            if seen >= rank:
                return length
        return max(self.histogram)

    def stats(self, examples: int) -> SplitStats:
        return SplitStats(
            examples=examples,
            tokens_total=self.total,
            tokens_p50=self.percentile(50),
            tokens_p95=self.percentile(95),
            tokens_max=max(self.histogram) if self.histogram else 0,
            over_length=self.over,
            tokens_after_truncation=self.truncated_total,
        )
