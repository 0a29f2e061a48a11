"""docs/spec-reference.md is generated from the models and must match them."""

from __future__ import annotations

import re
from pathlib import Path

from tunespec import docgen
from tunespec.spec.model import TuningJob

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "spec-reference.md"


def test_checked_in_reference_is_current():
    assert REFERENCE.read_text() == docgen.render(), "docs/spec-reference.md is stale: run `.venv/bin/python -m tunespec.docgen` and commit it"


def test_every_field_has_a_row_with_type_default_and_description():
    text = docgen.render()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for row in rows:
        field, kind, default, description = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:5]]
        assert kind and default and description, f"incomplete row: {row}"
    documented = {re.match(r"\| `([^`]+)`", row).group(1) for row in rows}
    for block in docgen._blocks(TuningJob, "TuningJob"):
        for name, field in block.model.model_fields.items():
            assert (field.alias or name) in documented
    for name, backend in docgen.builtin_backends():
        assert f"`name: {name}`" in text
        assert set(backend.config_model.model_fields) <= documented


def test_check_mode_fails_on_a_stale_file_and_passes_after_regenerating(tmp_path, capsys):
    out = tmp_path / "ref.md"
    out.write_text("# old\n")
    assert docgen.main(["--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
    assert docgen.main(["--output", str(out)]) == 0
    assert docgen.main(["--check", "--output", str(out)]) == 0
