"""`tunespec init --plugin NAME`: the scaffolded package is complete and passes its own
conformance tests out of the box (run from source with PYTHONPATH, nothing installed)."""

from __future__ import annotations

import tomllib

import pytest

from tests.kit.helpers import run_pytest


def test_scaffolded_plugin_passes_its_own_tests(tunespec_cli, tmp_path):
    result = tunespec_cli("init", "--plugin", "acme-cloud", tmp_path)
    assert result.code == 0, result.text
    root = tmp_path / "tunespec-acme-cloud"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "pyproject.toml",
        "tests/test_conformance.py",
        "tunespec_acme_cloud/__init__.py",
        "tunespec_acme_cloud/plugin.py",
    ]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["tunespec"] == {"acme-cloud": "tunespec_acme_cloud.plugin"}
    assert pyproject["project"]["name"] == "tunespec-acme-cloud"

    outcomes, output = run_pytest(root, pythonpath=[root])
    failed = [name for name, outcome in outcomes.items() if outcome == "failed"]
    assert outcomes and not failed, output[-6000:]
    passed = {name for name, outcome in outcomes.items() if outcome == "passed"}
    assert {"test_conformance_apply_produces_a_verified_run", "test_conformance_secrets_never_reach_artifacts_state_or_output",
            "test_conformance_backend_rejects_bad_specs"} <= passed


def test_scaffold_never_overwrites(tunespec_cli, tmp_path):
    assert tunespec_cli("init", "--plugin", "acme", tmp_path).code == 0
    plugin = tmp_path / "tunespec-acme" / "tunespec_acme" / "plugin.py"
    plugin.write_text("# my work\n")
    again = tunespec_cli("init", "--plugin", "acme", tmp_path)
    assert again.code == 1 and "TS001" in again.err and "not overwriting" in again.err
    assert plugin.read_text() == "# my work\n"


@pytest.mark.parametrize("name", ["Acme", "acme_cloud", "1acme", "a", "acme-"])
def test_scaffold_rejects_names_that_are_not_backend_names(tunespec_cli, tmp_path, name):
    result = tunespec_cli("init", "--plugin", name, tmp_path)
    assert result.code == 1 and "invalid plugin name" in result.err and "hint" in result.err
    assert not list(tmp_path.iterdir())
