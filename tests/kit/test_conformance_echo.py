"""The conformance kit against the echo test backend (tests/core/echo_plugin.py): the kit's
fast path, and proof that the kit passes a backend that honours the contract."""

from __future__ import annotations

import pytest

from tunespec.testing import BackendConformance, ConformanceCase, InvalidCase


class TestEchoConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls) -> ConformanceCase:
        return ConformanceCase(
            backend="echo",
            model="tiny-model",
            options={"steps": 2},
            plugin_module="tests.core.echo_plugin",
            outputs=["steps.txt"],
            failing={"backend": {"outcome": "failed"}},
            invalid=[InvalidCase("zero-steps", {"backend": {"steps": 0}}, "TS113", "backend.steps")],
        )


class TestEchoCheapConformance(BackendConformance):
    """`apply=False`: the cheap half of the kit (what a backend without a test service runs)."""

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls) -> ConformanceCase:
        return ConformanceCase(
            backend="echo",
            model="tiny-model",
            plugin_module="tests.core.echo_plugin",
            apply=False,
            invalid=[InvalidCase("zero-steps", {"backend": {"steps": 0}}, "TS113", "backend.steps")],
        )

    def test_nothing_was_applied(self, conformance_project) -> None:
        assert not (conformance_project.root / "runs").exists()
