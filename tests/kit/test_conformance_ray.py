"""The conformance kit against the ray backend: one real run (2 Ray Train workers, two
optimizer steps on a tiny model). The backend reuses a Ray cluster this process already
has open (tests/ray's session cluster, when those tests ran first); otherwise it starts an
embedded one for the run and shuts it down. Everything but that one apply stays Ray-free."""

from __future__ import annotations

import pytest

from tunespec.testing import BackendConformance, ConformanceCase, InvalidCase, make_tiny_model, train_texts


class TestRayConformance(BackendConformance):
    pytestmark = [pytest.mark.slow]  # one Ray Train run (~30 s)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls, tmp_path_factory) -> ConformanceCase:
        model = make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus=train_texts())
        return ConformanceCase(
            backend="ray",
            model=str(model),
            options={"num_workers": 2, "num_cpus": 2},
            spec={"hyperparameters": {"max_steps": 2, "batch_size": 4}},
            env={"RAY_DEDUP_LOGS": "1"},
            timeout=240,
            outputs=["adapter/adapter_config.json", "metrics.jsonl"],
            invalid=[
                InvalidCase("missing-model", {"model": {"base": "./no-such-model"}}, "TS306", "model.base"),
                InvalidCase("too-few-cpus", {"backend": {"num_cpus": 1}}, "TS309", "backend.num_cpus"),
            ],
        )
