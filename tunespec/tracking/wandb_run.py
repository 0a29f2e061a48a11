"""The Weights & Biases tracker: one W&B run per tunespec run, with the run id as its name."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunespec.tracking import Sent, TrackedRun
    from tunespec.tracking.builtin import WandbOptions


def wandb_id(run_id: str) -> str:
    """A W&B run id from the tunespec run id (W&B ids: letters, digits, `-` and `_`), so
    sending the same run again resumes the same W&B run rather than making another."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", run_id)[:128]


def send_to_wandb(run: "TrackedRun", options: "WandbOptions", sent: "Sent") -> None:
    import wandb

    folder = Path(options.dir).expanduser() if options.dir else run.project_dir
    folder.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True)
    handle = wandb.init(
        project=options.project or run.spec_name, entity=options.entity, name=run.run_id, id=wandb_id(run.run_id),
        resume="allow", dir=str(folder), mode=options.mode, job_type="fine-tune",
        tags=[run.backend, run.status, *options.tags], config=run.params, settings=settings,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:  # kept until finish: W&B uploads (or stages) files as it goes
            handle.config.update({"tunespec_run_id": run.run_id, "tunespec_fingerprint": run.fingerprint}, allow_val_change=True)
            sent.where.update({"project": handle.project, "id": handle.id, "dir": str(folder), "mode": options.mode or "default"})
            sent.part("params")
            for step, numbers in run.step_metrics():
                handle.log({f"train/{k}": v for k, v in numbers.items()}, step=step)
            sent.part("metrics")
            handle.summary.update(run.evaluation_metrics())
            artifact = wandb.Artifact(f"{wandb_id(run.run_id)}-run", type="tunespec-run", metadata={"run_id": run.run_id})
            for name, content in (("data_report.json", run.data), ("evaluation.json", run.evaluation), ("manifest.json", run.manifest)):
                path = Path(tmp) / name
                path.write_text(json.dumps(content, indent=2))
                artifact.add_file(str(path), name=name)
            handle.log_artifact(artifact)
            handle.finish(exit_code=0 if run.status == "succeeded" else 1)
        for part in ("data", "evaluation", "manifest"):
            sent.part(part)
    except BaseException:
        handle.finish(exit_code=1)
        raise
