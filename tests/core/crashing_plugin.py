"""A backend with a bug: `compile` raises. The CLI must report it as TS004 (with the
traceback saved to a file), never show a traceback (used by tests/core)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

import tunespec
from tunespec import Backend, Plan


class CrashingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrashingBackend(Backend):
    name = "crashing"
    description = "Raises in compile (for tests)."
    config_model = CrashingConfig

    def compile(self, spec, data) -> Plan:
        raise RuntimeError(f"cannot compile for base model {spec.job.model.base}")


@tunespec.hookimpl
def tunespec_backends():
    return [CrashingBackend()]
