"""Spec field paths: one syntax (`a.b[1]`), and a path no spec can have is a plugin bug
its tests catch (strict under pytest), not a silent pointer at the parent block."""

from __future__ import annotations

import pytest

from tunespec.plugins.host import plugin_host
from tunespec.spec.loader import load_documents
from tunespec.spec.paths import join_path, split_path
from tunespec.spec.resolve import UnknownSpecPath
from tunespec.spec.schema import validate_document


def _spec(project):
    path = project.spec()
    path.write_text(path.read_text().replace("  train: data/train.jsonl", "  train: [data/train.jsonl, {path: data/train.jsonl, format: openai}]"))
    [doc], problems = load_documents(path)
    spec, problems = validate_document(doc, plugin_host())
    assert spec is not None, problems
    return spec


def test_paths_round_trip():
    assert split_path("data.train[1].path") == ("data", "train", 1, "path")
    assert join_path(("data", "train", 1, "path")) == "data.train[1].path"
    with pytest.raises(ValueError, match="number in brackets"):
        split_path("data.train[x]")


def test_locate_points_at_list_items_and_defaulted_fields(project):
    spec = _spec(project)
    second = spec.locate("data.train[1].format")
    assert (second.line, second.path) == (8, "data.train[1].format")
    assert second.column > spec.locate("data.train[0]").column
    defaulted = spec.locate("method.lora.rank")  # not written: the nearest written block
    assert defaulted.line is not None and defaulted.path == "method.lora.rank"
    assert spec.locate("backend.steps").path == "backend.steps"  # the echo backend's own option
    assert spec.locate("metadata.labels.anything").path == "metadata.labels.anything"  # free-form


@pytest.mark.parametrize("path", ["backend.adress", "hyperparameters.learning_rte", "data.train.path", "model[0]", "evaluation.metrics.name"])
def test_a_path_no_spec_can_have_is_an_error_in_tests(project, path):
    spec = _spec(project)
    with pytest.raises(UnknownSpecPath, match="no spec field"):
        spec.locate(path)


def test_outside_tests_it_falls_back_to_the_parent(project, monkeypatch):
    monkeypatch.setenv("TUNESPEC_STRICT_PATHS", "0")
    spec = _spec(project)
    assert spec.locate("backend.adress").line == spec.locate("backend").line
