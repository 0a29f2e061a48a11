"""Sources and formats from plugins go through the same hooks as the built-ins."""

from __future__ import annotations

import io

import pytest

import tunespec
from tunespec.data import Conversation, FileStat, Part, Turn, iter_conversations, validate_data
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location
from tunespec.plugins.host import PluginHost, reset_plugin_host

from .conftest import make_spec

FILES = {
    "mem://sets/a.jsonl": b'{"instruction": "Add", "input": "2+2", "output": "4"}\n{"instruction": "x", "output": 5}\n',
}


class AlpacaFormat:
    name = "alpaca"

    def detect(self, record, fields=None):
        return isinstance(record, dict) and "instruction" in record and "output" in record

    def to_conversation(self, record, fields):
        if not isinstance(record.get("output"), str):
            raise DiagnosticError(Diagnostic("TS203", "`output` must be a string", Location(path="$.output")))
        prompt = "\n\n".join(x for x in (record.get("instruction"), record.get("input")) if x)
        return Conversation(
            [
                Turn("user", [Part.of_text(prompt, "$.instruction")], "$.instruction"),
                Turn("model", [Part.of_text(record["output"], "$.output")], "$.output"),
            ]
        )


class MemorySource:
    name = "mem"

    def handles(self, path):
        return path.startswith("mem://")

    def list(self, path):
        found = sorted(p for p in FILES if p == path or p.startswith(path.rstrip("/") + "/"))
        if not found:
            raise FileNotFoundError(path)
        return found

    def stat(self, path):
        return FileStat(path, len(FILES[path]), None, f"mem:{hash(FILES[path])}") if path in FILES else None

    def open(self, path):
        return io.BytesIO(FILES[path])


class Plugin:
    @staticmethod
    @tunespec.hookimpl
    def tunespec_data_sources():
        return [MemorySource()]

    @staticmethod
    @tunespec.hookimpl
    def tunespec_data_formats():
        return [AlpacaFormat()]


@pytest.fixture
def host_with_plugin():
    reset_plugin_host(PluginHost(entry_points_=[], extra_plugins={"memory": Plugin()}))
    yield
    reset_plugin_host(None)


def test_plugin_source_and_format(tmp_path, diagnostics, host_with_plugin):
    spec = make_spec(tmp_path, "mem://sets/")
    report = validate_data(spec, None, None, diagnostics)
    assert [(d.code, d.location.file, d.location.line, d.location.path) for d in diagnostics] == [("TS203", "mem://sets/a.jsonl", 2, "$.output")]
    assert report.files[0].format == "alpaca" and report.splits["train"].examples == 1
    assert spec.data_hashes["mem://sets/a.jsonl"].startswith("mem:")
    conv = next(iter_conversations(spec, "train"))
    assert [(t.role, t.parts[0].text) for t in conv.turns] == [("user", "Add\n\n2+2"), ("model", "4")]


class CrashingFormat(AlpacaFormat):
    name = "crashy"

    def to_conversation(self, record, fields):
        return super().to_conversation(record, fields) if record.get("ok") else record["missing"]


def test_a_crashing_plugin_format_is_a_located_diagnostic(tmp_path, diagnostics):
    class CrashPlugin:
        @staticmethod
        @tunespec.hookimpl
        def tunespec_data_formats():
            return [CrashingFormat()]

    reset_plugin_host(PluginHost(entry_points_=[], extra_plugins={"crashy": CrashPlugin()}))
    try:
        (tmp_path / "t.jsonl").write_text('{"instruction": "a", "output": "b", "ok": 1}\n{"instruction": "a", "output": "b"}\n')
        report = validate_data(make_spec(tmp_path, "t.jsonl", format="crashy"), None, None, diagnostics)
    finally:
        reset_plugin_host(None)
    [d] = list(diagnostics)
    assert (d.code, d.location.line) == ("TS004", 2) and "KeyError" in d.message
    assert report.splits["train"].examples == 1
