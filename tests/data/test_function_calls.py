"""Function-calling examples (Gemini `functionCall` / `functionResponse` parts, `tools`):
kept whole from reading to writing, accepted only where the backend's rules say the model
tunes on them, and each part in the turn it belongs to."""

from __future__ import annotations

import io

import orjson

from tunespec.data import DataRules, iter_conversations, validate_data, write_gemini_jsonl
from tunespec.diagnostics import Diagnostics

from .conftest import make_spec, write_jsonl

TOOLS = [{"functionDeclarations": [{"name": "get_weather", "description": "Weather in a city",
                                    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}]
CALL = {
    "systemInstruction": {"role": "system", "parts": [{"text": "Use the tools."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "18C, sunny"}}}]},
        {"role": "model", "parts": [{"text": "18C and sunny in Paris."}]},
    ],
    "tools": TOOLS,
    "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"},
}


def _validate(tmp_path, records, rules):
    write_jsonl(tmp_path / "train.jsonl", records)
    diagnostics = Diagnostics()
    validate_data(make_spec(tmp_path, "train.jsonl"), rules, None, diagnostics)
    return [(d.code, d.location.path) for d in diagnostics if d.is_error]


def test_a_function_calling_example_is_written_back_whole(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [CALL])
    [conv] = iter_conversations(make_spec(tmp_path, "train.jsonl"), "train")
    assert conv.extra == {"tools": TOOLS, "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}}
    assert [p.kind for t in conv.turns for p in t.parts] == ["text", "function_call", "function_response", "text"]
    out = io.BytesIO()
    write_gemini_jsonl([conv], out)
    assert orjson.loads(out.getvalue()) == CALL


def test_function_parts_are_accepted_only_where_the_rules_allow_them(tmp_path):
    assert _validate(tmp_path, [CALL], DataRules(allow_function_calls=True)) == []
    refused = _validate(tmp_path, [CALL], None)  # no backend says the model tunes on them (e.g. local)
    assert refused == [("TS203", "$.contents[1].parts[0]"), ("TS203", "$.contents[2].parts[0]")]
    vetoed = DataRules(allow_function_calls=True).merge(DataRules(allow_function_calls=False))
    assert vetoed.allow_function_calls is False


def test_a_function_part_in_the_wrong_turn_is_located(tmp_path):
    wrong = orjson.loads(orjson.dumps(CALL))
    wrong["contents"][1]["parts"], wrong["contents"][2]["parts"] = wrong["contents"][2]["parts"], wrong["contents"][1]["parts"]
    problems = _validate(tmp_path, [wrong], DataRules(allow_function_calls=True))
    assert problems == [("TS210", "$.contents[1].parts[0]"), ("TS210", "$.contents[2].parts[0]")]


def test_a_function_call_without_a_name_is_malformed(tmp_path):
    bad = orjson.loads(orjson.dumps(CALL))
    bad["contents"][1]["parts"] = [{"functionCall": {"args": {}}}]
    assert ("TS203", "$.contents[1].parts[0].functionCall") in _validate(tmp_path, [bad], DataRules(allow_function_calls=True))
