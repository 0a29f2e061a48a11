"""Token counting for the data report: exact (a backend's tokenizer) or estimated.

A backend with the base model's tokenizer (the local backend) returns a `TokenCounter`
with ``exact = True`` from ``Backend.token_counter(spec)``. Otherwise tunespec uses
`EstimatedTokenCounter`, and every place that shows the counts says they are estimates
(``DataReport.tokens_estimated``).

The estimator: ``ceil(characters / 4)`` over the example's text (about 4 characters per token for
English text with BPE tokenizers; code, CJK and non-Latin scripts use more tokens per
character, so treat the figure as a lower bound there), plus 4 tokens of chat-template
overhead per turn and 2 per example, plus a fixed cost per media part (Gemini bills an
image at 258 tokens; audio, video and PDFs depend on duration or pages, which
validation does not read, so one mid-sized file's worth is assumed).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tunespec.data.conversation import Conversation
from tunespec.data.rules import media_kind

CHARS_PER_TOKEN = 4
TOKENS_PER_TURN = 4
TOKENS_PER_EXAMPLE = 2
TOKENS_PER_MEDIA = {"image": 258, "audio": 1920, "document": 1290, "video": 2630, None: 258}


@runtime_checkable
class TokenCounter(Protocol):
    exact: bool
    """True when counts come from the model's own tokenizer and chat template."""

    name: str
    """Shown in the report (e.g. the tokenizer's name)."""

    def count(self, conversations: list[Conversation]) -> list[int]:
        """Tokens of each example (whole sequence: template, system, every turn), in order."""


class EstimatedTokenCounter:
    """Counts without a tokenizer, at parsing speed (see the module docstring)."""

    exact = False
    name = "estimate (characters / 4)"

    def count(self, conversations: list[Conversation]) -> list[int]:
        return [estimate_tokens(c) for c in conversations]


def estimate_tokens(conversation: Conversation) -> int:
    chars = n_media = 0
    for part in conversation.system:
        if part.kind == "text":
            chars += len(part.text or "")
        else:
            n_media += 1
    for turn in conversation.turns:
        for part in turn.parts:
            if part.kind == "text":
                chars += len(part.text or "")
            elif part.value is not None:  # a function call or response: its JSON
                chars += len(part.value_text)
            else:
                n_media += 1
    return estimate_from(conversation, chars, n_media)


def estimate_from(conversation: Conversation, chars: int, n_media: int) -> int:
    """The estimate, given the example's characters of text and its number of media
    parts (validation gathers both while checking rules, so it does not walk twice)."""
    tokens = estimate_text(len(conversation.turns), bool(conversation.system), chars)
    if n_media:
        for _, part in conversation.parts():
            if part.kind != "text" and part.value is None:
                tokens += TOKENS_PER_MEDIA[media_kind(part.mime_type or "")]
    return tokens


def estimate_text(turns: int, has_system: bool, chars: int) -> int:
    """The estimate of a text-only example from its shape."""
    return TOKENS_PER_EXAMPLE + TOKENS_PER_TURN * (turns + (1 if has_system else 0)) + -(-chars // CHARS_PER_TOKEN)
