"""Tuning jobs: create exactly once, follow to the end, and report what they produced.

Idempotency: every job carries the label `tunespec_run=<run id>`. Before creating, and
again before re-trying a create whose answer was lost (timeout, dropped connection), the
backend looks for a job with that label, so a retry or a re-run after a crash never starts
a second billable job. The lookup asks the service to filter by label and, because label
filters are not documented for tuning jobs, checks the label itself on every job returned
(falling back to listing every job when the filter is refused).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from tunespec import Diagnostic, Location, Progress, RunResult, Severity

from tunespec_vertex.clients import call, diagnose, retry_policy, transient
from tunespec_vertex.labels import RUN_LABEL

# Every JobState, mapped to tunespec's run status. PARTIALLY_SUCCEEDED and EXPIRED are
# terminal: the first is judged by whether a tuned model exists, the second is a failure.
STATUS_OF_STATE = {
    "JOB_STATE_UNSPECIFIED": "pending",
    "JOB_STATE_QUEUED": "pending",
    "JOB_STATE_PENDING": "pending",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_UPDATING": "running",
    "JOB_STATE_PAUSED": "running",
    "JOB_STATE_CANCELLING": "running",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
}
TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_EXPIRED", "JOB_STATE_CANCELLED"}


def state_name(job: Any) -> str:
    return job.state.name if hasattr(job.state, "name") else str(job.state)


def find_job(client: Any, parent: str, run_id: str, timeout: float) -> Any | None:
    """The job labelled with this run id, if the service has one."""
    from google.api_core import exceptions as gexc

    def matching(jobs: Any) -> Any | None:
        return next((j for j in jobs if j.labels.get(RUN_LABEL) == run_id), None)

    def list_matching(request: dict[str, Any]) -> Any | None:
        return matching(client.list_tuning_jobs(request=request, retry=retry_policy(), timeout=timeout))

    try:
        return list_matching({"parent": parent, "filter": f'labels.{RUN_LABEL}="{run_id}"'})
    except gexc.BadRequest:  # the filter was refused: list everything and filter here
        return call("list tuning jobs", lambda: list_matching({"parent": parent}))
    except Exception as exc:
        raise diagnose(exc, "list tuning jobs") or exc from None


def submit(
    client: Any,
    parent: str,
    job: Any,
    run_id: str,
    timeout: float,
    *,
    create: Callable[[], Any] | None = None,
    deadline: float = 600.0,
    initial_delay: float = 1.0,
    log: Callable[[str], None] = lambda m: None,
) -> tuple[Any, bool]:
    """Create the job; returns (job, created). The caller has looked for an existing job
    of this run (`find_job`) first; a create whose answer is lost is not blindly retried:
    the service is asked for the run's job before each new attempt. `create` sends the
    request another way (google-genai for preference jobs) and returns the job's name."""
    delay, give_up = initial_delay, time.monotonic() + deadline
    while True:
        try:
            # No automatic retry here: a blind retry of a create that the service accepted
            # but whose answer was lost would start a second job.
            if create is not None:
                return get_job(client, create(), timeout), True
            created = client.create_tuning_job(parent=parent, tuning_job=job, retry=None, timeout=timeout)
            return created, True
        except Exception as exc:
            if not transient(exc) or time.monotonic() + delay > give_up:
                raise diagnose(exc, "create tuning job") or exc from None
            log(f"create tuning job: {type(exc).__name__}; checking whether the service created it, then retrying in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
            existing = find_job(client, parent, run_id, timeout)
            if existing is not None:
                log(f"the service had created the job: {existing.name}")
                return existing, True


def genai_request(body: dict[str, Any]) -> tuple[str, Any, Any]:
    """A preference tuning request body (the JSON `plan` prints) as google-genai's
    `tunings.tune(base_model, training_dataset, config)` arguments, which send exactly it
    back (tests/vertex checks the emulator receives the planned body)."""
    from google.genai import types

    spec = body["preferenceOptimizationSpec"]
    hp = spec.get("hyperParameters", {})
    pre = body.get("preTunedModel") or {}
    extra = {k: body[k] for k in ("serviceAccount", "description") if k in body}
    config = types.CreateTuningJobConfig(
        method="PREFERENCE_TUNING",
        tuned_model_display_name=body.get("tunedModelDisplayName"),
        validation_dataset=types.TuningValidationDataset(gcs_uri=spec["validationDatasetUri"]) if spec.get("validationDatasetUri") else None,
        epoch_count=hp.get("epochCount"),
        learning_rate_multiplier=hp.get("learningRateMultiplier"),
        adapter_size=hp.get("adapterSize"),
        beta=hp.get("beta"),
        export_last_checkpoint_only=spec.get("exportLastCheckpointOnly"),
        pre_tuned_model_checkpoint_id=pre.get("checkpointId"),
        labels=body.get("labels"),
        encryption_spec=types.EncryptionSpec(kms_key_name=body["encryptionSpec"]["kmsKeyName"]) if "encryptionSpec" in body else None,
        # Fields the SDK's config does not name travel as they are, in the same body.
        http_options=types.HttpOptions(extra_body=extra) if extra else None,
    )
    base = pre.get("tunedModelName") or body["baseModel"]  # the SDK sends a projects/... base as preTunedModel
    return base, types.TuningDataset(gcs_uri=spec["trainingDatasetUri"]), config


def genai_create(genai: Any, body: dict[str, Any]) -> Callable[[], str]:
    """`submit`'s create for a preference job: google-genai sends the body, the job's name comes back."""

    def create() -> str:
        base, dataset, config = genai_request(body)
        return genai.tunings.tune(base_model=base, training_dataset=dataset, config=config).name

    return create


def get_job(client: Any, name: str, timeout: float) -> Any:
    return call(f"get {name}", lambda: client.get_tuning_job(name=name, retry=retry_policy(), timeout=timeout))


def cancel_job(client: Any, name: str, timeout: float) -> Any:
    call(f"cancel {name}", lambda: client.cancel_tuning_job(name=name, retry=retry_policy(), timeout=timeout))
    return get_job(client, name, timeout)


def wait_for(client: Any, name: str, interval: float, timeout: float, progress: Progress) -> Any:
    """Poll until the job reaches a terminal state, showing its state as it changes."""
    job_id = name.rsplit("/", 1)[-1]
    last = None
    with progress.task(f"vertex tuning job {job_id}", total=None) as task:
        try:
            while True:
                job = get_job(client, name, timeout)
                state = state_name(job)
                if state != last:
                    task.update(state=state.removeprefix("JOB_STATE_").lower())
                    progress.log(f"vertex tuning job {job_id}: {state.removeprefix('JOB_STATE_')}")
                    last = state
                if state in TERMINAL:
                    return job
                time.sleep(interval)
        except KeyboardInterrupt:
            progress.log(f"stopped waiting; {name} keeps running on Vertex: `tunespec apply` follows it again, "
                         "`tunespec cancel` stops it")
            raise


def result_of(job: Any) -> RunResult:
    """The job as a RunResult: status, outputs (resource names, data stats), metrics, error."""
    from google.protobuf import json_format

    state = state_name(job)
    status = STATUS_OF_STATE.get(state, "running")
    warnings = data_stat_warnings(job)
    outputs: dict[str, Any] = {"tuning_job": job.name, "state": state.removeprefix("JOB_STATE_")}
    if job.tuned_model.model:
        outputs["tuned_model"] = job.tuned_model.model
    if job.tuned_model.endpoint:
        outputs["endpoint"] = job.tuned_model.endpoint
    if job.tuned_model.checkpoints:
        outputs["checkpoints"] = [
            {"checkpoint_id": c.checkpoint_id, "epoch": c.epoch, "step": c.step, "endpoint": c.endpoint}
            for c in job.tuned_model.checkpoints
        ]
    if job.output_uri:
        outputs["output_uri"] = job.output_uri
    sts_spec = job.supervised_tuning_spec
    outputs["datasets"] = {k: v for k, v in (("train", sts_spec.training_dataset_uri), ("validation", sts_spec.validation_dataset_uri)) if v}
    stats_pb = type(job.tuning_data_stats).pb(job.tuning_data_stats)
    stats = json_format.MessageToDict(stats_pb, preserving_proto_field_name=True)
    if stats:
        outputs["tuning_data_stats"] = stats
    if warnings:
        outputs["warnings"] = [w.to_json() for w in warnings]
    sts = job.tuning_data_stats.supervised_tuning_data_stats
    metrics = {
        k: int(getattr(sts, k))
        for k in ("tuning_dataset_example_count", "tuning_step_count", "total_billable_token_count", "total_truncated_example_count")
        if getattr(sts, k)
    }
    if sts.dropped_example_reasons:
        metrics["dropped_example_count"] = len(sts.dropped_example_reasons)
    error = None
    message = f"vertex job {state.removeprefix('JOB_STATE_').lower()}"
    if state == "JOB_STATE_PARTIALLY_SUCCEEDED":
        if not job.tuned_model.model:
            status = "failed"
        message = "vertex job partially succeeded" + (f": {job.error.message}" if job.error.message else "")
    if job.error.code or job.error.message or status == "failed":
        error = {"code": job.error.code, "message": job.error.message or f"tuning job ended in {state}", "state": state}
        if status == "failed":
            message = f"vertex job {state.removeprefix('JOB_STATE_').lower()}: {error['message']}"
    if warnings:
        message += f" ({len(warnings)} data warning{'s' if len(warnings) > 1 else ''} from the service)"
    return RunResult(status=status, message=message, remote_id=job.name, outputs=outputs, metrics=metrics, error=error)  # type: ignore[arg-type]


def data_stat_warnings(job: Any) -> list[Diagnostic]:
    """What the service did silently to the data: truncated or dropped examples."""
    sts = job.tuning_data_stats.supervised_tuning_data_stats
    where = Location(job.name or None, path="tuning_data_stats.supervised_tuning_data_stats")
    out = []
    if sts.total_truncated_example_count:
        indices = list(sts.truncated_example_indices)[:20]
        out.append(Diagnostic(
            "TS215", f"the service truncated {sts.total_truncated_example_count} training example(s)"
            + (f" (0-based indices {indices})" if indices else ""),
            where, "shorten those examples below 131,072 tokens; truncated examples lose their ends", Severity.WARNING,
        ))
    if sts.dropped_example_reasons:
        reasons = sorted(set(sts.dropped_example_reasons))[:5]
        out.append(Diagnostic(
            "TS203", f"the service dropped {len(sts.dropped_example_reasons)} training example(s): {'; '.join(reasons)}",
            where, "fix or remove those examples; dropped examples are not trained on", Severity.WARNING,
        ))
    return out
