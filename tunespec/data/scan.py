"""The per-example work of validation, shared by the in-process path and the parallel
workers: rules, duplicates between splits, token counting in batches, statistics."""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from tunespec.data.checks import FileReferences, inspect_conversation
from tunespec.data.conversation import Conversation
from tunespec.data.report import TokenStats
from tunespec.data.rules import DataRules
from tunespec.data.quick import quick_check_for
from tunespec.data.tokens import EstimatedTokenCounter, TokenCounter, estimate_from, estimate_text, estimate_tokens
from tunespec.diagnostics import Diagnostic, Location, Severity
from tunespec.spec.model import PromptCompletionFields

COUNT_BATCH = 1024


def located(d: Diagnostic, file: str | None, line: int | None) -> Diagnostic:
    """`d` (located by JSON path only) placed at file:line."""
    return Diagnostic(d.code, d.message, Location(file, line, d.location.column, d.location.path), d.hint, d.severity)


def content_key(conv: Conversation) -> bytes:
    """12-byte digest of an example's content: equal for the same example in any format."""
    return _key_digest(conv.content_key())


def _key_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def sequences(batch: list[Conversation]) -> list[Conversation]:
    """What a token counter counts for a batch: each conversation, and both sequences of a
    preference pair (prompt + preferred, prompt + non-preferred), in order."""
    if not any(conv.rejected is not None for conv in batch):
        return batch
    return [view for conv in batch for view in (conv.pair_views() if conv.rejected is not None else (conv,))]


