"""tunespec's pytest plugin, registered through the ``pytest11`` entry point.

pytest loads it in every run where tunespec is installed, so it imports nothing but
pytest and adds little a test suite does not ask for: one marker, one fixture that only
does work when a test requests it, and strict spec paths (`ResolvedSpec.locate` raises for
a path no spec can have, so a plugin's tests catch a typo in where it points). The conformance kit itself is a base class a
plugin's tests import and subclass (`tunespec.testing.BackendConformance`).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # In tests, `ResolvedSpec.locate` of a path no spec can have is an error (a typo in a
    # plugin's diagnostics), not a quiet fallback to the parent block.
    import os

    os.environ.setdefault("TUNESPEC_STRICT_PATHS", "1")
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
