"""apply/status/cancel against a cluster (the fake one behind kubectl): a job is applied
once, followed to its end by `tunespec status`, and its run verifies."""

from __future__ import annotations

import json
from pathlib import Path

from fake_kubectl import pod_folder, set_condition
from tunespec.testing import run_cli


def _apply(spec):
    result = run_cli("apply", spec, "--yes", "--output", "json")
    return result, result.json["runs"][0]


def test_submitted_job_is_followed_to_success_and_verifies(project, cluster):
    spec = project.spec()
    result, outcome = _apply(spec)
    assert result.code == 0 and outcome["action"] == "submitted", result.text
    namespace, name = outcome["run"]["remote_id"].split("/")
    stored = json.loads((cluster / namespace / "pytorchjob" / f"{name}.json").read_text())
    assert stored["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["name"] == "pytorch"
    assert (cluster / namespace / "configmap" / f"{name}.json").exists()

    assert run_cli("status", spec, "--output", "json").json["runs"][0]["status"] == "pending"
    set_condition(cluster, namespace, name, "Running")
    assert run_cli("status", spec, "--output", "json").json["runs"][0]["status"] == "running"
    assert _apply(spec)[1]["action"] == "in-flight"  # never started twice

    # What `tunespec run-job` leaves in the container's run folder (tested on its own in
    # tunespec's suite): the adapter, the metrics, and result.json for this side.
    run_id = outcome["run"]["run_id"]
    folder = pod_folder(cluster, namespace, f"{name}-master-0") / f"workspace/runs/triage/.{run_id}.partial"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    (folder / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.0}\n')
    (folder / "result.json").write_text(json.dumps({"status": "succeeded", "message": "80 steps", "metrics": {"steps": 80}}))
    set_condition(cluster, namespace, name, "Succeeded", "PyTorchJob triage succeeded")
    [run] = run_cli("status", spec, "--output", "json").json["runs"]
    assert run["status"] == "succeeded"
    assert run_cli("verify", run["run_dir"]).code == 0
    manifest = json.loads((Path(run["run_dir"]) / "manifest.json").read_text())
    assert manifest["outputs"]["pytorchjob"] == f"{namespace}/{name}"
    assert manifest["metrics"] == {"steps": 80}  # the job's own result
    listed = {f["path"] for f in manifest["files"]}
    assert {"adapter/adapter_config.json", "metrics.jsonl", "pytorchjob.yaml"} <= listed and "result.json" not in listed
    assert (Path(run["run_dir"]) / "pytorchjob.yaml").read_text().count("kind: PyTorchJob") == 1


def test_failed_job_fails_the_run(project, cluster):
    spec = project.spec()
    outcome = _apply(spec)[1]
    namespace, name = outcome["run"]["remote_id"].split("/")
    set_condition(cluster, namespace, name, "Failed", "pod OOMKilled")
    status = run_cli("status", spec, "--output", "json")
    assert status.code == 1
    assert status.json["runs"][0]["status"] == "failed" and status.json["runs"][0]["message"] == "pod OOMKilled"


def test_kubectl_error_is_a_diagnostic_not_a_traceback(project, cluster):
    result, outcome = _apply(project.spec(namespace="missing"))
    assert result.code == 1
    assert [d["code"] for d in outcome["diagnostics"]] == ["TS308"]
    assert 'namespaces "missing" not found' in outcome["diagnostics"][0]["message"]


def test_without_kubectl_apply_writes_the_manifest_only(project, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result, outcome = _apply(project.spec())
    assert result.code == 0 and outcome["result"]["status"] == "succeeded"
    assert outcome["result"]["outputs"]["submitted"] is False and "not applied" in outcome["result"]["message"]
    assert (Path(outcome["run_dir"]) / "pytorchjob.yaml").exists()


def test_submit_always_without_kubectl_fails_with_a_located_diagnostic(project, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    spec = project.spec(submit="always")
    result, outcome = _apply(spec)
    assert result.code == 1
    [diagnostic] = outcome["diagnostics"]
    assert diagnostic["code"] == "TS309" and diagnostic["location"]["file"] == str(spec)
