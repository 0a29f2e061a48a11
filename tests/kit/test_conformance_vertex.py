"""The conformance kit against the vertex backend, with the Vertex backend's own stand-ins
for the remote services: the tuning-service emulator (tests/vertex/emulator.py) and
gcp-storage-emulator (the session fixture from tests/vertex/conftest.py), real clients."""

from __future__ import annotations

import uuid

import pytest

from tests.vertex.conftest import storage_emulator  # noqa: F401  (session fixture, reused as is)
from tests.vertex.emulator import TuningEmulator
from tunespec.testing import DELETE, BackendConformance, ConformanceCase, InvalidCase

PROJECT = "test-project"


class TestVertexConformance(BackendConformance):
    pytestmark = [pytest.mark.slow]  # two emulators; a few seconds

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls, storage_emulator):  # noqa: F811
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        bucket = f"conformance-{uuid.uuid4().hex[:12]}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", storage_emulator)
            storage.Client(project=PROJECT, credentials=AnonymousCredentials()).create_bucket(bucket)
        tuning = TuningEmulator(outcome_for={"conformance-fail": "failed"}).start()
        try:
            yield ConformanceCase(
                backend="vertex",
                model="gemini-2.5-flash",
                options={"project": PROJECT, "location": "us-central1", "staging_bucket": f"gs://{bucket}/tunespec", "poll_interval": 0.05},
                spec={"hyperparameters": {"learning_rate": DELETE, "learning_rate_multiplier": 1.0, "batch_size": DELETE}},
                env={
                    "STORAGE_EMULATOR_HOST": storage_emulator,
                    "TUNESPEC_VERTEX_API_ENDPOINT": tuning.endpoint,
                    "TUNESPEC_VERTEX_ANONYMOUS": "1",
                    "GOOGLE_CLOUD_PROJECT": PROJECT,
                },
                in_flight_options={"wait": False},
                outputs=["request.json"],
                failing={},  # the emulated service fails the job of the spec named conformance-fail
                invalid=[
                    InvalidCase("unknown-model", {"model": {"base": "gemini-0.1-nano"}}, "TS301", "model.base"),
                    InvalidCase("full-tuning", {"method": {"type": "full", "lora": DELETE}}, "TS302", "method.type"),
                ],
            )
        finally:
            tuning.stop()
