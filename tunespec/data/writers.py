"""Writers: conversations back out as files a service accepts."""

from __future__ import annotations

from typing import IO, Callable, Iterable

import orjson

from tunespec.data.conversation import Conversation, Part


def write_gemini_jsonl(
    conversations: Iterable[Conversation], fp: IO[bytes], map_uri: Callable[[str, Conversation], str] | None = None
) -> int:
    """Write Gemini / Vertex AI supervised-tuning JSONL (one example per line) to the
    binary file `fp`; return the number of examples written.

    Roles are ``user``/``model``; the system instruction becomes ``systemInstruction``;
    file parts become ``fileData {mimeType, fileUri}``, inline parts ``inlineData``.
    ``map_uri(uri, conversation)`` rewrites file URIs (e.g. a local image the backend
    uploaded to ``gs://``); by default URIs are written as they are.
    """
    n = 0
    for conv in conversations:
        record: dict = {}
        if conv.system:
            record["systemInstruction"] = {"role": "system", "parts": [_part(p, conv, map_uri) for p in conv.system]}
        record["contents"] = [{"role": t.role, "parts": [_part(p, conv, map_uri) for p in t.parts]} for t in conv.turns]
        fp.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        n += 1
    return n


def _part(part: Part, conv: Conversation, map_uri: Callable[[str, Conversation], str] | None) -> dict:
    if part.kind == "text":
        return {"text": part.text}
    if part.kind == "file":
        uri = map_uri(part.uri, conv) if map_uri is not None else part.uri  # type: ignore[arg-type]
        return {"fileData": {"mimeType": part.mime_type, "fileUri": uri}}
    return {"inlineData": {"mimeType": part.mime_type, "data": part.data}}
