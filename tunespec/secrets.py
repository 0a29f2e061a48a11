"""Secrets: a value interpolated from the environment never leaves the process.

A spec says `${env:NAME}`; the loader puts the value in the spec it hands to the backend
and *remembers* it here. Everything that leaves the process goes through `redact`, which
puts the reference back in place of the value:

- what is stored: the state database (`tunespec.state`) redacts every text it writes and
  `expand`s the references again when it reads them back ("store references, resolve at
  use"), so a run's folder under `${env:OUT}` is recorded as `${env:OUT}/name/run`;
- what is written as a run's files: `RunDirectory.finalize` scrubs every text file of the
  run (manifest, spec.yaml, library-written `adapter_config.json`, logs) before publishing;
- what is printed: the CLI wraps stdout and stderr in `RedactingStream`, so no command,
  progress line, diagnostic or library message prints a value.

Only values that really came from the environment are secrets: a `${env:X:-default}`
whose default was used is text of the spec itself. Values shorter than
`MIN_SECRET_LENGTH` are not redacted (a port or a flag would redact unrelated text).

This module is the lowest layer of tunespec: it imports nothing from it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

MIN_SECRET_LENGTH = 4
REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_known: dict[str, str] = {}
"""Secret value -> the `${env:...}` reference it came from."""


def remember(reference: str, value: str) -> None:
    """Record that `value` came from the environment through `reference`."""
    if len(value) >= MIN_SECRET_LENGTH:
        _known.setdefault(value, reference)


def forget_all() -> None:
    """Start afresh (each CLI invocation does: a process runs one command)."""
    _known.clear()


def known() -> dict[str, str]:
    return dict(_known)


def redact(value: Any, pairs: Mapping[str, str] | None = None) -> Any:
    """`value` (text or JSON-like data) with every remembered secret (or those in `pairs`,
    value -> reference) replaced by its reference; longest first, so a secret inside
    another is not half-replaced."""
    table = _known if pairs is None else pairs
    if not table:
        return value
    ordered = sorted(table.items(), key=lambda item: -len(item[0]))
    return _redact(value, ordered)


def _redact(value: Any, ordered: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for secret, reference in ordered:
            if secret in value:
                value = value.replace(secret, reference)
        return value
    if isinstance(value, dict):
        return {_redact(k, ordered): _redact(v, ordered) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, ordered) for v in value]
    return value


def redact_bytes(data: bytes) -> bytes:
    """Redact UTF-8 `data` (a file's content); bytes holding no secret are returned as is."""
    if not _known or not any(secret.encode() in data for secret in _known):
        return data
    return redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def contains_secret(text: str) -> bool:
    return any(secret in text for secret in _known)


def expand(text: str, env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """Resolve the `${env:NAME}` references in stored `text` again, at use. Returns the text
    and the names that are not set (their references are left in place). Expanded values
    are remembered, so what is printed about them stays redacted."""
    env = os.environ if env is None else env
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            remember(match.group(0), env[name])
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return match.group(0)

    if "${env:" not in text:
        return text, missing
    return REFERENCE.sub(replace, text), missing


class RedactingStream:
    """A text stream that redacts what is written to it, delegating everything else
    (isatty, fileno, encoding, flush) to the stream it wraps."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text) if _known else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
