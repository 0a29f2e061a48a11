"""The conformance kit against the local backend: one real LoRA run (torch + peft) on a
tiny random-init model, two optimizer steps."""

from __future__ import annotations

import pytest

from tunespec.testing import BackendConformance, ConformanceCase, InvalidCase, make_tiny_model, train_texts


class TestLocalConformance(BackendConformance):
    pytestmark = [pytest.mark.slow]  # trains a tiny model for two steps

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls, tmp_path_factory) -> ConformanceCase:
        model = make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus=train_texts())
        return ConformanceCase(
            backend="local",
            model=str(model),
            options={"device": "cpu", "num_threads": 2},
            spec={"hyperparameters": {"max_steps": 2, "batch_size": 4}},
            outputs=["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "metrics.jsonl"],
            invalid=[
                InvalidCase("missing-model", {"model": {"base": "./no-such-model"}}, "TS306", "model.base"),
                InvalidCase("video-modality", {"data": {"modality": "video"}}, "TS302", "data.modality"),
            ],
        )
