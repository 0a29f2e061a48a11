"""Preference-pair formats: a prompt, a preferred response and a non-preferred one.

Each format converts a record into a `Conversation` whose last turn is the preferred
response and whose `rejected` turn is the non-preferred one (see
`tunespec.data.conversation`), so every conversation rule, token count, duplicate check
and writer works on pairs too. Built-ins, detected from the first record like the others:

- ``openai_preference``: OpenAI's preference (DPO) fine-tuning JSONL::

      {"input": {"messages": [{"role": "user", "content": "..."}]},
       "preferred_output": [{"role": "assistant", "content": "..."}],
       "non_preferred_output": [{"role": "assistant", "content": "..."}]}

- ``prompt_chosen_rejected``: the layout of TRL and most open datasets, plain
  (``{"prompt": "...", "chosen": "...", "rejected": "..."}``), conversational (``prompt``
  a list of messages, ``chosen``/``rejected`` lists of one assistant message), or with
  the prompt implicit (``chosen``/``rejected`` whole conversations that share every
  message but the last).

- ``gemini_preference``: Vertex AI preference tuning for Gemini::

      {"system_instruction": {"parts": [{"text": "..."}]},
       "contents": [{"role": "user", "parts": [{"text": "..."}]}],
       "completions": [{"score": 1, "completion": {"role": "model", "parts": [{"text": "..."}]}},
                       {"score": 0, "completion": {"role": "model", "parts": [{"text": "..."}]}}]}

What is format-specific is checked here (both responses present, one response each, the
same prompt for an implicit prompt, Gemini's scores); the rules every pair shares (the
two responses differ, the spec's objective takes pairs) are in `tunespec.data.checks`.
"""

from __future__ import annotations

from typing import Any

from tunespec.data.conversation import Conversation, Part, Turn
from tunespec.data.formats import GeminiFormat, _not_object, _problem, gemini_content, gemini_contents, gemini_system, openai_messages
from tunespec.diagnostics import Diagnostic, DiagnosticError
from tunespec.spec.model import PromptCompletionFields

BOTH_RESPONSES = "a preference pair needs a preferred and a non-preferred response"


class OpenAIPreferenceFormat:
    """OpenAI preference fine-tuning records (``input``, ``preferred_output``, ``non_preferred_output``)."""

    name = "openai_preference"

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        return isinstance(record, dict) and "input" in record and ("preferred_output" in record or "non_preferred_output" in record)

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if type(record) is not dict:
            raise DiagnosticError(_not_object(record, "OpenAI preference", "input"))
        problems: list[Diagnostic] = []
        given = record.get("input")
        messages = given.get("messages") if type(given) is dict else None
        system: list[Part] = []
        turns: list[Turn] = []
        if type(messages) is not list:
            problems.append(_problem("TS203", "`input.messages` is missing or not a list", "$.input.messages",
                                     'write {"input": {"messages": [{"role": "user", "content": "..."}]}, ...}'))
        else:
            system, turns = openai_messages(messages, "$.input.messages", problems)
        preferred = _openai_response(record, "preferred_output", problems)
        rejected = _openai_response(record, "non_preferred_output", problems)
        if problems:
            raise DiagnosticError(problems)
        return Conversation([*turns, preferred], system, None, None, self.name, rejected)  # type: ignore[list-item]


def _openai_response(record: dict, key: str, problems: list[Diagnostic]) -> Turn | None:
    """`preferred_output` / `non_preferred_output`: a list holding one assistant message."""
    value = record.get(key)
    example = f'write "{key}": [{{"role": "assistant", "content": "..."}}]'
    if value is None:
        problems.append(_problem("TS203", f"`{key}` is missing: {BOTH_RESPONSES}", f"$.{key}", example))
        return None
    if type(value) is not list or len(value) != 1:
        what = f"a list of {len(value)} messages" if type(value) is list else f"a {type(value).__name__}"
        problems.append(_problem("TS203", f"`{key}` is {what}; expected a list of exactly one assistant message", f"$.{key}", example))
        return None
    system, turns = openai_messages(value, f"$.{key}", problems)
    if system or (turns and turns[0].role != "model"):
        problems.append(_problem("TS210", f"the message in `{key}` must have role `assistant`", f"$.{key}[0].role", example))
        return None
    return turns[0] if turns else None


