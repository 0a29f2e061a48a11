"""The worked example plugin (examples/tunespec-kubeflow) passes its own test suite,
conformance kit included, run from source (PYTHONPATH) the way its README says."""

from __future__ import annotations

from pathlib import Path

from tests.kit.helpers import run_pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tunespec-kubeflow"


def test_kubeflow_example_passes_its_tests():
    outcomes, output = run_pytest(EXAMPLE, pythonpath=[EXAMPLE])
    failed = [name for name, outcome in outcomes.items() if outcome != "passed"]
    assert outcomes and not failed, output[-6000:]
    assert "test_conformance_cancel_stops_a_run_in_flight" in outcomes
