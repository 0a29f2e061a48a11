"""tunespec's pytest plugin is auto-loaded by every pytest run where tunespec is installed,
so it must be registered, cheap to import, and inert in a suite that does not use it."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import distributions

from tests.kit.helpers import run_pytest


def test_registered_as_a_pytest11_entry_point():
    # Every distribution, as pytest itself looks (a stale tunespec.egg-info in the checkout
    # would hide the installed one from a by-name lookup).
    found = {ep.value for dist in distributions() for ep in dist.entry_points if ep.group == "pytest11" and ep.name == "tunespec"}
    assert found == {"tunespec.testing.pytest_plugin"}


def test_importing_the_plugin_imports_no_heavy_library_and_not_the_kit():
    script = (
        "import json, sys\n"
        "import tunespec.testing.pytest_plugin\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'ray', 'transformers', 'peft', 'tokenizers') or m.startswith(('google.cloud.', 'google.protobuf', 'tunespec.testing.conformance', 'tunespec.cli')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_an_unrelated_suite_sees_only_a_marker_and_an_idle_fixture(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n"
        "def test_plain():\n"
        "    assert 'tunespec.testing.conformance' not in sys.modules\n"
        "def test_cli_fixture_runs_tunespec(tunespec_cli):\n"
        "    assert tunespec_cli('--version').code == 0\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    outcomes, output = run_pytest(tmp_path, "-m", "not tunespec_conformance")
    assert outcomes == {"test_plain": "passed", "test_cli_fixture_runs_tunespec": "passed"}, output
