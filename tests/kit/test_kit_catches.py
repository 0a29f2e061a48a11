"""The kit fails a backend that breaks the contract, naming each broken rule: run against
tests/kit/sloppy_plugin.py in a separate pytest process."""

from __future__ import annotations

from pathlib import Path

from tests.kit.helpers import run_pytest

REPO = Path(__file__).resolve().parents[2]

SUITE = '''
import pytest
from tunespec.testing import BackendConformance, ConformanceCase, InvalidCase

class TestSloppy(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls):
        return ConformanceCase(
            backend="sloppy", model="m", plugin_module="tests.kit.sloppy_plugin",
            heavy_modules=("xml.dom.minidom",),
            invalid=[InvalidCase("full", {"method": {"type": "full", "lora": None}}, "TS302", "method.type")],
        )
'''


def test_the_kit_fails_a_backend_that_breaks_the_contract(tmp_path):
    (tmp_path / "test_sloppy.py").write_text(SUITE)
    outcomes, output = run_pytest(tmp_path, pythonpath=[REPO])
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    assert failed == {
        "test_conformance_config_model_exports_json_schema",  # undocumented option, extra keys allowed
        "test_conformance_unknown_option_is_located",  # a typo in the backend block passes
        "test_conformance_backend_rejects_bad_specs",  # validate lets full fine-tuning through
        "test_conformance_validate_and_plan_import_nothing_heavy",
        "test_conformance_compile_is_deterministic",  # a timestamp in the job
        "test_conformance_secrets_never_reach_artifacts_state_or_output",  # notes.bin
    }, output[-6000:]
    assert "notes.bin" in output and "xml.dom.minidom" in output and "Field(description" in output
    assert outcomes["test_conformance_apply_produces_a_verified_run"] == "passed"
