"""What `tunespec plan` compiles a spec into: the PyTorchJob a cluster admin would review."""

from __future__ import annotations

import yaml

from tunespec.testing import SECRET_ENV, run_cli


def _compiled(spec):
    result = run_cli("plan", spec, "--output", "json")
    assert result.code == 2, result.text
    return result.json["specs"][0]["plan"]["job"]


def test_pytorchjob_runs_the_local_trainer_on_the_spec(project):
    job = _compiled(project.spec(namespace="ml", resources={"cpu": "8", "memory": "32Gi", "gpus": 1}, env={"HF_HOME": "/cache"}))
    config_map, pytorchjob = job["manifests"]
    assert (pytorchjob["apiVersion"], pytorchjob["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert pytorchjob["metadata"]["name"] == job["name"] and job["name"].startswith("triage-")
    assert pytorchjob["metadata"]["namespace"] == "ml"
    replicas = pytorchjob["spec"]["pytorchReplicaSpecs"]
    assert list(replicas) == ["Master"] and replicas["Master"]["replicas"] == 1
    [container] = replicas["Master"]["template"]["spec"]["containers"]
    assert container["name"] == "pytorch" and container["image"] == "registry.example.com/ml/tunespec:0.1"
    assert container["command"] == ["tunespec", "run-job", "/etc/tunespec/spec.yaml", "--run-dir", "/workspace/runs/triage/.{run_id}.partial",
                                    "--run-id", "{run_id}"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    assert container["resources"]["requests"] == {"cpu": "8", "memory": "32Gi"}
    assert {"name": "HF_HOME", "value": "/cache"} in container["env"]
    assert {"name": SECRET_ENV, "valueFrom": {"secretKeyRef": {"name": "triage", "key": "token"}}} in container["env"]
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == job["name"]

    inner = yaml.safe_load(config_map["data"]["spec.yaml"])
    assert inner["backend"] == {"name": "local"}
    assert inner["data"]["train"][0]["path"] == "/workspace/data/train.jsonl"
    assert inner["output"]["path"] == "/workspace/runs"
    assert inner["metadata"]["labels"]["token"] == "${env:" + SECRET_ENV + "}"  # the container resolves it from the Secret
    labels = pytorchjob["metadata"]["labels"]
    assert labels["team"] == "ml" and "token" not in labels and labels["tunespec.dev/spec"] == "triage"


def test_workers_run_the_trainer_under_torchrun_on_a_shared_volume(project):
    job = _compiled(project.spec(workers=2, volume_claim="ml-data"))
    replicas = job["manifests"][1]["spec"]["pytorchReplicaSpecs"]
    for role in ("Master", "Worker"):
        command = replicas[role]["template"]["spec"]["containers"][0]["command"]
        assert command[:5] == ["torchrun", "-m", "tunespec", "run-job", "/etc/tunespec/spec.yaml"]
    refused = run_cli("validate", project.spec(workers=2), "--output", "json")
    assert refused.code == 1 and "TS313" in refused.out  # without a shared volume the pods cannot share the run's folder


def test_workers_get_a_worker_replica_with_a_distributed_command(project):
    job = _compiled(project.spec(workers=3, command=["torchrun", "train.py"], volume_claim="ml-data"))
    replicas = job["manifests"][1]["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 3
    pod = replicas["Worker"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["torchrun", "train.py"]
    assert {"name": "workdir", "persistentVolumeClaim": {"claimName": "ml-data"}} in pod["volumes"]


def test_the_secret_value_is_in_no_manifest(project):
    job = _compiled(project.spec())
    assert "s3cret-value-for-tests" not in yaml.safe_dump(job)


def test_changing_the_spec_names_a_new_job(project):
    first = _compiled(project.spec())["name"]
    second = _compiled(project.spec(resources={"cpu": "4"}))["name"]
    assert first != second
