"""Experiment tracking: a run sent to MLflow (embedded SQLite store), W&B (offline) and
TensorBoard (event files), each read back with its own library; a tracker failure that
neither fails nor loses the run; tracking left out of the fingerprint."""

from __future__ import annotations

import json
import struct

import pytest

from tunespec.plugins.host import reset_plugin_host

SECRET = "s3cr3t-label-value-41"

TRACKED = """\
  report: true
tracking:
  - mlflow
  - name: wandb
    mode: offline
  - tensorboard
"""


def _tracked_spec(project, tracking: str = TRACKED):
    spec = project.spec(name="triage", backend_extra=tracking)
    # A value from the environment: it must reach no tracker (only its reference may).
    spec.write_text(spec.read_text().replace("metadata:\n  name: triage\n", "metadata:\n  name: triage\n  labels: {team: '${env:TEAM_LABEL}'}\n"))
    return spec


def _apply(cli, project, spec):
    result = cli("apply", spec, "--state", project.root / ".tunespec" / "state.db", "--output", "json")
    assert result.code == 0, result.text
    [run] = result.json["runs"]
    return run


@pytest.mark.slow
def test_a_run_reaches_mlflow_wandb_and_tensorboard_linked_by_its_run_id(cli, project, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("TEAM_LABEL", SECRET)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _apply(cli, project, _tracked_spec(project))
    run_id, run_dir = run["run"]["run_id"], run["run_dir"]
    manifest = json.loads((project.root / run_dir / "manifest.json").read_text())
    for tracker in ("mlflow", "wandb", "tensorboard"):
        assert manifest["tracking"][tracker]["not_sent"] == [], manifest["tracking"][tracker]
    assert cli("verify", run_dir).code == 0  # recording the trackers in the manifest keeps the run intact
    tunespec_dir = project.root / ".tunespec"

    # MLflow: the embedded store beside the state database, read through MLflow's client.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tunespec_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("triage")
    [mlflow_run] = client.search_runs([experiment.experiment_id], filter_string=f"tags.`tunespec.run_id` = '{run_id}'")
    assert mlflow_run.info.run_name == run_id and mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.run_id == manifest["tracking"]["mlflow"]["where"]["run_id"]
    params = mlflow_run.data.params
    assert params["hyperparameters.epochs"] == "2" and params["backend.name"] == "echo"
    assert params["metadata.labels.team"] == "${env:TEAM_LABEL}"  # the reference, never the value
    history = client.get_metric_history(mlflow_run.info.run_id, "train_loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert mlflow_run.data.metrics["eval.tuned.exact_match"] == 0.75 and mlflow_run.data.metrics["eval.base.exact_match"] == 0.25
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
    assert {"data_report.json", "evaluation.json", "manifest.json"} <= artifacts
    local = client.download_artifacts(mlflow_run.info.run_id, "manifest.json", str(project.root))
    assert json.loads(open(local).read())["run_id"] == run_id

    # W&B: the offline run's transaction log, decoded with W&B's own record definitions.
    [wandb_log] = list((tunespec_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    records = _wandb_records(wandb_log)
    [wandb_run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert wandb_run.display_name == run_id and wandb_run.project == "triage"
    config = {u.key: json.loads(u.value_json) for u in wandb_run.config.update}
    assert config["hyperparameters"]["epochs"] == 2
    assert config["metadata"]["labels"]["team"] == "${env:TEAM_LABEL}"
    losses = [{item.nested_key[0]: json.loads(item.value_json) for item in r.history.item}
              for r in records if r.WhichOneof("record_type") == "history"]
    assert [(h["_step"], round(h["train/train_loss"], 4)) for h in losses] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    summary = {"/".join(u.nested_key) or u.key: json.loads(u.value_json) for r in records if r.WhichOneof("record_type") == "summary" for u in r.summary.update}
    assert summary["eval/tuned/exact_match"] == 0.75
    [artifact] = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert {e.path for e in artifact.manifest.contents} == {"data_report.json", "evaluation.json", "manifest.json"}

    # TensorBoard: the event files, read with TensorBoard's own loader.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tunespec_dir / "tensorboard" / "triage" / run_id), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("train/train_loss")] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert events.Scalars("eval/tuned/exact_match")[0].value == 0.75
    spec_text = events.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "epochs: 2" in spec_text and "${env:TEAM_LABEL}" in spec_text

    # Nothing any tracker wrote holds the value.
    for file in tunespec_dir.rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


def _wandb_records(path):
    """The records of a W&B transaction log (.wandb): LevelDB's log format (32 KiB blocks
    of checksummed chunks) after W&B's 7-byte header, each record a protobuf `Record`."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # full, first
            pending = chunk
        elif kind in (3, 4):  # middle, last
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def test_a_failing_tracker_is_a_warning_and_the_manifest_says_what_was_not_sent(cli, project, monkeypatch):
    """A third-party tracker (through the hook) that fails half way: the run succeeds and is
    published, apply warns (TS406), the manifest lists the parts not sent, verify passes."""
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin,tests.core.flaky_tracker_plugin")
    reset_plugin_host()
    notebook = project.root / "notebook.json"
    spec = _tracked_spec(project, f"  report: true\ntracking:\n  - name: notebook\n    file: {notebook}\n    fail_after: metrics\n")
    monkeypatch.setenv("TEAM_LABEL", SECRET)
    human = cli("apply", spec, "--state", project.root / ".tunespec" / "state.db")
    assert human.code == 0
    assert "TS406" in human.err and "notebook" in human.err and "data, evaluation, manifest not sent" in human.err
    assert "succeeded" in human.out
    [run_dir] = [p for p in (project.root / "runs" / "triage").iterdir() if not p.name.startswith(".")]
    tracking = json.loads((run_dir / "manifest.json").read_text())["tracking"]["notebook"]
    assert tracking["sent"] == ["params", "metrics"] and tracking["not_sent"] == ["data", "evaluation", "manifest"]
    assert "notebook server went away" in tracking["error"]
    assert cli("verify", run_dir).code == 0
    sent = json.loads(notebook.read_text())
    assert sent["params"]["metadata"]["labels"]["team"] == "${env:TEAM_LABEL}" and sent["metrics"][0] == [1, {"epoch": 1.0, "train_loss": 1.0, "learning_rate": 0.0001}]


def test_tracking_is_not_part_of_the_fingerprint_and_unknown_trackers_are_located(cli, project, monkeypatch):
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin,tests.core.flaky_tracker_plugin")
    reset_plugin_host()
    monkeypatch.setenv("TEAM_LABEL", SECRET)
    state = project.root / "s.db"
    spec = _tracked_spec(project, f"tracking:\n  - name: notebook\n    file: {project.root / 'a.json'}\n")
    assert cli("apply", spec, "--state", state).code == 0
    spec.write_text(spec.read_text().replace("a.json", "b.json"))
    assert cli("plan", spec, "--state", state).code == 0  # where runs are reported is not what is trained
    spec.write_text(spec.read_text().replace("name: notebook", "name: notebok"))
    bad = cli("validate", spec, "--state", state)
    assert bad.code == 1 and "TS127" in bad.err and "did you mean 'notebook'?" in bad.err
    assert "spec.yaml:15:" in bad.err  # the line of the tracker's name
    spec.write_text(spec.read_text().replace("name: notebok", "name: notebook").replace("file:", "fil:"))
    bad = cli("validate", spec, "--state", state)
    assert bad.code == 1 and "TS110" in bad.err and "tracking[0].fil" in bad.err  # the tracker's own options are checked
