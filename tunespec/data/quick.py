"""Quick checks: prove a plain text example fine without building its `Conversation`.

Most lines of a real dataset are plain text examples that break no rule. For those,
building Part/Turn/Conversation objects only to find nothing wrong is most of the cost
of validation. A quick check reads the parsed record directly and answers either
`Plain` ("text only, starts with the user, alternates, ends with the model, no empty
text": it satisfies the strictest conversation rules, so no rule table can object to it)
or None ("not sure"), in which case the record takes the full path (convert, then every
rule), which is the authority and explains any problem. A quick check never reports.

Built-in formats have one (`quick_check_for`, by format class, so a plugin format that
reuses a built-in name is not mistaken for it); a plugin format has none and always
takes the full path. tests/data/test_quick.py holds every quick check to
the full path on many generated and mutated records.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from tunespec.data.formats import GeminiFormat, OpenAIFormat, PromptCompletionFormat
from tunespec.spec.model import PromptCompletionFields


class Plain(NamedTuple):
    """A plain text example that breaks no conversation rule."""

    turns: int
    system: bool
    chars: int
    parts: int
    key: list[str] | None
    """Roles and texts in order (``Conversation.content_key`` before joining), when asked."""


def _text_ok(t: Any) -> bool:
    return type(t) is str and bool(t) and not t.isspace()


def gemini_quick(record: Any, fields: PromptCompletionFields, want_key: bool) -> Plain | None:
    if type(record) is not dict or "system_instruction" in record:
        return None
    contents = record.get("contents")
    if type(contents) is not list or not contents:
        return None
    key: list[str] | None = [] if want_key else None
    chars = n_parts = 0
    instruction = record.get("systemInstruction")
    if instruction is not None:
        parts = instruction.get("parts") if type(instruction) is dict else None
        if type(parts) is not list or not parts:
            return None
        for part in parts:
            text = part.get("text") if type(part) is dict else None
            if not _text_ok(text):
                return None
            chars += len(text)
            if key is not None:
                key += ("system", text)
        n_parts += len(parts)
    expected = "user"
    for content in contents:
        if type(content) is not dict or content.get("role") != expected:
            return None
        parts = content.get("parts")
        if type(parts) is not list or not parts:
            return None
        for part in parts:
            text = part.get("text") if type(part) is dict else None
            if type(text) is not str or not text or text.isspace():  # _text_ok, inlined: hot loop
                return None
            chars += len(text)
            if key is not None:
                key += (expected, text)
        n_parts += len(parts)
        expected = "model" if expected == "user" else "user"
    if expected != "user":  # the last turn was the user's
        return None
    return Plain(len(contents), instruction is not None, chars, n_parts, key)


_OPENAI_ROLES = {"user": "user", "assistant": "model"}


def openai_quick(record: Any, fields: PromptCompletionFields, want_key: bool) -> Plain | None:
    messages = record.get("messages") if type(record) is dict else None
    if type(messages) is not list:
        return None
    key: list[str] | None = [] if want_key else None
    chars = n_system = 0
    expected = "user"
    turns = 0
    for message in messages:
        if type(message) is not dict:
            return None
        content = message.get("content")
        if not _text_ok(content):
            return None
        role = message.get("role")
        if type(role) is not str:
            return None
        if role == "system" or role == "developer":
            if turns:
                return None
            n_system += 1
            role = "system"
        elif _OPENAI_ROLES.get(role) != expected:
            return None
        else:
            role = expected
            expected = "model" if expected == "user" else "user"
            turns += 1
        chars += len(content)
        if key is not None:
            key += (role, content)
    if turns == 0 or expected != "user":
        return None
    return Plain(turns, n_system > 0, chars, len(messages), key)


def prompt_completion_quick(record: Any, fields: PromptCompletionFields, want_key: bool) -> Plain | None:
    if type(record) is not dict:
        return None
    prompt, completion = record.get(fields.prompt), record.get(fields.completion)
    if not (_text_ok(prompt) and _text_ok(completion)):
        return None
    system = None
    if fields.system is not None and fields.system in record:
        system = record[fields.system]
        if not _text_ok(system):
            return None
    chars = len(prompt) + len(completion) + (len(system) if system is not None else 0)
    key = None
    if want_key:
        key = (["system", system] if system is not None else []) + ["user", prompt, "model", completion]
    return Plain(2, system is not None, chars, 2 + (system is not None), key)


QuickCheck = Callable[[Any, PromptCompletionFields, bool], "Plain | None"]

_QUICK_CHECKS: dict[type, QuickCheck] = {
    GeminiFormat: gemini_quick,
    OpenAIFormat: openai_quick,
    PromptCompletionFormat: prompt_completion_quick,
}


def quick_check_for(fmt: Any) -> QuickCheck | None:
    return _QUICK_CHECKS.get(type(fmt))
