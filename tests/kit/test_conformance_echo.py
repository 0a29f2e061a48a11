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
            invalid=[InvalidCase("zero-steps", {"backend": {"steps": 0}}, "TS113", "backend.steps")],
        )
