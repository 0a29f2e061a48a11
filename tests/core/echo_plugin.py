"""A small but real backend plugin for testing the pipeline itself.

It does what a backend does (validates its config, compiles a plan, writes files into the
run directory, reports metrics) without training anything, so core tests of state,
idempotence, interruption and the artifact contract run in milliseconds. Loaded with
TUNESPEC_PLUGINS=tests.core.echo_plugin, as a plugin author would during development.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import tunespec
from tunespec import Backend, FieldMapping, Plan, RunContext, RunResult
from tunespec.artifacts import MetricsLog


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["succeeded", "failed"] = Field(default="succeeded", description="How the run ends.")
    steps: int = Field(default=3, ge=1, le=1000, description="Steps to 'train' (one file line each).")
    step_seconds: float = Field(default=0.0, ge=0, description="Sleep per step, to hold a run in flight.")
    marker: str | None = Field(default=None, description="File that step 1 creates, so tests know the run started.")
    hold_until: str | None = Field(default=None, description="After step 1, wait (up to 120 s) until this file exists: holds a run in flight however slow the machine.")
    billable: bool = Field(default=False, description="Pretend the job costs money (apply must ask first).")
    report: bool = Field(default=False, description="Log a train_loss per step to metrics.jsonl and report a base vs tuned evaluation, as a trainer does.")


class EchoBackend(Backend):
    name = "echo"
    description = "Writes its plan to the run directory (for tests)."
    config_model = EchoConfig

    def compile(self, spec, data) -> Plan:
        cfg = spec.config
        return Plan(
            backend=self.name,
            spec_name=spec.name,
            summary={"steps": cfg.steps},
            job={"steps": cfg.steps, "base": spec.job.model.base, "epochs": spec.job.hyperparameters.epochs},
            mappings=[FieldMapping(field="hyperparameters.epochs", target="epochs", value=spec.job.hyperparameters.epochs)],
            billable=cfg.billable,
        )

    def apply(self, ctx: RunContext) -> RunResult:
        cfg = ctx.spec.config
        log = Path(ctx.run_dir.path) / "steps.txt"
        done = len(log.read_text().splitlines()) if log.exists() else 0
        for step in range(done + 1, cfg.steps + 1):
            if cfg.marker and step == 1:
                Path(cfg.marker).write_text(str(os.getpid()))
            time.sleep(cfg.step_seconds)
            if cfg.hold_until and step == 1:
                _wait_for_file(Path(cfg.hold_until), timeout=120)
            with open(log, "a") as f:
                f.write(f"step {step}\n")
            if cfg.report:
                MetricsLog(Path(ctx.run_dir.path) / "metrics.jsonl").append({"step": step, "epoch": 1, "train_loss": 1.0 / step, "learning_rate": 1e-4})
        if cfg.outcome == "failed":
            return RunResult(status="failed", message="echo failed as asked", error={"message": "asked to fail"})
        evaluation = {"base": {"exact_match": 0.25, "examples": 4}, "tuned": {"exact_match": 0.75, "examples": 4},
                      "improvement": {"exact_match": 0.5}, "metrics": ["exact_match"]} if cfg.report else {}
        return RunResult(status="succeeded", metrics={"steps": cfg.steps, "resumed_from": done}, outputs={"log": "steps.txt"}, evaluation=evaluation)


def _wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@tunespec.hookimpl
def tunespec_backends():
    return [EchoBackend()]
