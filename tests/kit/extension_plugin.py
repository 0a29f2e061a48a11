"""The data-format and data-source examples of docs/plugins.md, as a working plugin:
an Alpaca-style record format and a source reading files inside a zip archive
(``zip:///path/data.zip!/train.jsonl``). Loaded with TUNESPEC_PLUGINS by test_extensions.py."""

from __future__ import annotations

import io
import zipfile
from typing import BinaryIO

import tunespec
from tunespec import Diagnostic, DiagnosticError, Location
from tunespec.data import Conversation, FileStat, Part, Turn


class AlpacaFormat:
    name = "alpaca"

    def detect(self, record, fields=None) -> bool:
        return isinstance(record, dict) and "instruction" in record and "output" in record

    def to_conversation(self, record, fields) -> Conversation:
        if not isinstance(record, dict):
            raise DiagnosticError(Diagnostic("TS203", "record must be an object with `instruction` and `output`", Location(path="$")))
        for key in ("instruction", "output"):
            if not isinstance(record.get(key), str):
                raise DiagnosticError(Diagnostic("TS203", f"`{key}` must be a string", Location(path=f"$.{key}"), f"write `{key}` as text"))
        prompt = record["instruction"] + ("\n\n" + record["input"] if record.get("input") else "")
        return Conversation(turns=[
            Turn("user", [Part.of_text(prompt, "$.instruction")], "$"),
            Turn("model", [Part.of_text(record["output"], "$.output")], "$"),
        ])


class ZipSource:
    """`zip:///abs/archive.zip!/member.jsonl`: one member; `...zip!/folder/`: its .jsonl members."""

    name = "zip"

    def handles(self, path: str) -> bool:
        return path.startswith("zip://")

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        archive, _, member = path.removeprefix("zip://").partition("!/")
        return archive, member

    def list(self, path: str) -> list[str]:
        archive, member = self._split(path)
        try:
            names = zipfile.ZipFile(archive).namelist()
        except OSError as exc:
            raise FileNotFoundError(path) from exc
        if member in names:
            return [path]
        found = sorted(f"zip://{archive}!/{n}" for n in names if n.startswith(member) and n.endswith(".jsonl"))
        if not found:
            raise FileNotFoundError(path)
        return found

    def stat(self, path: str) -> FileStat | None:
        archive, member = self._split(path)
        try:
            info = zipfile.ZipFile(archive).getinfo(member)
        except (OSError, KeyError):
            return None
        return FileStat(path=path, size=info.file_size, digest=f"crc32:{info.CRC:08x}")

    def open(self, path: str) -> BinaryIO:
        archive, member = self._split(path)
        return io.BytesIO(zipfile.ZipFile(archive).read(member))


@tunespec.hookimpl
def tunespec_data_formats():
    return [AlpacaFormat()]


@tunespec.hookimpl
def tunespec_data_sources():
    return [ZipSource()]
