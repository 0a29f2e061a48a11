"""The quick checks may only ever say "fine" about records the full path finds fine, with
the same token estimate and duplicate key; they must also say it often enough to matter."""

from __future__ import annotations

import copy
import random

import pytest

from tunespec.data.checks import inspect_conversation
from tunespec.data.formats import GeminiFormat, OpenAIFormat, PromptCompletionFormat
from tunespec.data.quick import quick_check_for
from tunespec.data.rules import rules_for
from tunespec.data.tokens import estimate_from, estimate_text
from tunespec.diagnostics import DiagnosticError
from tunespec.spec.model import PromptCompletionFields

FIELDS = PromptCompletionFields(prompt="q", completion="a", system="s")
TEXTS = ["hello", "x", " ", "", "\n", "multi word text", 5, None, ["list"]]


def _gemini(rng):
    rec = {"contents": [{"role": ("user", "model")[i % 2], "parts": [{"text": rng.choice(TEXTS[:2] + TEXTS[5:6])} for _ in range(rng.randint(1, 2))]} for i in range(rng.choice((1, 2, 2, 4)))]}
    if rng.random() < 0.4:
        rec["systemInstruction"] = {"parts": [{"text": "sys"}]}
    return rec


def _openai(rng):
    msgs = [{"role": rng.choice(("system", "developer")), "content": "sys"}] if rng.random() < 0.4 else []
    msgs += [{"role": ("user", "assistant")[i % 2], "content": "text"} for i in range(rng.choice((1, 2, 2, 4)))]
    return {"messages": msgs}


def _pc(rng):
    rec = {"q": "prompt", "a": "answer"}
    if rng.random() < 0.4:
        rec["s"] = "sys"
    return rec


def _mutate(value, rng, depth=0):
    """Replace one random leaf or element with something plausible and wrong."""
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        action = rng.random()
        if action < 0.15:
            del value[key]
        elif action < 0.3 and key == "role":
            value[key] = rng.choice(["user", "model", "assistant", "system", "tool", None])
        elif action < 0.45:
            value[key] = rng.choice(TEXTS + [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}])
        else:
            _mutate(value[key], rng, depth + 1)
    elif isinstance(value, list) and value:
        action = rng.random()
        if action < 0.2:
            value.pop(rng.randrange(len(value)))
        elif action < 0.35:
            value.append(copy.deepcopy(rng.choice(value)))
        elif action < 0.45:
            value.reverse()
        else:
            _mutate(rng.choice(value), rng, depth + 1)


@pytest.mark.parametrize("fmt, make", [(GeminiFormat(), _gemini), (OpenAIFormat(), _openai), (PromptCompletionFormat(), _pc)])
def test_quick_check_agrees_with_the_full_path(fmt, make):
    rng = random.Random(1234)
    quick = quick_check_for(fmt)
    strict = rules_for("text")  # the strictest conversation rules; no media
    said_fine = full_fine = 0
    for i in range(3000):
        record = make(rng)
        for _ in range(rng.choice((0, 0, 1, 2))):
            _mutate(record, rng)
        plain = quick(record, FIELDS, True)
        try:
            conv = fmt.to_conversation(record, FIELDS)
            problems, chars, n_media = inspect_conversation(conv, strict, None)
        except DiagnosticError:
            conv, problems = None, ["format"]
        if not problems:
            full_fine += 1
        if plain is None:
            continue
        said_fine += 1
        assert conv is not None and not problems, (record, problems)
        assert n_media == 0
        assert estimate_text(plain.turns, plain.system, plain.chars) == estimate_from(conv, chars, 0), record
        assert "\x1e".join(plain.key) == conv.content_key(), record
        assert plain.parts == len(conv.system) + sum(len(t.parts) for t in conv.turns)
        assert plain.system == bool(conv.system) and plain.turns == len(conv.turns)
    # the quick path must take most of the records the full path finds fine
    assert said_fine > 0.8 * full_fine and said_fine > 300, (said_fine, full_fine)


def test_plugin_format_named_like_a_builtin_gets_no_quick_check():
    class NotGemini(GeminiFormat.__mro__[-1]):  # a plain object named "gemini"
        name = "gemini"

    assert quick_check_for(NotGemini()) is None and quick_check_for(GeminiFormat()) is not None
