"""Writers: conversations back out as files a service accepts."""

from __future__ import annotations

from typing import IO, Callable, Iterable

import orjson

from tunespec.data.conversation import Conversation, Part, Turn


def write_gemini_jsonl(
    conversations: Iterable[Conversation], fp: IO[bytes], map_uri: Callable[[str, Conversation], str] | None = None
) -> int:
    """Write Gemini / Vertex AI supervised-tuning JSONL (one example per line) to the
    binary file `fp`; return the number of examples written.

    Roles are ``user``/``model``; the system instruction becomes ``systemInstruction``;
    file parts become ``fileData {mimeType, fileUri}``, inline parts ``inlineData``.
    ``map_uri(uri, conversation)`` rewrites file URIs (e.g. a local image the backend
    uploaded to ``gs://``); by default URIs are written as they are.

    A preference pair becomes a Gemini preference record, as Vertex AI's preference tuning
    reads it: ``system_instruction``, ``contents`` (the prompt, ending with the user's
    turn) and two ``completions``, the preferred one scored 1, the other 0.
    """
    n = 0
    for conv in conversations:
        record: dict = {}
        if conv.rejected is not None:
            record = _preference_record(conv, map_uri)
        else:
            if conv.system:
                record["systemInstruction"] = {"role": "system", "parts": [_part(p, conv, map_uri) for p in conv.system]}
            record["contents"] = [_content(t, conv, map_uri) for t in conv.turns]
        fp.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        n += 1
    return n


def _preference_record(conv: Conversation, map_uri: Callable[[str, Conversation], str] | None) -> dict:
    record: dict = {}
    if conv.system:
        record["system_instruction"] = {"parts": [_part(p, conv, map_uri) for p in conv.system]}
    record["contents"] = [_content(t, conv, map_uri) for t in conv.prompt_turns]
    record["completions"] = [
        {"score": 1, "completion": _content(conv.turns[-1], conv, map_uri)},
        {"score": 0, "completion": _content(conv.rejected, conv, map_uri)},  # type: ignore[arg-type]
    ]
    return record


def _content(turn: Turn, conv: Conversation, map_uri: Callable[[str, Conversation], str] | None) -> dict:
    return {"role": turn.role, "parts": [_part(p, conv, map_uri) for p in turn.parts]}


def _part(part: Part, conv: Conversation, map_uri: Callable[[str, Conversation], str] | None) -> dict:
    if part.kind == "text":
        return {"text": part.text}
    if part.kind == "file":
        uri = map_uri(part.uri, conv) if map_uri is not None else part.uri  # type: ignore[arg-type]
        return {"fileData": {"mimeType": part.mime_type, "fileUri": uri}}
    return {"inlineData": {"mimeType": part.mime_type, "data": part.data}}
