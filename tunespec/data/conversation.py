"""tunespec's one internal conversation model: every data format converts into it.

Kept deliberately small (slotted dataclasses, no validation on construction) because
validation builds one `Conversation` per data line and must run near JSON-parse speed.
Roles are tunespec's own: ``user`` and ``model`` (OpenAI's ``assistant`` becomes
``model``); system instructions live in `Conversation.system`, not in `turns`.

Every piece remembers where it came from (data file, line, JSON path), so a rule that
fails on a part can point at ``train.jsonl:12 [$.contents[1].parts[0]]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

PartKind = Literal["text", "file", "inline", "function_call", "function_response"]
FUNCTION_KINDS = ("function_call", "function_response")
Role = Literal["system", "user", "model"]


@dataclass(slots=True)
class Part:
    """One piece of a turn: text, a reference to a file, inline (base64) data, or a
    function call / function response (Gemini function-calling examples).

    kind:      ``text`` | ``file`` (``uri`` names it) | ``inline`` (``data`` holds base64)
               | ``function_call`` | ``function_response`` (``value`` holds the object)
    text:      the text, for ``text`` parts
    mime_type: the MIME type, for ``file`` and ``inline`` parts
    uri:       ``gs://...``, ``https://...`` or a local path (relative to the data file
               or the spec), for ``file`` parts
    size:      decoded size in bytes, for ``inline`` parts (computed without decoding)
    data:      the base64 text as it appeared in the record, for ``inline`` parts (kept
               by reference, so writers can reproduce it; never decoded by validation)
    where/at:  where the part is in its record: the JSON path ``where`` itself
               (``"$.prompt"``), or a %-template filled with the ``at`` indices
               (``"$.contents[%d].parts[%d]"``, ``(1, 0)``). Formats fill the template so
               that no path string is built unless a problem is reported; read `path`.
    value:     the `functionCall` / `functionResponse` object as it appeared in the record
               (``{"name": ..., "args": ...}``), kept verbatim for writers
    """

    kind: PartKind
    text: str | None = None
    mime_type: str | None = None
    uri: str | None = None
    size: int | None = None
    data: str | None = None
    where: str = "$"
    at: tuple[int, ...] | None = None
    value: dict[str, Any] | None = None

    @property
    def value_text(self) -> str:
        """A function part's object as compact JSON (what counts toward its tokens)."""
        return orjson.dumps(self.value, option=orjson.OPT_SORT_KEYS).decode() if self.value is not None else ""

    @property
    def path(self) -> str:
        """JSON path of the part inside its record, e.g. ``$.contents[1].parts[0]``."""
        return self.where if self.at is None else self.where % self.at

    @classmethod
    def of_text(cls, text: str, where: str = "$", at: tuple[int, ...] | None = None) -> "Part":
        return cls("text", text, None, None, None, None, where, at)

    @classmethod
    def of_file(cls, mime_type: str, uri: str, where: str = "$", at: tuple[int, ...] | None = None) -> "Part":
        return cls("file", None, mime_type, uri, None, None, where, at)

    @classmethod
    def of_inline(cls, mime_type: str, data: str, where: str = "$", at: tuple[int, ...] | None = None) -> "Part":
        return cls("inline", None, mime_type, None, base64_decoded_size(data), data, where, at)


@dataclass(slots=True)
class Turn:
    """One message: who speaks (``user`` or ``model``) and what they say.

    where/at locate the message in its record like `Part` (``"$.messages[%d]"``, ``(2,)``).
    """

    role: Role
    parts: list[Part]
    where: str = "$"
    at: tuple[int, ...] | None = None

    @property
    def path(self) -> str:
        return self.where if self.at is None else self.where % self.at


@dataclass(slots=True)
class Conversation:
    """One training example: optional system instruction, then alternating turns.

    file/line say where the record is (line is the 1-based line of a JSONL file, the
    element's first line in a JSON array file, or the 1-based row of a Parquet file).

    A preference pair is a conversation whose last turn is the preferred model response
    and whose `rejected` turn is the non-preferred response to the same prompt (every turn
    before the last). Everything that reads conversations sees the preferred one, so the
    conversation rules apply to prompt + preferred response; `pair_views` gives both.
    """

    turns: list[Turn]
    system: list[Part] = field(default_factory=list)
    file: str | None = None
    line: int | None = None
    format: str | None = None
    rejected: Turn | None = None
    """The non-preferred model response of a preference pair; None for a plain conversation."""
    extra: dict[str, Any] | None = None
    """Top-level fields of the record besides the conversation itself (Gemini's `tools`,
    `generationConfig`...), kept verbatim so that a writer reproduces the whole example."""

    @property
    def is_pair(self) -> bool:
        return self.rejected is not None

    @property
    def prompt_turns(self) -> list[Turn]:
        """A pair's prompt: every turn before the preferred response."""
        return self.turns[:-1]

    def pair_views(self) -> tuple["Conversation", "Conversation"]:
        """A pair as two plain conversations: prompt + preferred, prompt + non-preferred."""
        assert self.rejected is not None
        chosen = Conversation(self.turns, self.system, self.file, self.line, self.format)
        rejected = Conversation([*self.turns[:-1], self.rejected], self.system, self.file, self.line, self.format)
        return chosen, rejected

    def texts(self) -> list[str]:
        """Every text in the example, system first (what a tokenizer sees, minus template)."""
        out = [p.text for p in self.system if p.text is not None]
        for turn in self.turns:
            out.extend(p.text if p.text is not None else p.value_text for p in turn.parts if p.text is not None or p.value is not None)
        return out

    def parts(self):
        """Every part with the role it belongs to (``system`` for the system instruction)."""
        for p in self.system:
            yield "system", p
        for turn in self.turns:
            for p in turn.parts:
                yield turn.role, p

    def content_key(self) -> str:
        """A canonical text of the example's content (roles, texts, file URIs), used to
        find the same example in two splits whatever format or whitespace it was in."""
        out = []
        parts = list(self.parts())
        if self.rejected is not None:  # a pair differs from another by either response
            parts += [("rejected", p) for p in self.rejected.parts]
        for role, p in parts:
            out.append(role)
            if p.kind == "text":
                out.append(p.text)
            elif p.value is not None:
                out.append(f"<{p.kind}:{p.value_text}>")
            else:
                # Inline media by a digest of its data: two different images of the same size
                # are not the same example.
                out.append(f"<{p.kind}:{p.mime_type}:{p.uri or _digest(p.data)}>")
        return "\x1e".join(out)  # type: ignore[arg-type]


def _digest(data: str | None) -> str:
    import hashlib

    return hashlib.blake2b((data or "").encode(), digest_size=16).hexdigest()


def base64_decoded_size(data: str) -> int:
    """Bytes that base64 text decodes to, computed from its length (no decoding)."""
    n = len(data)
    if n == 0:
        return 0
    padding = 2 if data.endswith("==") else (1 if data.endswith("=") else 0)
    return (n * 3) // 4 - padding
