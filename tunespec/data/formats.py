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


def _not_object(record: Any, fmt: str, key: str) -> Diagnostic:
    return _problem(
        "TS203",
        f"record is a JSON {type(record).__name__ if not isinstance(record, list) else 'array'}, expected an object with `{key}`",
        "$",
        f"each line of a {fmt} file is one JSON object like {{\"{key}\": [...]}}",
    )


class GeminiFormat:
    """Gemini / Vertex AI supervised tuning records."""

    name = "gemini"
    ROLES = {"user": "user", "model": "model"}
    KNOWN_KEYS = frozenset({"contents", "systemInstruction", "system_instruction", "tools", "generationConfig", "toolConfig"})

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        return isinstance(record, dict) and "contents" in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if not isinstance(record, dict):
            raise DiagnosticError(_not_object(record, "Gemini", "contents"))
        problems: list[Diagnostic] = []
        contents = record.get("contents")
        if not isinstance(contents, list):
            problems.append(
                _problem(
                    "TS203",
                    "`contents` is missing or not a list" if contents is None else f"`contents` is a {type(contents).__name__}, expected a list",
                    "$.contents",
                    'write {"contents": [{"role": "user", "parts": [{"text": "..."}]}, {"role": "model", "parts": [...]}]}',
                )
            )
            raise DiagnosticError(problems)
        system: list[Part] = []
        instruction = record.get("systemInstruction", record.get("system_instruction"))
        if instruction is not None:
            key = "systemInstruction" if "systemInstruction" in record else "system_instruction"
            if isinstance(instruction, dict) and isinstance(instruction.get("parts"), list):
                system = self._parts(instruction["parts"], f"$.{key}.parts", problems)
            else:
                problems.append(
                    _problem("TS203", f"`{key}` must be an object with a `parts` list", f"$.{key}", 'write {"systemInstruction": {"parts": [{"text": "..."}]}}')
                )
        turns: list[Turn] = []
        for i, content in enumerate(contents):
            path = f"$.contents[{i}]"
            if not isinstance(content, dict):
                problems.append(_problem("TS203", "a content entry must be an object with `role` and `parts`", path))
                continue
            role = content.get("role")
            mapped = self.ROLES.get(role) if isinstance(role, str) else None
            if mapped is None:
                hint = "Gemini roles are `user` and `model`"
                if role == "assistant":
                    hint += " (write `model` instead of `assistant`)"
                elif role == "system":
                    hint += " (put system text in `systemInstruction`)"
                problems.append(_problem("TS210", f"unknown role {role!r}" if role is not None else "content has no `role`", f"{path}.role", hint))
                continue
            parts = content.get("parts")
            if not isinstance(parts, list):
                problems.append(_problem("TS203", "`parts` is missing or not a list", f"{path}.parts", 'write "parts": [{"text": "..."}]'))
                continue
            turns.append(Turn(mapped, self._parts(parts, f"{path}.parts", problems), path))  # type: ignore[arg-type]
        if problems:
            raise DiagnosticError(problems)
        return Conversation(turns, system, format=self.name)

    @staticmethod
    def _parts(parts: list, base: str, problems: list[Diagnostic]) -> list[Part]:
        out: list[Part] = []
        for j, part in enumerate(parts):
            path = f"{base}[{j}]"
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    out.append(Part("text", text=text, path=path))
                    continue
                data = part.get("fileData") or part.get("file_data")
                if isinstance(data, dict):
                    mime, uri = data.get("mimeType", data.get("mime_type")), data.get("fileUri", data.get("file_uri"))
                    if isinstance(mime, str) and isinstance(uri, str):
                        out.append(Part("file", mime_type=mime, uri=uri, path=path))
                        continue
                    problems.append(_problem("TS203", "`fileData` needs string `mimeType` and `fileUri`", f"{path}.fileData", 'write {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/x.png"}}'))
                    continue
                data = part.get("inlineData") or part.get("inline_data")
                if isinstance(data, dict):
                    mime, b64 = data.get("mimeType", data.get("mime_type")), data.get("data")
                    if isinstance(mime, str) and isinstance(b64, str):
                        out.append(Part.of_inline(mime, b64, path))
                        continue
                    problems.append(_problem("TS203", "`inlineData` needs string `mimeType` and base64 `data`", f"{path}.inlineData"))
                    continue
                if "text" in part:
                    problems.append(_problem("TS203", f"`text` is {type(text).__name__}, expected a string", f"{path}.text"))
                    continue
                kinds = ", ".join(sorted(part)) or "nothing"
                problems.append(
                    _problem("TS203", f"part holds {kinds}; tunespec supports `text`, `fileData` and `inlineData` parts", path, "function-calling parts are not supported for tuning")
                )
            else:
                problems.append(_problem("TS203", "a part must be an object like {\"text\": \"...\"}", path))
        return out


