"""The TensorBoard tracker: event files under `<path>/<spec>/<run id>/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunespec.tracking import Sent, TrackedRun
    from tunespec.tracking.builtin import TensorBoardOptions


def log_dir(run: "TrackedRun", options: "TensorBoardOptions") -> Path:
    root = Path(options.path).expanduser() if options.path else run.project_dir / "tensorboard"
    return root / run.spec_name / run.run_id


def send_to_tensorboard(run: "TrackedRun", options: "TensorBoardOptions", sent: "Sent") -> None:
    import yaml
    from tensorboardX import SummaryWriter

    folder = log_dir(run, options)
    sent.where["log_dir"] = str(folder)
    with SummaryWriter(logdir=str(folder)) as writer:
        # Text is Markdown in TensorBoard: indent by four spaces to show it as written.
        writer.add_text("spec", _code(yaml.safe_dump(run.params, sort_keys=False)), 0)
        writer.add_text("tunespec/run_id", run.run_id, 0)
        sent.part("params")
        for step, numbers in run.step_metrics():
            for name, value in numbers.items():
                writer.add_scalar(f"train/{name}", value, step)
        sent.part("metrics")
        writer.add_text("data_report", _code(json.dumps(run.data, indent=2)), 0)
        sent.part("data")
        for name, value in run.evaluation_metrics().items():
            writer.add_scalar(name, value, 0)
        writer.add_text("evaluation", _code(json.dumps(run.evaluation, indent=2)), 0)
        sent.part("evaluation")
        writer.add_text("manifest", _code(json.dumps(run.manifest, indent=2)), 0)
        writer.flush()
    sent.part("manifest")


def _code(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
