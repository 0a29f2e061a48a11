"""The multimodal example specs travel to Vertex: the same spec file, with only what goes
with the base model changed (a Gemini model instead of the local one, and no absolute
learning rate: a rate chosen for SmolLM2 means nothing for Gemini, and Vertex takes a
multiplier of Google's own) and the `backend:` block, passes `tunespec plan` for Vertex,
and the request it compiles parses into the service's proto."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tunespec_vertex.backend import to_proto

SPECS = Path(__file__).resolve().parents[2] / "specs"
VERTEX_BACKEND = """backend:
  name: vertex
  project: test-project
  location: us-central1
  staging_bucket: gs://placeholder-bucket/tunespec
"""


def for_vertex(text: str) -> str:
    """The example spec with a Gemini base model and the Vertex backend; nothing else changed."""
    text = re.sub(r"(?m)^  base: .*$", "  base: gemini-2.5-flash", text)
    text = re.sub(r"(?m)^  learning_rate: .*\n", "", text)
    return re.sub(r"(?ms)^backend:\n(?:  .*\n)+", VERTEX_BACKEND, text)


@pytest.mark.parametrize("example", ["image", "audio", "document"])
def test_example_spec_plans_for_vertex(project, tmp_path, example):
    folder = tmp_path / example
    shutil.copytree(SPECS / example, folder, ignore=shutil.ignore_patterns("model", "runs", ".tunespec"))
    spec = folder / "tunespec.yaml"
    spec.write_text(for_vertex(spec.read_text()))
    checked = project.check(spec)
    assert checked.ok, [str(d) for d in checked.diagnostics if d.is_error]
    body = checked.plan.job["body"]
    job = to_proto(body)  # unknown fields refused
    assert job.base_model == "gemini-2.5-flash"
    assert checked.plan.job["staged_splits"] == ["train", "validation"]
