"""Record formats: recognise a parsed record and convert it into a `Conversation`.

A format is any object with the `DataFormat` shape, registered through the
``tunespec_data_formats`` hook. Built-ins:

- ``gemini``: Vertex AI / Gemini supervised-tuning JSONL (``contents`` with roles
  ``user``/``model``, parts ``text`` / ``fileData`` / ``inlineData``, optional
  ``systemInstruction``).
- ``openai``: OpenAI chat fine-tuning (``messages`` with roles system/user/assistant;
  content a string or a list of ``text`` / ``image_url`` / ``input_audio`` items).
- ``prompt_completion``: one prompt and one completion field (names from the spec's
  ``data.fields``), optionally a system field.

Formats are pure: they see one record and report problems by raising `DiagnosticError`
whose diagnostics carry only the JSON path (``$.contents[1].parts[0]``); the caller adds
the data file and line. Conversation-level rules (alternation, last turn, modality
limits) are not the format's business; `tunespec.data.checks` applies them to every
format alike.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any, Protocol, runtime_checkable

from tunespec.data.conversation import Conversation, Part, Turn
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location
from tunespec.spec.model import PromptCompletionFields


@runtime_checkable
class DataFormat(Protocol):
    name: str

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        """True if `record` (a parsed JSON value) looks like this format. Cheap: key checks only."""

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        """Convert one record. Raise `DiagnosticError` with path-located diagnostics
        (``Location(path="$.messages[0].role")``) when the record does not fit."""


def _problem(code: str, message: str, path: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, message, Location(path=path), hint)


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _not_object(record: Any, fmt: str, key: str) -> Diagnostic:
    return _problem(
        "TS203",
        f"record is a JSON {_JSON_TYPES.get(type(record), type(record).__name__)}, expected an object with `{key}`",
        "$",
        f"each line of a {fmt} file is one JSON object like {{\"{key}\": [...]}}",
    )


class GeminiFormat:
    """Gemini / Vertex AI supervised tuning records."""

    name = "gemini"
    ROLES = {"user": "user", "model": "model"}

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        return isinstance(record, dict) and "contents" in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        # The common, well-formed case runs straight through with exact type checks; any
        # surprise drops into the slower branches that explain it.
        if type(record) is not dict:
            raise DiagnosticError(_not_object(record, "Gemini", "contents"))
        contents = record.get("contents")
        if type(contents) is not list:
            raise DiagnosticError(
                _problem(
                    "TS203",
                    "`contents` is missing or not a list" if contents is None else f"`contents` is a {type(contents).__name__}, expected a list",
                    "$.contents",
                    'write {"contents": [{"role": "user", "parts": [{"text": "..."}]}, {"role": "model", "parts": [...]}]}',
                )
            )
        problems: list[Diagnostic] = []
        system = gemini_system(record, problems)
        turns = gemini_contents(contents, "$.contents", problems)
        if problems:
            raise DiagnosticError(problems)
        return Conversation(turns, system, None, None, "gemini")


def gemini_system(record: dict, problems: list[Diagnostic]) -> list[Part]:
    """The parts of a Gemini record's system instruction (`systemInstruction` or
    `system_instruction`); none when it has none."""
    if "systemInstruction" not in record and "system_instruction" not in record:
        return []
    key = "systemInstruction" if "systemInstruction" in record else "system_instruction"
    instruction = record[key]
    if type(instruction) is dict and type(instruction.get("parts")) is list:
        return _gemini_parts(instruction["parts"], f"$.{key}.parts[%d]", None, problems)
    if instruction is not None:
        problems.append(
            _problem("TS203", f"`{key}` must be an object with a `parts` list", f"$.{key}", 'write {"systemInstruction": {"parts": [{"text": "..."}]}}')
        )
    return []


def gemini_contents(contents: list, where: str, problems: list[Diagnostic]) -> list[Turn]:
    """Gemini `contents` entries (at JSON path `where`, e.g. ``$.contents``) as turns."""
    turns: list[Turn] = []
    roles = GeminiFormat.ROLES
    for i, content in enumerate(contents):
        turn = gemini_content(content, f"{where}[%d]", (i,), roles, problems)
        if turn is not None:
            turns.append(turn)
    return turns


def gemini_content(content: Any, where: str, at: tuple[int, ...], roles: dict[str, str], problems: list[Diagnostic]) -> Turn | None:
    """One Gemini content (`{"role", "parts"}`) as a turn; `where` % `at` is its JSON path."""
    path = where % at
    if type(content) is not dict:
        problems.append(_problem("TS203", "a content entry must be an object with `role` and `parts`", path))
        return None
    role = content.get("role")
    mapped = roles.get(role) if type(role) is str else None
    if mapped is None:
        problems.append(_gemini_role_problem(role, path))
        return None
    parts = content.get("parts")
    if type(parts) is not list:
        problems.append(_problem("TS203", "`parts` is missing or not a list", f"{path}.parts", 'write "parts": [{"text": "..."}]'))
        return None
    return Turn(mapped, _gemini_parts(parts, where + ".parts[%d]", at, problems), where, at)  # type: ignore[arg-type]


def _gemini_role_problem(role: Any, path: str) -> Diagnostic:
    hint = "Gemini roles are `user` and `model`"
    if role == "assistant":
        hint += " (write `model` instead of `assistant`)"
    elif role == "system":
        hint += " (put system text in `systemInstruction`)"
    return _problem("TS210", f"unknown role {role!r}" if role is not None else "content has no `role`", f"{path}.role", hint)


def _gemini_parts(parts: list, where: str, at_content: tuple[int, ...] | None, problems: list[Diagnostic]) -> list[Part]:
    """Parts of one content entry (`at_content` its indices in `where`) or of the system
    instruction (`at_content` None)."""
    out: list[Part] = []
    for j, part in enumerate(parts):
        at = (j,) if at_content is None else (*at_content, j)
        if type(part) is dict:
            text = part.get("text")
            if type(text) is str:
                out.append(Part("text", text, None, None, None, None, where, at))
                continue
        problem = None
        path = where % at
        if not isinstance(part, dict):
            problem = _problem("TS203", 'a part must be an object like {"text": "..."}', path)
        elif "text" in part:
            problem = _problem("TS203", f"`text` is {type(part['text']).__name__}, expected a string", f"{path}.text")
        elif isinstance(data := part.get("fileData", part.get("file_data")), dict):
            mime, uri = data.get("mimeType", data.get("mime_type")), data.get("fileUri", data.get("file_uri"))
            if isinstance(mime, str) and isinstance(uri, str):
                out.append(Part("file", None, mime, uri, None, None, where, at))
            else:
                problem = _problem(
                    "TS203", "`fileData` needs string `mimeType` and `fileUri`", f"{path}.fileData", 'write {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/x.png"}}'
                )
        elif isinstance(data := part.get("inlineData", part.get("inline_data")), dict):
            mime, b64 = data.get("mimeType", data.get("mime_type")), data.get("data")
            if isinstance(mime, str) and isinstance(b64, str):
                out.append(Part.of_inline(mime, b64, where, at))
            else:
                problem = _problem("TS203", "`inlineData` needs string `mimeType` and base64 `data`", f"{path}.inlineData")
        else:
            kinds = ", ".join(sorted(part)) or "nothing"
            problem = _problem(
                "TS203", f"part holds {kinds}; tunespec supports `text`, `fileData` and `inlineData` parts", path, "function-calling parts are not supported for tuning"
            )
        if problem is not None:
            problems.append(problem)
    return out


class OpenAIFormat:
    """OpenAI chat fine-tuning records (``messages``)."""

    name = "openai"
    ROLES = {"user": "user", "assistant": "model"}
    SYSTEM_ROLES = frozenset({"system", "developer"})

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        return isinstance(record, dict) and "messages" in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if type(record) is not dict:
            raise DiagnosticError(_not_object(record, "OpenAI chat", "messages"))
        messages = record.get("messages")
        if type(messages) is not list:
            raise DiagnosticError(
                _problem("TS203", "`messages` is missing or not a list", "$.messages", 'write {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}')
            )
        problems: list[Diagnostic] = []
        system, turns = openai_messages(messages, "$.messages", problems)
        if problems:
            raise DiagnosticError(problems)
        return Conversation(turns, system, None, None, "openai")


def openai_messages(messages: list, where: str, problems: list[Diagnostic]) -> tuple[list[Part], list[Turn]]:
    """OpenAI chat messages (at JSON path `where`, e.g. ``$.messages``) as the system
    instruction's parts and the turns."""
    system: list[Part] = []
    turns: list[Turn] = []
    roles = OpenAIFormat.ROLES
    for i, message in enumerate(messages):
        at = f"{where}[{i}]"
        if type(message) is not dict:
            problems.append(_problem("TS203", "a message must be an object with `role` and `content`", at))
            continue
        role = message.get("role")
        content = message.get("content")
        if type(content) is str:
            parts = [Part("text", content, None, None, None, None, where + "[%d].content", (i,))]
        else:
            parts = _openai_parts(content, where, i, problems)
        mapped = roles.get(role) if type(role) is str else None
        if mapped is not None:
            turns.append(Turn(mapped, parts, where + "[%d]", (i,)))  # type: ignore[arg-type]
        elif type(role) is str and role in OpenAIFormat.SYSTEM_ROLES:
            if turns:
                problems.append(_problem("TS207", "system message after the conversation started", f"{at}.role", "put system messages first"))
            system.extend(parts)
        else:
            hint = "OpenAI chat roles are `system`, `user` and `assistant`"
            if role in ("tool", "function"):
                hint += "; tool and function messages are not supported for tuning"
            elif role == "model":
                hint += " (write `assistant`, or use the Gemini format)"
            problems.append(_problem("TS210", f"unknown role {role!r}" if role is not None else "message has no `role`", f"{at}.role", hint))
    return system, turns


