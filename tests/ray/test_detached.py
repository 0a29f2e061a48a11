"""Detached runs: what the Ray job runs on the cluster (`python -m tunespec_ray.remote`),
against the session's real Ray cluster. The Jobs API server itself (the dashboard) needs
`ray[default]`, which this environment does not install, so submission is covered by the
plan tests (the exact request) and this test covers everything the job does."""

from __future__ import annotations

import json

import pytest

from tunespec.artifacts import RunDirectory
from tunespec_ray import remote

from ray_helpers import write_spec

pytestmark = pytest.mark.slow


def test_the_job_entrypoint_runs_the_spec_attached_and_publishes_its_files(ray_cluster, tiny_project, tmp_path, monkeypatch):
    storage = tmp_path / "shared-storage"
    backend = f"  name: ray\n  address: ray://ray-head.internal:10001\n  wait: false\n  num_workers: 2\n  storage_path: {storage}"
    spec = write_spec(tiny_project, backend, name="ray-detached", hyper="  max_steps: 2\n")
    # What the Ray job's runtime_env sets on the cluster (see the plan's `submission`).
    monkeypatch.setenv("TUNESPEC_RAY_ATTACHED", "1")
    result_uri = storage / "ray-detached-run1" / "result"

    assert remote.main([str(spec), "--run-id", "run1", "--result", str(result_uri)]) == 0

    # The job wrote the run's files where `tunespec status` collects them...
    assert {p.name for p in result_uri.iterdir()} >= {"adapter", "metrics.jsonl", "result.json"}
    # ...and its checkpoints under storage_path, named after the run.
    assert (storage / "ray-detached-run1").is_dir()
    # `status` copies them into the run's staging folder and returns the run's result.
    staging = RunDirectory(tmp_path / "runs", "ray-detached", "run1").create()
    result = remote.collect_result(str(result_uri), staging.path)
    assert result.status == "succeeded" and result.metrics["steps"] == 2
    assert (staging.path / "adapter" / "adapter_config.json").is_file()
    assert not (staging.path / "result.json").exists()
    steps = [json.loads(line)["step"] for line in (staging.path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