class PromptChosenRejectedFormat:
    """``prompt`` / ``chosen`` / ``rejected`` records, plain or conversational (TRL's layout)."""

    name = "prompt_chosen_rejected"

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        return isinstance(record, dict) and "chosen" in record and "rejected" in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if type(record) is not dict:
            raise DiagnosticError(_not_object(record, "prompt/chosen/rejected", "chosen"))
        problems: list[Diagnostic] = []
        prompt = record.get("prompt")
        if "prompt" not in record:
            conversation = _implicit_prompt(record, problems)
        elif type(prompt) is str:
            conversation = _plain(record, problems)
        elif type(prompt) is list:
            conversation = _conversational(record, problems)
        else:
            problems.append(_problem("TS203", f"`prompt` is a {type(prompt).__name__}; expected a string or a list of messages", "$.prompt"))
            conversation = None
        if problems or conversation is None:
            raise DiagnosticError(problems)
        return conversation


def _plain(record: dict, problems: list[Diagnostic]) -> Conversation | None:
    """``{"prompt": str, "chosen": str, "rejected": str}``."""
    responses = []
    for key in ("chosen", "rejected"):
        value = record.get(key)
        if type(value) is not str:
            found = "missing" if value is None else f"a {type(value).__name__}"
            problems.append(_problem("TS203", f"`{key}` is {found}; with a text `prompt` it must be text too ({BOTH_RESPONSES})", f"$.{key}"))
            continue
        responses.append(Turn("model", [Part.of_text(value, f"$.{key}")], f"$.{key}"))
    if problems:
        return None
    prompt = Turn("user", [Part.of_text(record["prompt"], "$.prompt")], "$.prompt")
    return Conversation([prompt, responses[0]], [], None, None, PromptChosenRejectedFormat.name, responses[1])


def _conversational(record: dict, problems: list[Diagnostic]) -> Conversation | None:
    """``prompt`` a list of messages; ``chosen`` and ``rejected`` one assistant message each."""
    system, turns = openai_messages(record["prompt"], "$.prompt", problems)
    responses = [_one_message(record, key, problems) for key in ("chosen", "rejected")]
    if problems or None in responses:
        return None
    return Conversation([*turns, responses[0]], system, None, None, PromptChosenRejectedFormat.name, responses[1])  # type: ignore[list-item]


def _one_message(record: dict, key: str, problems: list[Diagnostic]) -> Turn | None:
    value = record.get(key)
    if type(value) is not list or len(value) != 1:
        what = "missing" if value is None else (f"a list of {len(value)} messages" if type(value) is list else f"a {type(value).__name__}")
        problems.append(_problem("TS203", f"`{key}` is {what}; with a list `prompt` it must be a list of one assistant message",
                                 f"$.{key}", f'write "{key}": [{{"role": "assistant", "content": "..."}}]'))
        return None
    system, turns = openai_messages(value, f"$.{key}", problems)
    if system or (turns and turns[0].role != "model"):
        problems.append(_problem("TS210", f"the message in `{key}` must have role `assistant`", f"$.{key}[0].role"))
        return None
    return turns[0] if turns else None


