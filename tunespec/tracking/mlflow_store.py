"""The MLflow tracker: one MLflow run per tunespec run, named by its run id."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunespec.tracking import Sent, TrackedRun
    from tunespec.tracking.builtin import MlflowOptions

# MLflow's limits on one log_batch call, and on a parameter value (MLflow >= 2.x).
MAX_PARAMS, MAX_METRICS, MAX_PARAM_CHARS = 100, 1000, 6000
STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}


def default_uri(project_dir: Path) -> str:
    """The embedded store: a SQLite database beside the state database."""
    return f"sqlite:///{(project_dir / 'mlflow.db').absolute()}"


def send_to_mlflow(run: "TrackedRun", options: "MlflowOptions", sent: "Sent") -> None:
    import logging

    for name in ("mlflow", "alembic"):  # their INFO lines (database migrations) are not the user's business
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = options.uri or default_uri(run.project_dir)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment(client, options.experiment or run.spec_name, None if options.uri else run.project_dir / "mlflow-artifacts")
    tags = {"tunespec.run_id": run.run_id, "tunespec.spec": run.spec_name, "tunespec.backend": run.backend,
            "tunespec.fingerprint": run.fingerprint, "tunespec.status": run.status, "tunespec.run_dir": str(run.run_dir)}
    mlflow_run = _existing_run(client, experiment_id, run.run_id) or client.create_run(experiment_id, run_name=run.run_id, tags=tags)
    run_id = mlflow_run.info.run_id
    sent.where.update({"uri": uri, "experiment_id": experiment_id, "run_id": run_id})

    params = [Param(k[:250], v[:MAX_PARAM_CHARS]) for k, v in run.flat_params().items()]
    logged = set(mlflow_run.data.params)  # a run sent again (an earlier attempt failed half way) keeps its params
    params = [p for p in params if p.key not in logged]
    for i in range(0, len(params), MAX_PARAMS):
        client.log_batch(run_id, params=params[i:i + MAX_PARAMS])
    sent.part("params")

    now = int(time.time() * 1000)
    metrics = [Metric(name, value, now, step) for step, numbers in run.step_metrics() for name, value in numbers.items()]
    for i in range(0, len(metrics), MAX_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + MAX_METRICS])
    sent.part("metrics")

    client.log_dict(run_id, run.data, "data_report.json")
    sent.part("data")

    evaluation = [Metric(name.replace("/", "."), value, now, 0) for name, value in run.evaluation_metrics().items()]
    if evaluation:
        client.log_batch(run_id, metrics=evaluation)
    client.log_dict(run_id, run.evaluation, "evaluation.json")
    sent.part("evaluation")

    client.log_dict(run_id, run.manifest, "manifest.json")
    client.log_batch(run_id, tags=[RunTag("tunespec.manifest_files", str(len(run.manifest.get("files", []))))])
    client.set_terminated(run_id, status=STATUS.get(run.status, "FAILED"))
    sent.part("manifest")


def _experiment(client: Any, name: str, artifacts: Path | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = artifacts.absolute().as_uri() if artifacts is not None else None
    return client.create_experiment(name, artifact_location=location)


def _existing_run(client: Any, experiment_id: str, tunespec_run_id: str) -> Any:
    """The MLflow run already made for this tunespec run (one run per run id, however many
    times it is sent)."""
    found = client.search_runs([experiment_id], filter_string=f"tags.`tunespec.run_id` = {json.dumps(tunespec_run_id)}", max_results=1)
    return found[0] if found else None