class OpenAIFormat:
    """OpenAI chat fine-tuning records (``messages``)."""

    name = "openai"
    ROLES = {"user": "user", "assistant": "model"}
    SYSTEM_ROLES = frozenset({"system", "developer"})

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        return isinstance(record, dict) and "messages" in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if not isinstance(record, dict):
            raise DiagnosticError(_not_object(record, "OpenAI chat", "messages"))
        messages = record.get("messages")
        if not isinstance(messages, list):
            raise DiagnosticError(
                _problem("TS203", "`messages` is missing or not a list", "$.messages", 'write {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}')
            )
        problems: list[Diagnostic] = []
        system: list[Part] = []
        turns: list[Turn] = []
        for i, message in enumerate(messages):
            path = f"$.messages[{i}]"
            if not isinstance(message, dict):
                problems.append(_problem("TS203", "a message must be an object with `role` and `content`", path))
                continue
            role = message.get("role")
            content = message.get("content")
            parts = self._parts(content, f"{path}.content", problems)
            if role in self.SYSTEM_ROLES:
                if turns:
                    problems.append(_problem("TS207", "system message after the conversation started", f"{path}.role", "put system messages first"))
                system.extend(parts)
                continue
            mapped = self.ROLES.get(role) if isinstance(role, str) else None
            if mapped is None:
                hint = "OpenAI chat roles are `system`, `user` and `assistant`"
                if role in ("tool", "function"):
                    hint += "; tool and function messages are not supported for tuning"
                elif role == "model":
                    hint += " (write `assistant`, or use the Gemini format)"
                problems.append(_problem("TS210", f"unknown role {role!r}" if role is not None else "message has no `role`", f"{path}.role", hint))
                continue
            turns.append(Turn(mapped, parts, path))  # type: ignore[arg-type]
        if problems:
            raise DiagnosticError(problems)
        return Conversation(turns, system, format=self.name)

    @staticmethod
    def _parts(content: Any, path: str, problems: list[Diagnostic]) -> list[Part]:
        if isinstance(content, str):
            return [Part("text", text=content, path=path)]
        if not isinstance(content, list):
            what = "missing" if content is None else f"a {type(content).__name__}"
            problems.append(_problem("TS203", f"`content` is {what}, expected a string or a list of content parts", path))
            return []
        out: list[Part] = []
        for j, item in enumerate(content):
            ipath = f"{path}[{j}]"
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text" and isinstance(item.get("text"), str):
                out.append(Part("text", text=item["text"], path=ipath))
            elif kind == "image_url" and isinstance(item.get("image_url"), dict) and isinstance(item["image_url"].get("url"), str):
                out.append(_url_part(item["image_url"]["url"], ipath, "image/jpeg"))
            elif kind == "input_audio" and isinstance(item.get("input_audio"), dict) and isinstance(item["input_audio"].get("data"), str):
                audio = item["input_audio"]
                out.append(Part.of_inline(f"audio/{audio.get('format', 'wav')}", audio["data"], ipath))
            elif kind == "file" and isinstance(item.get("file"), dict) and isinstance(item["file"].get("file_data"), str):
                out.append(_url_part(item["file"]["file_data"], ipath, "application/pdf"))
            else:
                problems.append(
                    _problem("TS203", f"content part of type {kind!r} is not supported or incomplete", ipath, "supported: text, image_url{url}, input_audio{data, format}, file{file_data}")
                )
        return out


def _url_part(url: str, path: str, default_mime: str) -> Part:
    """An OpenAI URL (``data:`` URL or a link) as an inline or file part."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";")[0] or default_mime
        return Part.of_inline(mime, data, path)
    mime = mimetypes.guess_type(url.split("?")[0])[0] or default_mime
    return Part("file", mime_type=mime, uri=url, path=path)


class PromptCompletionFormat:
    """Flat records: a prompt field and a completion field (names from ``data.fields``)."""

    name = "prompt_completion"

    def detect(self, record: Any, fields: PromptCompletionFields | None = None) -> bool:
        fields = fields or PromptCompletionFields()
        return isinstance(record, dict) and fields.prompt in record and fields.completion in record

    def to_conversation(self, record: Any, fields: PromptCompletionFields) -> Conversation:
        if not isinstance(record, dict):
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
        system = [Part("text", text=values["system"], path=f"$.{fields.system}")] if "system" in values else []
        turns = [
            Turn("user", [Part("text", text=values["prompt"], path=f"$.{fields.prompt}")], f"$.{fields.prompt}"),
            Turn("model", [Part("text", text=values["completion"], path=f"$.{fields.completion}")], f"$.{fields.completion}"),
        ]
        return Conversation(turns, system, format=self.name)


BUILTIN_FORMATS: list[DataFormat] = [GeminiFormat(), OpenAIFormat(), PromptCompletionFormat()]


def detect_format(record: Any, formats: list[DataFormat], fields: PromptCompletionFields) -> DataFormat | None:
    """The first format that recognises `record`, or None."""
    for fmt in formats:
        if fmt.detect(record, fields):
            return fmt
    return None
