"""Experiment tracking: every finished run, sent to the trackers its spec names.

A tracker (MLflow, Weights & Biases, TensorBoard, or one a plugin adds through the
``tunespec_trackers`` hook) receives one `TrackedRun` when a run is published, for every
backend alike: local and Ray runs when `apply` publishes them, Vertex runs when `status`
(or `apply`) sees the job end, with whatever the job reported. It sends the run's parts
(`PARTS`): the resolved spec as parameters (`${env:...}` values as their references), the
per-step metrics of metrics.jsonl, the data report, the base vs tuned evaluation and the
manifest, all linked by the tunespec run id.

A tracker that fails (not installed, unreachable, a bug) never fails or loses the run:
tunespec reports a warning (TS406) and the manifest's `tracking` entry says which parts
were not sent, and why.

This module imports no tracking library: each tracker imports its own inside `send`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

PARTS = ("params", "metrics", "data", "evaluation", "manifest")
"""What a tracker sends about a run, in this order; the manifest records those not sent."""


@dataclass
class TrackedRun:
    """What a tracker receives about one published run. Nothing here holds a secret: the
    spec keeps `${env:...}` references, and the rest comes from the published run folder."""

    run_id: str
    """The tunespec run id: name the tracker's run with it (the link between them)."""
    spec_name: str
    """`metadata.name`."""
    status: str
    """`succeeded`, `failed` or `cancelled`."""
    backend: str
    """The backend that ran it."""
    fingerprint: str
    """The spec's fingerprint (tag the tracker's run with it to find runs of the same job)."""
    params: dict[str, Any]
    """The resolved spec as applied (`${env:...}` references kept), nested."""
    metrics: list[dict[str, Any]]
    """metrics.jsonl: one dict per logged step (`step`, `epoch`, `train_loss`, ...)."""
    data: dict[str, Any]
    """The data report."""
    evaluation: dict[str, Any]
    """Base vs tuned (`RunResult.evaluation`): `{"base": {...}, "tuned": {...}, ...}`."""
    manifest: dict[str, Any]
    """manifest.json as published."""
    run_dir: Path
    """The published run folder (local; a `gs://` run is tracked before it is uploaded)."""
    project_dir: Path
    """The folder holding the state database (`.tunespec/`): where trackers keep their
    local stores by default (MLflow's SQLite database, W&B's offline runs, TensorBoard's event files)."""

    def flat_params(self, sep: str = ".") -> dict[str, str]:
        """The spec as `section.key` -> text, lists as JSON: what MLflow and TensorBoard
        take as parameters."""
        import json

        out: dict[str, str] = {}

        def walk(value: Any, prefix: str) -> None:
            if isinstance(value, dict) and value:
                for key, item in value.items():
                    walk(item, f"{prefix}{sep}{key}" if prefix else str(key))
            else:
                out[prefix] = value if isinstance(value, str) else json.dumps(value)

        walk(self.params, "")
        return out

    def step_metrics(self) -> list[tuple[int, dict[str, float]]]:
        """(step, {name: number}) for every metrics.jsonl line; `step` and non-numbers left out."""
        out = []
        for i, record in enumerate(self.metrics):
            step = record.get("step", i)
            numbers = {k: float(v) for k, v in record.items()
                       if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
            if isinstance(step, int) and numbers:
                out.append((step, numbers))
        return out

    def evaluation_metrics(self) -> dict[str, float]:
        """`eval/base/<metric>`, `eval/tuned/<metric>`, `eval/improvement/<metric>`: numbers only."""
        out = {}
        for which in ("base", "tuned", "improvement"):
            for name, value in (self.evaluation.get(which) or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"eval/{which}/{name}"] = float(value)
        return out


@dataclass
class Sent:
    """What one tracker managed to send; `send` calls `part(name)` after each part."""

    tracker: str
    parts: list[str] = field(default_factory=list)
    where: dict[str, Any] = field(default_factory=dict)
    """Where the run can be found in the tracker (its run id, URI, folder), for the manifest."""

    def part(self, name: str) -> None:
        if name not in PARTS:
            raise ValueError(f"unknown tracking part {name!r}; one of {PARTS}")
        if name not in self.parts:
            self.parts.append(name)


class Tracker:
    """Base class for trackers. Subclass it, set the class attributes, implement `send`."""

    name: ClassVar[str]
    """What specs write in `tracking: [{name: ...}]`."""
    description: ClassVar[str] = ""
    """One line for `tunespec plugins` and docs/spec-reference.md."""
    config_model: ClassVar[type[BaseModel]]
    """The pydantic model of the tracker's options (the rest of its `tracking` entry):
    `extra="forbid"`, every field with a `Field(description=...)`."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Modules `send` needs (checked without importing them): `validate` warns when one is missing."""
    install_hint: ClassVar[str] = ""
    """What to run when `requires` is not met, e.g. `pip install 'tunespec[tracking]'`."""

    def send(self, run: TrackedRun, config: BaseModel, sent: Sent) -> None:
        """Send `run` to the tracker, calling ``sent.part(name)`` after each of `PARTS` it
        has sent, and setting ``sent.where``. Import the tracking library here. Raise on
        failure: tunespec turns it into a warning and records the parts not sent."""
        raise NotImplementedError


from tunespec.tracking.send import track_run, tracker_configs  # noqa: E402  (uses the classes above)

__all__ = ["PARTS", "Sent", "TrackedRun", "Tracker", "track_run", "tracker_configs"]
