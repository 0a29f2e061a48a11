"""Field paths in a spec: ``method.lora.rank``, ``data.train[1].path``, ``backend.address``.

One syntax everywhere a spec field is named (diagnostics, `ResolvedSpec.locate`, the
conformance kit): names separated by dots, list positions in brackets. `names_a_field`
says whether a path can exist in a spec at all, so a typo in a plugin's
``spec.locate("backend.adress")`` is caught by its tests instead of silently pointing at
the parent block.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

Parts = tuple  # ("data", "train", 1, "path")


def split_path(path: str) -> Parts:
    """``"a.b[0].c"`` -> ``("a", "b", 0, "c")``."""
    parts: list[Any] = []
    for chunk in path.split("."):
        if not chunk:
            continue
        name, *indices = chunk.split("[")
        if name:
            parts.append(name)
        for index in indices:
            index = index.rstrip("]")
            if not index.isdigit():
                raise ValueError(f"{path!r}: a list position is a number in brackets, like `data.train[1]`")
            parts.append(int(index))
    return tuple(parts)


def join_path(parts: Parts | list) -> str:
    """``("a", "b", 0, "c")`` -> ``"a.b[0].c"``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def names_a_field(model: Any, parts: Parts) -> bool:
    """True if `parts` can name something in a document of `model` (a pydantic model or an
    annotation): every name is a field (or alias) of the model it is in, every position is
    into a list, and anything under a free-form mapping (`labels`) is allowed."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    origin = typing.get_origin(model)
    if origin in (typing.Union, types.UnionType):
        return any(names_a_field(member, parts) for member in typing.get_args(model) if member is not type(None))
    if model is Any:
        return True
    if isinstance(head, int):
        if origin in (list, tuple):
            args = typing.get_args(model)
            return names_a_field(args[0] if args else Any, rest)
        return False
    if origin is dict:
        args = typing.get_args(model)
        return names_a_field(args[1] if len(args) == 2 else Any, rest)
    if isinstance(model, type) and issubclass(model, BaseModel):
        for name, info in model.model_fields.items():
            if head in (name, info.alias):
                return names_a_field(info.annotation, rest)
        return bool(model.model_config.get("extra") == "allow")  # free-form extra keys
    return False
