"""tunespec's pytest plugin, registered through the ``pytest11`` entry point.

pytest loads it in every run where tunespec is installed, so it imports nothing but
pytest and adds nothing a test suite does not ask for: one marker, and one fixture that
only does work when a test requests it. The conformance kit itself is a base class a
plugin's tests import and subclass (`tunespec.testing.BackendConformance`).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tunespec_conformance: a test from tunespec's backend conformance kit (tunespec.testing.BackendConformance)",
    )


@pytest.fixture
def tunespec_cli() -> Callable[..., Any]:
    """Run ``tunespec ARGS`` in-process: ``tunespec_cli("plan", spec, "-o", "json")`` returns
    a result with ``code``, ``out``, ``err`` and ``json``; a crash (TS004) fails the test."""
    from tunespec.testing.cli import run_cli

    return run_cli