def _openai_parts(content: Any, messages: str, i: int, problems: list[Diagnostic]) -> list[Part]:
    """Parts of message `i` of `messages` (a JSON path) whose content is a list of typed
    items (text, image, audio, file)."""
    if not isinstance(content, list):
        what = "missing" if content is None else f"a {type(content).__name__}"
        problems.append(_problem("TS203", f"`content` is {what}, expected a string or a list of content parts", f"{messages}[{i}].content"))
        return []
    where = messages + "[%d].content[%d]"
    out: list[Part] = []
    for j, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            out.append(Part("text", item["text"], None, None, None, None, where, (i, j)))
        elif kind == "image_url" and isinstance(item.get("image_url"), dict) and isinstance(item["image_url"].get("url"), str):
            out.append(_url_part(item["image_url"]["url"], where, (i, j), "image/jpeg"))
        elif kind == "input_audio" and isinstance(item.get("input_audio"), dict) and isinstance(item["input_audio"].get("data"), str):
            audio = item["input_audio"]
            out.append(Part.of_inline(f"audio/{audio.get('format', 'wav')}", audio["data"], where, (i, j)))
        elif kind == "file" and isinstance(item.get("file"), dict) and isinstance(item["file"].get("file_data"), str):
            out.append(_url_part(item["file"]["file_data"], where, (i, j), "application/pdf"))
        else:
            problems.append(
                _problem(
                    "TS203",
                    f"content part of type {kind!r} is not supported or incomplete",
                    where % (i, j),
                    "supported: text, image_url{url}, input_audio{data, format}, file{file_data}",
                )
            )
    return out


