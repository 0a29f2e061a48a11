"""From loaded YAML to a validated `ResolvedSpec`, with every schema problem located.

Validation runs in two steps so each problem gets the best message:
1. the `TuningJob` model checks everything but the backend's own options;
2. the backend named in `backend.name` is looked up among installed plugins and its
   `config_model` checks the rest of the `backend` block.
Pydantic errors become diagnostics at the line and column of the offending key or value,
with a did-you-mean for unknown keys and choices.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from tunespec.diagnostics import Diagnostic
from tunespec.plugins.host import PluginHost
from tunespec.spec.loader import LoadedDocument
from tunespec.spec.model import API_VERSION, TuningJob
from tunespec.spec.resolve import ResolvedSpec, redact

RANGE_ERRORS = {
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long",
    "finite_number", "multiple_of", "int_parsing_size",
}
MAX_SHOWN = 80  # characters of a value quoted in a message (a hostile value can be a megabyte)
INT_RANGE = (-(2**63), 2**64 - 1)  # what the fingerprint's JSON (orjson) can hold
CHOICE_ERRORS = {"literal_error", "enum"}
CONFLICT = re.compile(r"conflict(?:\[(\w+)\])?: (.*)", re.S)


def validate_document(doc: LoadedDocument, host: PluginHost) -> tuple[ResolvedSpec | None, list[Diagnostic]]:
    """Validate one loaded document. Returns the spec (None if anything is wrong) and problems."""
    data = doc.data
    header = _check_header(doc)
    if header:
        return None, header
    diagnostics: list[Diagnostic] = []
    job: TuningJob | None = None
    try:
        job = TuningJob.model_validate(data)
    except ValidationError as exc:
        diagnostics.extend(_convert(exc, doc, TuningJob, ()))

    backend_block = data.get("backend") if isinstance(data, dict) else None
    config = None
    if isinstance(backend_block, dict) and isinstance(backend_block.get("name"), str):
        config, problems = _validate_backend_block(backend_block, doc, host)
        diagnostics.extend(problems)
    if job is not None and config is not None:
        diagnostics.extend(_unrepresentable(job.model_dump(by_alias=True), doc, ()))
        diagnostics.extend(_unrepresentable(config.model_dump(), doc, ("backend",)))
    if diagnostics or job is None or config is None:
        return None, [_without_secrets(d, doc) for d in _dedupe(diagnostics)]
    spec = ResolvedSpec(
        job=job,
        config=config,
        file=doc.file,
        document=doc.index,
        positions=doc.positions,
        redacted=doc.redacted,
        secret_digest=doc.secret_digest,
        interpolations=doc.interpolations,
    )
    return spec, []


def _unrepresentable(value: Any, doc: LoadedDocument, path: tuple) -> list[Diagnostic]:
    """Validated values that JSON cannot hold: an integer beyond 64 bits or a non-finite
    float. The spec models bound their fields, but a backend's options may not, and an
    integer written as a string (or interpolated) is parsed without limit by pydantic."""
    if isinstance(value, dict):
        return [d for k, v in value.items() for d in _unrepresentable(v, doc, path + (k,))]
    if isinstance(value, (list, tuple)):
        return [d for i, v in enumerate(value) for d in _unrepresentable(v, doc, path + (i,))]
    if isinstance(value, int) and not isinstance(value, bool) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        return [Diagnostic("TS113", f"{_show(value)} is out of range: integers in a spec must fit in 64 bits", doc.location(path), "write a smaller whole number")]
    if isinstance(value, float) and not math.isfinite(value):
        return [
            Diagnostic(
                "TS113", f"{value!r} is out of range: numbers in a spec must be finite", doc.location(path), "write a finite number (null where the field allows no value)"
            )
        ]
    return []


def _check_header(doc: LoadedDocument) -> list[Diagnostic]:
    """apiVersion and kind first: with the wrong ones, nothing else is worth reporting."""
    data = doc.data
    problems = []
    for key, expected in (("apiVersion", API_VERSION), ("kind", "TuningJob")):
        value = data.get(key)
        if value is None:
            continue  # reported as missing by the model
        if value != expected:
            problems.append(
                Diagnostic(
                    "TS117",
                    f"unsupported {key} {_show(value)}",
                    doc.location((key,)),
                    f"this tunespec reads `{key}: {expected}`",
                )
            )
    return problems


def _validate_backend_block(block: dict, doc: LoadedDocument, host: PluginHost) -> tuple[BaseModel | None, list[Diagnostic]]:
    name = block["name"]
    backends = host.backends()
    backend = backends.get(name)
    if backend is None:
        broken = next((p for p in host.plugins if p.name == name and p.status in ("broken", "disabled")), None)
        if broken is not None:
            hint = f"plugin {name!r} is {broken.status}" + (f": {broken.error}" if broken.error else "") + "; see `tunespec plugins`"
        else:
            hint = _did_you_mean(name, backends) or "see `tunespec plugins` for installed backends"
        return None, [
            Diagnostic("TS119", f"unknown backend {_show(name)}; installed: {', '.join(sorted(backends)) or 'none'}", doc.location(("backend", "name")), hint)
        ]
    options = {k: v for k, v in block.items() if k != "name"}
    try:
        return backend.config_model.model_validate(options), []
    except ValidationError as exc:
        return None, _convert(exc, doc, backend.config_model, ("backend",))


def _convert(exc: ValidationError, doc: LoadedDocument, root: type[BaseModel], prefix: tuple) -> list[Diagnostic]:
    out = []
    for error in exc.errors(include_url=False):
        data_path = prefix + _data_path(doc.data, prefix, error["loc"])
        out.append(_diagnostic(error, data_path, doc, root, prefix))
    return out


def _data_path(data: Any, prefix: tuple, loc: tuple) -> tuple:
    """Pydantic locations include union-member tags ('literal[...]', 'list[str]'); keep only
    the parts that exist in the data, and the first missing key (for `missing` errors)."""
    node = data
    for part in prefix:
        node = node.get(part) if isinstance(node, dict) else None
    path: list[Any] = []
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not _is_union_tag(part):
            path.append(part)  # a missing key: point at it, the location falls back to its parent
            node = None
    return tuple(path)


def _is_union_tag(part: str) -> bool:
    return any(c in part for c in "[]()") or part in {"str", "int", "float", "bool", "function-after", "function-before"}


def _diagnostic(error: dict, path: tuple, doc: LoadedDocument, root: type[BaseModel], prefix: tuple) -> Diagnostic:
    kind = error["type"]
    dotted_field = path[-1] if path else ""
    value = error.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(root, path[len(prefix):-1])
        hint = _did_you_mean(str(dotted_field), allowed) or (f"allowed keys here: {', '.join(sorted(allowed))}" if allowed else None)
        return Diagnostic("TS110", f"unknown key {_show(dotted_field)}", doc.location(path, key=True), hint)
    if kind == "missing":
        # Point at the mapping that lacks the key (its own key, e.g. `data:`).
        return Diagnostic("TS111", f"missing required key {_show(dotted_field)}", doc.location(path[:-1], key=True), _missing_hint(path))
    message = error["msg"]
    conflict = CONFLICT.search(message) if kind == "value_error" else None
    if conflict:
        # Model validators raise "conflict[field]: what; how to fix" and we point at `field`.
        field, text = conflict.group(1), conflict.group(2)
        what, _, fix = text.partition(";")
        at = path + (field,) if field else path
        return Diagnostic("TS115", what.strip(), doc.location(at, key=True), fix.strip() or None)
    if kind in CHOICE_ERRORS:
        choices = _choices(error)
        hint = _did_you_mean(str(value), choices) if isinstance(value, str) else None
        return Diagnostic("TS114", f"{_show(value)} is not allowed here; expected {message.removeprefix('Input should be ')}", doc.location(path), hint)
    help_ = _field_help(root, path[len(prefix):])
    if kind == "int_parsing_size":
        return Diagnostic("TS113", f"{_show(value)} is out of range: too large for an integer", doc.location(path), _range_hint(error) or help_)
    if kind in RANGE_ERRORS:
        return Diagnostic("TS113", f"{_show(value)} is out of range: {_lower(message)}", doc.location(path), _range_hint(error) or help_)
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in {"model_attributes_type", "bool_parsing"}:
        return Diagnostic("TS112", f"wrong type: {_lower(message)}, got {_describe(value)}", doc.location(path), help_)
    return Diagnostic("TS116", f"invalid value {_show(value)}: {_lower(message.removeprefix('Value error, '))}", doc.location(path), help_)


def _range_hint(error: dict) -> str | None:
    """How to get back in range, from the bound pydantic reports."""
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "finite_number":
        return "write a finite number (null where the field allows no value)"
    if kind == "int_parsing_size":
        return "write a smaller whole number"
    if kind in ("too_short", "too_long"):
        return f"give at least {ctx['min_length']}" if "min_length" in ctx else (f"give at most {ctx['max_length']}" if "max_length" in ctx else None)
    if kind == "multiple_of" and "multiple_of" in ctx:
        return f"write a multiple of {ctx['multiple_of']}"
    bounds = [f"{sign} {ctx[key]}" for key, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if key in ctx]
    return f"write a value {' and '.join(bounds)}" if bounds else None


def _field_help(model: type[BaseModel] | None, path: tuple) -> str | None:
    """The description of the field at `path` (relative to `model`), as a hint."""
    field = None
    for part in path:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        model = _model_in(field.annotation)
    description = field.description if field is not None else None
    return f"{_clip_text(description)}" if description else None


def _clip_text(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"{type(value).__name__} {_show(value)}" if value is not None else "null"


def _show(value: Any) -> str:
    """repr() of a value for a message, cut to MAX_SHOWN characters."""
    if isinstance(value, str) and len(value) > MAX_SHOWN:
        return f"{value[:MAX_SHOWN]!r}... ({len(value):,} characters)"
    text = repr(value) if not isinstance(value, (dict, list)) else _describe(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


def _choices(error: dict) -> list[str]:
    expected = (error.get("ctx") or {}).get("expected", "")
    return [c.strip().strip("'\"") for c in expected.replace(" or ", ",").split(",") if c.strip()]


def _missing_hint(path: tuple) -> str | None:
    hints = {
        ("metadata",): "add `metadata: {name: my-job}`",
        ("model",): "add `model: {base: <model>}`",
        ("data",): "add `data: {train: path/to/train.jsonl}`",
        ("backend",): "add `backend: {name: local}`",
    }
    return hints.get(path)


def _did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    if len(word) > MAX_SHOWN:
        return None
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else None


def _allowed_keys(model: type[BaseModel] | None, path: tuple) -> list[str]:
    """Keys allowed in the mapping at `path` (relative to `model`)."""
    for part in path:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        model = _model_in(field.annotation) if field else None
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like `Model | None` or `list[Model]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None


def _without_secrets(d: Diagnostic, doc: LoadedDocument) -> Diagnostic:
    """Messages quote the offending value; an interpolated one is shown as its reference."""
    message = redact(d.message, doc.interpolations)
    return Diagnostic(d.code, message, d.location, d.hint, d.severity) if message != d.message else d


def _dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per location and code (a union type reports each member's failure)."""
    seen = set()
    out = []
    for d in diagnostics:
        key = (d.code, d.location.path, d.location.line, d.location.column)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _allow_shorthands(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """The models accept short forms before validation (`method: peft`, `train: a.jsonl`,
    `train: [a.jsonl, b.jsonl]`); pydantic's schema describes only the long form, so an
    editor would flag valid specs. Widen those properties."""
    source = {"anyOf": [{"type": "string", "description": "a path or URI"}, {"$ref": "#/$defs/Source"}]}
    for split in ("train", "validation"):
        prop = defs["DataSpec"]["properties"][split]
        array = {k: prop.pop(k) for k in ("type", "items", "minItems") if k in prop}
        array["items"] = source
        prop["anyOf"] = [*source["anyOf"], array]
    method = schema["properties"]["method"]
    schema["properties"]["method"] = {
        "anyOf": [{"enum": ["peft", "full"], "description": "shorthand for `{type: ...}`"}, method],
        "description": defs["MethodSpec"].get("description", "How to tune: `peft` or `full`."),
    }


def spec_json_schema(host: PluginHost) -> dict[str, Any]:
    """JSON Schema of a TuningJob with every installed backend's options, for editors
    (e.g. `# yaml-language-server: $schema=tunespec.schema.json`)."""
    schema = TuningJob.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    _allow_shorthands(schema, defs)
    variants = []
    for name, backend in sorted(host.backends().items()):
        sub = backend.config_model.model_json_schema()
        for def_name, definition in sub.pop("$defs", {}).items():
            defs[def_name] = definition
        properties = {"name": {"const": name, "description": backend.description}, **sub.get("properties", {})}
        variants.append(
            {
                "title": f"{name} backend",
                "type": "object",
                "properties": properties,
                "required": ["name", *sub.get("required", [])],
                "additionalProperties": False,
            }
        )
    if variants:
        schema["properties"]["backend"] = {"description": "Where the job runs: `name` plus that backend's options.", "oneOf": variants}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tunespec TuningJob"
    return schema