def _implicit_prompt(record: dict, problems: list[Diagnostic]) -> Conversation | None:
    """``chosen`` and ``rejected`` whole conversations: the same prompt (every message but
    the last), then each its own assistant answer."""
    parsed = {}
    for key in ("chosen", "rejected"):
        value = record.get(key)
        if type(value) is not list or len(value) < 2:
            problems.append(_problem("TS203", f"`{key}` must be a conversation (a list of messages ending with the assistant's answer) "
                                     "when there is no `prompt` field", f"$.{key}", "or give the shared prompt in `prompt`"))
            continue
        parsed[key] = (value, openai_messages(value, f"$.{key}", problems))
    if problems:
        return None
    (chosen_raw, (system, chosen_turns)), (rejected_raw, (_, rejected_turns)) = parsed["chosen"], parsed["rejected"]
    if _without_last(chosen_raw) != _without_last(rejected_raw):
        at = next((i for i, (a, b) in enumerate(zip(chosen_raw, rejected_raw)) if a != b), min(len(chosen_raw), len(rejected_raw)) - 1)
        problems.append(_problem("TS232", f"`chosen` and `rejected` do not share the same prompt (they differ at message {at})",
                                 f"$.rejected[{at}]", "a pair compares two answers to one prompt: every message but the last must be equal"))
        return None
    return Conversation(chosen_turns, system, None, None, PromptChosenRejectedFormat.name, rejected_turns[-1])


def _without_last(messages: list) -> list:
    return messages[:-1]


class GeminiPreferenceFormat:
    """Vertex AI preference tuning records for Gemini (``contents`` + two scored ``completions``)."""

    name = "gemini_preference"

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        return isinstance(record, dict) and "contents" in record and "completions" in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if type(record) is not dict:
            raise DiagnosticError(_not_object(record, "Gemini preference", "contents"))
        problems: list[Diagnostic] = []
        contents = record.get("contents")
        turns: list[Turn] = []
        if type(contents) is not list:
            problems.append(_problem("TS203", "`contents` is missing or not a list", "$.contents",
                                     'write {"contents": [{"role": "user", "parts": [{"text": "..."}]}], "completions": [...]}'))
        else:
            turns = gemini_contents(contents, "$.contents", problems)
        system = gemini_system(record, problems)
        preferred, rejected = _gemini_completions(record.get("completions"), problems)
        if problems:
            raise DiagnosticError(problems)
        return Conversation([*turns, preferred], system, None, None, self.name, rejected)  # type: ignore[list-item]


def _gemini_completions(completions: Any, problems: list[Diagnostic]) -> tuple[Turn | None, Turn | None]:
    """The preferred (score 1) and non-preferred (score 0) completion of a Gemini pair."""
    example = 'write "completions": [{"score": 1, "completion": {"role": "model", "parts": [...]}}, {"score": 0, "completion": {...}}]'
    if type(completions) is not list or len(completions) != 2:
        what = f"a list of {len(completions)}" if type(completions) is list else ("missing" if completions is None else f"a {type(completions).__name__}")
        problems.append(_problem("TS203", f"`completions` is {what}; {BOTH_RESPONSES}: exactly two completions, scored 1 and 0", "$.completions", example))
        return None, None
    by_score: dict[int, Turn | None] = {}
    for i, item in enumerate(completions):
        path = f"$.completions[{i}]"
        if type(item) is not dict:
            problems.append(_problem("TS203", "a completion must be an object with `score` and `completion`", path, example))
            continue
        score = item.get("score")
        if type(score) not in (int, float) or score not in (0, 1):
            problems.append(_problem("TS203", f"`score` is {score!r}; it must be 1 (preferred) or 0 (non-preferred)", f"{path}.score"))
            continue
        turn = gemini_content(item.get("completion"), "$.completions[%d].completion", (i,), GeminiFormat.ROLES, problems)
        if turn is not None and turn.role != "model":
            problems.append(_problem("TS210", "a completion is the model's turn: its role must be `model`", f"{path}.completion.role"))
            continue
        if int(score) in by_score:
            problems.append(_problem("TS203", f"both completions have score {int(score)}; one must be 1 (preferred) and the other 0", f"{path}.score"))
            continue
        by_score[int(score)] = turn
    return by_score.get(1), by_score.get(0)


PREFERENCE_FORMATS = [GeminiPreferenceFormat(), OpenAIPreferenceFormat(), PromptChosenRejectedFormat()]
"""Tried before the conversation formats: a Gemini pair also has `contents`."""