# Longer than any path, and only base64 characters: `file_data` given as bare base64.
_BARE_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{512,}")


def _url_part(url: str, where: str, at: tuple, default_mime: str) -> Part:
    """An OpenAI URL (``data:`` URL or a link) as an inline or file part. `file_data` may
    also be bare base64 (no ``data:`` header): inline data of the default type, never a
    "path" quoted back in full."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";")[0] or default_mime
        return Part.of_inline(mime, data, where, at)
    if _BARE_BASE64.fullmatch(url):
        return Part.of_inline(default_mime, url, where, at)
    mime = mimetypes.guess_type(url.split("?")[0])[0] or default_mime
    return Part.of_file(mime, url, where, at)


class PromptCompletionFormat:
    """Flat records: a prompt field and a completion field (names from ``data.fields``)."""

    name = "prompt_completion"

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        fields = fields or PromptCompletionFields()
        return isinstance(record, dict) and fields.prompt in record and fields.completion in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if type(record) is not dict:
            raise DiagnosticError(_not_object(record, "prompt/completion", fields.prompt))
        problems: list[Diagnostic] = []
        values = {}
        wanted = [("prompt", fields.prompt), ("completion", fields.completion)]
        if fields.system is not None and fields.system in record:
            wanted.append(("system", fields.system))
        for what, key in wanted:
            value = record.get(key)
            if not isinstance(value, str):
                found = "missing" if key not in record else f"a {type(value).__name__}"
                problems.append(
                    _problem("TS203", f"{what} field `{key}` is {found}, expected a string", f"$.{key}", f"set `data.fields.{what}` in the spec if your records name it differently")
                )
            values[what] = value
        if problems:
            raise DiagnosticError(problems)
        system = [Part.of_text(values["system"], f"$.{fields.system}")] if "system" in values else []
        turns = [
            Turn("user", [Part.of_text(values["prompt"], f"$.{fields.prompt}")], f"$.{fields.prompt}"),
            Turn("model", [Part.of_text(values["completion"], f"$.{fields.completion}")], f"$.{fields.completion}"),
        ]
        return Conversation(turns, system, None, None, "prompt_completion")


BUILTIN_FORMATS: list[DataFormat] = [GeminiFormat(), OpenAIFormat(), PromptCompletionFormat()]


def detect_format(record: Any, formats: list[DataFormat], fields: PromptCompletionFields) -> DataFormat | None:
    """The first format that recognises `record`, or None."""
    for fmt in formats:
        if fmt.detect(record, fields):
            return fmt
    return None