class ExampleScan:
    """Checks and counts the examples of one split (or one byte range of a file).

    validation_keys: content keys of the validation split. While scanning validation
    they are collected into it; while scanning train, each example is looked up in it.
    None when the spec has no validation data.
    """

    def __init__(
        self,
        split: str,
        rules: DataRules,
        references: FileReferences | None,
        counter: TokenCounter,
        max_seq_length: int,
        validation_keys: set[bytes] | None,
        add: Callable[[Diagnostic], None],
        fields: PromptCompletionFields | None = None,
    ):
        self.split = split
        self.rules = rules
        self.references = references
        self.counter = counter
        self.max_seq_length = max_seq_length
        self.validation_keys = validation_keys
        self.add = add
        self.stats = TokenStats(max_seq_length, rules.long_examples or "truncated")
        self.examples = 0
        self.duplicates = 0
        self.batch: list[Conversation] = []
        self.estimating = type(counter) is EstimatedTokenCounter
        self.fields = fields or PromptCompletionFields()
        self.system_allowed = "system" in rules.allowed_roles
        self._pool: Any = None
        self._pending: tuple[list[Conversation], Any] | None = None

    def feed(self, conv: Conversation) -> None:
        self.examples += 1
        problems, chars, n_media = inspect_conversation(conv, self.rules, self.references)
        if problems:
            for d in problems:
                self.add(located(d, conv.file, conv.line))
        if self.validation_keys is not None:
            self._duplicate(content_key(conv), conv.file, conv.line)
        if conv.rejected is not None and self.estimating:
            chosen, rejected = conv.pair_views()
            self._pair(conv, estimate_tokens(chosen), estimate_tokens(rejected))
            return
        if self.estimating:
            # The built-in estimator needs only what the rule pass just gathered.
            n = estimate_from(conv, chars, n_media)
            self.stats.add_one(n)
            if n > self.max_seq_length or (self.rules.max_tokens_per_example is not None and n > self.rules.max_tokens_per_example):
                self._too_long(conv.file, conv.line, n)
            return
        self.batch.append(conv)
        if len(self.batch) >= COUNT_BATCH:
            self.flush(final=False)

    def quick_handler(self, fmt: Any, file: str) -> Callable[[Any, int], bool] | None:
        """For one file: a function that accounts for a plain text example straight from
        its record when the format's quick check proves it breaks no rule (True), or
        leaves it to the full path (False). None when there is no quick path: exact
        counters need the conversation, and plugin formats have no quick check."""
        # With `objective: preference`, a plain conversation breaks a rule (TS233): no quick path.
        check = quick_check_for(fmt) if self.estimating and self.rules.objective != "preference" else None
        if check is None:
            return None
        fields, want_key = self.fields, self.validation_keys is not None
        system_allowed = self.system_allowed
        max_parts = self.rules.max_parts_per_example
        limit = self.max_seq_length
        if self.rules.max_tokens_per_example is not None:
            limit = min(limit, self.rules.max_tokens_per_example)
        add_one = self.stats.add_one

        def handle(record: Any, line: int) -> bool:
            plain = check(record, fields, want_key)
            if plain is None or (plain.system and not system_allowed) or (max_parts is not None and plain.parts > max_parts):
                return False
            self.examples += 1
            if want_key:
                self._duplicate(_key_digest("\x1e".join(plain.key)), file, line)  # type: ignore[arg-type]
            n = estimate_text(plain.turns, plain.system, plain.chars)
            add_one(n)
            if n > limit:
                self._too_long(file, line, n)
            return True

        return handle

    def flush(self, final: bool = True) -> None:
        """Count the tokens of the pending batch (`final`: and wait for every count).

        An exact counter (a real tokenizer, native code that releases the GIL) counts on
        a helper thread while this thread parses the next batch; results are taken in
        order, so statistics and diagnostics are the same as counting inline.
        """
        batch, self.batch = self.batch, []
        if self.counter.exact:
            if self._pending is not None:
                self._absorb(*self._pending_result())
            if batch:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunespec-tokens")
                self._pending = (batch, self._pool.submit(self.counter.count, sequences(batch)))
            if final:
                if self._pending is not None:
                    self._absorb(*self._pending_result())
                if self._pool is not None:
                    self._pool.shutdown()
                    self._pool = None
        elif batch:
            self._absorb(batch, self.counter.count(sequences(batch)))

    def _pending_result(self) -> tuple[list[Conversation], list[int]]:
        batch, future = self._pending  # type: ignore[misc]
        self._pending = None
        return batch, future.result()

    def _absorb(self, batch: list[Conversation], counts: list[int]) -> None:
        """Statistics and length checks for a counted batch; `counts` has one count per
        conversation and two per preference pair (see `sequences`)."""
        limit = self.max_seq_length
        hard = self.rules.max_tokens_per_example
        if not any(conv.rejected is not None for conv in batch):
            self.stats.add(counts)
            for conv, n in zip(batch, counts):
                if n > limit or (hard is not None and n > hard):
                    self._too_long(conv.file, conv.line, n)
            return
        i = 0
        for conv in batch:
            if conv.rejected is None:
                self.stats.add_one(counts[i])
                if counts[i] > limit or (hard is not None and counts[i] > hard):
                    self._too_long(conv.file, conv.line, counts[i])
                i += 1
            else:
                self._pair(conv, counts[i], counts[i + 1])
                i += 2

    def _pair(self, conv: Conversation, chosen: int, rejected: int) -> None:
        """A pair trains on two sequences, prompt + each response: both count, and each
        must fit `max_seq_length` (and the backend's limit) on its own."""
        self.stats.add_pair(chosen, rejected)
        hard = self.rules.max_tokens_per_example
        for what, n in (("prompt + preferred response", chosen), ("prompt + non-preferred response", rejected)):
            if n > self.max_seq_length or (hard is not None and n > hard):
                self._too_long(conv.file, conv.line, n, what)

    def _too_long(self, file: str | None, line: int | None, n: int, what: str = "example") -> None:
        where = Location(file, line, None, "$")
        exact = self.counter.exact
        limit, hard = self.max_seq_length, self.rules.max_tokens_per_example
        if hard is not None and n > hard:
            # Over the backend's own limit: the service would drop or cut the example.
            # With estimated counts it is only a warning, the estimate may be off.
            severity = Severity.ERROR if exact else Severity.WARNING
            about = "" if exact else "about "
            self.add(Diagnostic("TS215", f"{what} is {about}{n:,} tokens, over this backend's limit of {hard:,}", where, "shorten or split the example", severity))
            return
        about = "" if exact else "~"
        message, hint = self._over_max_seq_length(limit)
        self.add(Diagnostic("TS215", f"{what} is {about}{n:,} tokens, over max_seq_length {limit:,}: {message}", where, hint, Severity.WARNING))

    def _over_max_seq_length(self, limit: int) -> tuple[str, str]:
        """What training does with an example over `max_seq_length` (`DataRules.long_examples`),
        and how to avoid it."""
        what = self.rules.long_examples
        if what == "kept":  # the backend's own limit (checked above, or by the backend) is what applies
            return ("this backend does not cut examples to max_seq_length, it trains on the whole example up to its own limit",
                    "set `data.max_seq_length` to the backend's limit (`plan` shows it) so validation checks the length it applies")
        if what == "dropped":
            media = {"image": "fewer or smaller images", "audio": "shorter audio clips", "document": "fewer PDF pages",
                     "video": "shorter videos"}
            fixes = ["raise `data.max_seq_length`", "shorten its text", *(f"use {media[kind]}" for kind in self.rules.media if kind in media)]
            return ("it will be dropped from training (an example with media is left out whole, never cut through its media tokens)",
                    ", ".join(fixes[:-1]) + ", or " + fixes[-1])
        return f"it will be truncated to its first {limit:,} tokens", "raise `data.max_seq_length` or shorten the example"

    def _duplicate(self, key: bytes, file: str | None, line: int | None) -> None:
        keys = self.validation_keys
        if self.split == "validation":
            keys.add(key)  # type: ignore[union-attr]
        elif key in keys:  # type: ignore[operator]
            self.duplicates += 1
            self.add(
                Diagnostic(
                    "TS218",
                    "this train example also appears in the validation data",
                    Location(file, line, None, "$"),
                    "remove it from one split so validation measures unseen examples",
                    Severity.WARNING,
                )
            )
