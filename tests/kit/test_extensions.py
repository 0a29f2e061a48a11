"""A plugin adding a data format and a data source (the docs/plugins.md examples) works
through the same pipeline as the built-ins: records convert, problems are located by file
and line, and the data hash (fingerprint) follows the archive's content."""

from __future__ import annotations

import json
import zipfile

import pytest

from tunespec.plugins.host import reset_plugin_host

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata: {{name: alpaca-zip}}
model: {{base: tiny-model}}
data:
  train: {{path: "zip://{archive}!/train.jsonl", format: alpaca}}
backend: {{name: echo}}
"""

GOOD = [{"instruction": "Name a colour.", "output": "Blue."}, {"instruction": "Add", "input": "2 and 2", "output": "4"}]


@pytest.fixture(autouse=True)
def plugins(monkeypatch):
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin,tests.kit.extension_plugin")
    reset_plugin_host()
    yield
    reset_plugin_host()


def _project(tmp_path, records):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("train.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(archive=archive))
    return spec


def test_plugin_format_and_source_are_listed_and_used(tunespec_cli, tmp_path):
    plugins = tunespec_cli("plugins", "--output", "json").json["plugins"]
    mine = next(p for p in plugins if p["name"] == "tests.kit.extension_plugin")
    assert mine["status"] == "ok" and mine["registers"] == {"data sources": ["zip"], "data formats": ["alpaca"]}

    spec = _project(tmp_path, GOOD)
    result = tunespec_cli("validate", spec, "--output", "json")
    assert result.code == 0, result.text
    data = result.json["specs"][0]["data"]
    assert data["splits"]["train"]["examples"] == 2


def test_a_bad_record_is_located_by_file_line_and_json_path(tunespec_cli, tmp_path):
    spec = _project(tmp_path, [*GOOD, {"instruction": "Broken", "output": 42}])
    result = tunespec_cli("validate", spec, "--output", "json")
    assert result.code == 1
    [problem] = [d for d in result.json["specs"][0]["diagnostics"] if d["code"] == "TS203"]
    assert problem["location"]["line"] == 3 and problem["location"]["path"] == "$.output"
    assert problem["location"]["file"].endswith("data.zip!/train.jsonl")


def test_changed_archive_content_changes_the_fingerprint(tunespec_cli, tmp_path):
    spec = _project(tmp_path, GOOD)
    first = tunespec_cli("plan", spec, "--output", "json").json["specs"][0]["fingerprint"]
    _project(tmp_path, [GOOD[0], {**GOOD[1], "output": "four"}])
    second = tunespec_cli("plan", spec, "--output", "json").json["specs"][0]["fingerprint"]
    assert first != second
