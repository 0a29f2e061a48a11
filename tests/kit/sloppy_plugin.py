"""A backend that breaks the contract in every way the conformance kit checks, to prove
the kit catches each (used by test_kit_catches.py; not a test module itself)."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

import tunespec
from tunespec import Backend, Plan, RunContext, RunResult


class SloppyConfig(BaseModel):  # no extra="forbid": typos pass silently
    region: str = "eu"  # no description


class SloppyBackend(Backend):
    name = "sloppy"
    config_model = SloppyConfig

    def compile(self, spec, data) -> Plan:
        import xml.dom.minidom  # noqa: F401  (stands in for a heavy import at plan time)

        return Plan(backend=self.name, spec_name=spec.name, job={"submitted_at": time.time_ns(), "base": spec.job.model.base})

    def apply(self, ctx: RunContext) -> RunResult:
        # Writes the interpolated description as is into a binary file (tunespec scrubs
        # secrets from text files only): the secret lands in an artifact.
        Path(ctx.run_dir.path, "notes.bin").write_bytes(b"\0" + (ctx.spec.job.metadata.description or "").encode())
        return RunResult(status="succeeded")


@tunespec.hookimpl
def tunespec_backends():
    return [SloppyBackend()]
