"""Detached runs: a spec submitted to a Ray cluster through the Ray Jobs API.

    apply (here)     submit_job(entrypoint="python -m tunespec_ray.remote <spec> ...") and
                     return RunResult(status="running", remote_id=<submission id>)
    the job (there)  `main()` below: checks the spec like `apply` does, runs it attached to
                     the cluster it is on, and writes the run's files (adapter/ or model/,
                     metrics.jsonl) plus result.json to `<storage_path>/<spec>-<run id>/result/`
    status (here)    follows the job; when it succeeded, copies result/ into the run's
                     staging folder, so tunespec writes the same manifest as for any run

The submission id is derived from the run id: a retried `apply` finds the job it already
submitted instead of starting a second one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tunespec import Diagnostic, DiagnosticError, Location, RunContext, RunResult
from tunespec.artifacts import RunDirectory
from tunespec.pipeline import RESULT_FILE
from tunespec_ray.job import fill_placeholders

# Ray job states -> tunespec run states.
STATUS = {"PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed", "STOPPED": "cancelled"}


# Here: submit, follow, stop ----------------------------------------------------------------


def submit(ctx: RunContext, submission: dict[str, Any]) -> RunResult:
    client = _client(submission["address"])
    job_id = submission["submission_id"]
    if ctx.record_remote_id is not None:
        ctx.record_remote_id(job_id)  # before submitting: a crash now still finds the job later
    try:
        info = client.get_job_info(job_id)
    except RuntimeError:  # "job does not exist": submit it
        info = None
    if info is None:
        client.submit_job(
            entrypoint=submission["entrypoint"],
            submission_id=job_id,
            runtime_env=submission["runtime_env"],
            metadata={k: str(v) for k, v in submission["metadata"].items()},
        )
        status, message = "pending", f"submitted Ray job {job_id} to {submission['address']}"
    else:
        status, message = STATUS.get(str(info.status), "running"), f"Ray job {job_id} already submitted"
    ctx.progress.log(f"{message}; follow it with `tunespec status`")
    return RunResult(status="running" if status == "pending" else status, remote_id=job_id, message=message,
                     outputs={"ray_job": job_id, "ray_dashboard": submission["address"]})


def job_status(run: Any) -> RunResult:
    submission = _submission(run)
    client = _client(submission.get("address", "auto"))
    info = client.get_job_info(run.remote_id)
    status = STATUS.get(str(info.status), "running")
    outputs = {"ray_job": run.remote_id, "ray_dashboard": submission.get("address")}
    if status != "succeeded":
        error = {"message": info.message} if status == "failed" else None
        return RunResult(status=status, remote_id=run.remote_id, message=info.message, outputs=outputs, error=error)
    staging = RunDirectory(Path(run.run_dir).parent.parent, run.spec_name, run.run_id).create()
    result = collect_result(submission["result_uri"], staging.path)
    return result.model_copy(update={"remote_id": run.remote_id, "outputs": {**result.outputs, **outputs}})


def collect_result(result_uri: str, staging: Path) -> RunResult:
    """Copy a finished job's files into the run's staging folder; its RunResult comes along."""
    from tunespec.pipeline import read_job_result

    _copy_tree(result_uri, str(staging))
    result = read_job_result(staging)
    if result is None:
        raise DiagnosticError(Diagnostic("TS308", f"the Ray job finished but left no {RESULT_FILE} in {result_uri}", Location(subject="Ray job"),
                                         "see the job's logs (`ray job logs`)"))
    return result


def stop_job(run: Any) -> RunResult:
    submission = _submission(run)
    client = _client(submission.get("address", "auto"))
    client.stop_job(run.remote_id)
    return RunResult(status="cancelled", remote_id=run.remote_id, message=f"stopped Ray job {run.remote_id}")


def _submission(run: Any) -> dict[str, Any]:
    """The submitted request as `apply` sent it: the stored plan still holds the `{run_id}`
    placeholders (in `result_uri`, for one), so fill them in for this run."""
    submission = (run.plan or {}).get("job", {}).get("submission", {})
    return fill_placeholders(submission, run.run_id, str(run.run_dir))


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(None if address == "auto" else address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DiagnosticError(
            Diagnostic(
                "TS309",
                f"cannot reach the Ray Jobs API at {address}: {exc}".splitlines()[0],
                Location(path="backend.dashboard_address"),
                hint="the dashboard (port 8265) must be reachable; set `dashboard_address` if it is not on the head's "
                "default port, or run `ray dashboard` to forward it",
            )
        ) from None


# There: the job's entrypoint ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run one spec attached to the cluster this job runs on (tunespec's `run_job`, the same
    as `tunespec run-job`) and copy its files, result.json included, to `--result`."""
    from tunespec import Progress, plugin_host
    from tunespec.pipeline import run_job

    parser = argparse.ArgumentParser(prog="python -m tunespec_ray.remote")
    parser.add_argument("spec")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--result", required=True, help="folder or gs:// URI for the run's files")
    args = parser.parse_args(argv)

    with Progress(enabled=False) as progress, tempfile.TemporaryDirectory(prefix="tunespec-ray-") as root:
        staging = Path(root) / f".{args.run_id}.partial"
        result, problems = run_job(args.spec, staging, args.run_id, plugin_host(), progress)
        for d in problems:
            print(d, file=sys.stderr)
        if result is None:
            return 1
        _copy_tree(str(staging), args.result)
    return 0 if result.status == "succeeded" else 1


def _copy_tree(source: str, destination: str) -> None:
    """Copy a folder between local paths and `gs://` (pyarrow's filesystems, as Ray Train uses)."""
    import pyarrow.fs

    if "://" not in destination:
        os.makedirs(destination, exist_ok=True)
    pyarrow.fs.copy_files(source, destination)


if __name__ == "__main__":
    sys.exit(main())
