"""Fixtures for the ray backend's tests.

`ray_cluster` starts ONE embedded Ray cluster (2 CPUs) for the whole session and always
shuts it down: starting Ray costs seconds, and the backend reuses a connection that is
already open (`cluster.connected`). Tests that start no cluster (plan/validate) never
import Ray.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """One embedded 2-CPU Ray cluster for the session, shut down at the end."""
    import logging

    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory):
    """A folder with a tiny random-init model (tokenizer trained on the data) and a small
    slice of the quickstart data: what every end-to-end spec here trains on."""
    from ray_helpers import QUICKSTART_DATA

    from tunespec.testing import make_tiny_model

    folder = tmp_path_factory.mktemp("ray-project")
    train = QUICKSTART_DATA.read_text().splitlines()[:24]
    validation = (QUICKSTART_DATA.parent / "validation.jsonl").read_text().splitlines()[:4]
    (folder / "train.jsonl").write_text("\n".join(train) + "\n")
    (folder / "validation.jsonl").write_text("\n".join(validation) + "\n")
    make_tiny_model(folder / "model", corpus=train)
    return folder
