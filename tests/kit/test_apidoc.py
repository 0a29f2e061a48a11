"""docs/api.md is generated from the public API's docstrings and must match them; every
public name a plugin receives is documented, and so is every diagnostic code."""

from __future__ import annotations

import re
from pathlib import Path

from tunespec import apidoc
from tunespec.diagnostics.codes import CODES

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_checked_in_api_reference_is_current():
    assert REFERENCE.read_text() == apidoc.render(), "docs/api.md is stale: run `.venv/bin/python -m tunespec.apidoc` and commit it"


def test_every_field_member_and_code_is_documented():
    text = apidoc.render()
    rows = [line for line in text.splitlines() if line.startswith("| `") and not line.startswith("| `TS")]
    undocumented = [row for row in rows if not re.split(r"(?<!\\)\|", row)[-2].strip()]
    assert not undocumented, f"fields without a docstring: {undocumented}"
    members = re.findall(r"^### `([^`(]+)", text, re.M)
    for member in members:
        body = text.split(f"### `{member}", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        assert len(body.strip().splitlines()) > 1, f"{member} has no docstring"
    for code in CODES:
        assert f"| `{code}` |" in text
    for name in ("Backend", "RunContext", "RunRecord", "ResolvedSpec", "Plan", "FieldMapping", "RunResult", "Diagnostic"):
        assert f"## {name}\n" in text
