"""Prompts for `tunespec predict`, from any data file tunespec reads, or plain prompts.

- a `.txt` file: one prompt per non-empty line;
- JSONL / JSON / Parquet / CSV in any data format (Gemini `contents`, OpenAI `messages`,
  prompt/completion, or a plugin's): each conversation up to its last model turn is the
  prompt, and that model turn, when there is one, the reference answer;
- a JSONL line that is a JSON string, or `{"prompt": "..."}` alone: a plain prompt.

Text only. Every line is read streaming (bounded memory), located problems as everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from tunespec.diagnostics import Diagnostic, DiagnosticError, Location, Severity

ROLE_NAMES = {"user": "user", "model": "assistant"}
MAX_LINE_BYTES = 16 << 20


@dataclass
class PromptItem:
    """One prompt: chat messages (`role`: system | user | assistant, `content`), where it
    came from, and the reference answer when the input had one."""

    messages: list[dict[str, str]]
    source: str
    reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_prompts(path: str) -> Iterator[PromptItem]:
    """The prompts of `path`, in order. A bad record raises `DiagnosticError` located at its line."""
    p = Path(path)
    if not p.is_file():
        raise DiagnosticError(Diagnostic("TS200", f"input {path!r} not found or not a regular file", Location(path), "give a data file (JSONL, JSON, CSV, Parquet) or a .txt file of prompts"))
    if p.suffix == ".txt":
        yield from _text_prompts(p)
    elif p.suffix == ".jsonl" and _plain_jsonl(p):
        yield from _plain_json_prompts(p)
    else:
        yield from _conversation_prompts(p)


def _text_prompts(path: Path) -> Iterator[PromptItem]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            text = _decode(raw, path, number).strip()
            if text:
                yield PromptItem([{"role": "user", "content": text}], f"{path}:{number}")


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DiagnosticError(Diagnostic("TS202", "invalid UTF-8", Location(str(path), line), "save the file as UTF-8")) from None


def _plain_record(record: Any) -> str | None:
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and set(record) == {"prompt"} and isinstance(record["prompt"], str):
        return record["prompt"]
    return None


def _plain_jsonl(path: Path) -> bool:
    """True when the first record of a JSONL file is a plain prompt (then all must be)."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                try:
                    return _plain_record(orjson.loads(raw)) is not None
                except orjson.JSONDecodeError:
                    return False
    return False


def _plain_json_prompts(path: Path) -> Iterator[PromptItem]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                text = _plain_record(orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                raise DiagnosticError(Diagnostic("TS201", f"malformed JSON: {exc}", Location(str(path), number))) from None
            if text is None:
                raise DiagnosticError(Diagnostic("TS203", "not a plain prompt like the first line (a JSON string or {\"prompt\": ...})",
                                                 Location(str(path), number), "keep one kind of record per file"))
            yield PromptItem([{"role": "user", "content": text}], f"{path}:{number}")


def _conversation_prompts(path: Path) -> Iterator[PromptItem]:
    from tunespec.data.registry import data_formats, data_sources, source_for
    from tunespec.data.rules import rules_for
    from tunespec.data.validate import DataFileRef, file_conversations
    from tunespec.spec.model import PromptCompletionFields

    def fail(d: Diagnostic) -> None:
        if d.severity is Severity.ERROR:
            raise DiagnosticError(d)

    source = source_for(str(path.resolve()), data_sources())
    ref = DataFileRef("train", str(path.resolve()), source, None)
    for conversation in file_conversations(ref, data_formats(), PromptCompletionFields(), rules_for("text").max_record_bytes, fail):
        yield _prompt_of(conversation, f"{path}:{conversation.line}")


def _prompt_of(conversation: Any, source: str) -> PromptItem:
    messages = []
    system = "\n".join(p.text for p in conversation.system if p.text is not None)
    if system:
        messages.append({"role": "system", "content": system})
    for turn in conversation.turns:
        if any(p.text is None for p in turn.parts):
            raise DiagnosticError(Diagnostic("TS211", "predict takes text prompts; this record has a media part", Location(source.rsplit(":", 1)[0], int(source.rsplit(":", 1)[1])),
                                             "give text-only records"))
        messages.append({"role": ROLE_NAMES.get(turn.role, turn.role), "content": "\n".join(p.text for p in turn.parts)})
    reference = None
    if messages and messages[-1]["role"] == "assistant":
        reference = messages.pop()["content"]
    return PromptItem(messages, source, reference)
