"""The backend contract: what a backend plugin implements and what tunespec gives it.

The pipeline calls a backend in this order, for every spec and every backend::

    data_rules / token_counter   (feed data validation: limits and token counting)
    validate   -> diagnostics    (what only this backend knows: models, methods, limits)
    compile    -> Plan           (the exact job it will start; printable, fingerprinted)
    apply      -> RunResult      (starts the job; writes the artifact directory)
    status / cancel              (follow or stop a run that was started earlier)

Every spec field must be honoured, mapped (and the plan says how, in `Plan.mappings`), or
rejected with a diagnostic. `validate`, `compile`, `data_rules` and `token_counter` must
not import torch, ray or google.*; `apply`, `status` and `cancel` may.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunespec.diagnostics import Diagnostic

if TYPE_CHECKING:
    from tunespec.artifacts import RunDirectory
    from tunespec.data import DataReport, DataRules, TokenCounter
    from tunespec.progress import Progress
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec.state import RunRecord


# Models that `validate` never needs are built on first use (defer_build), which keeps
# CLI start-up fast.
LAZY = ConfigDict(defer_build=True)


class FieldMapping(BaseModel):
    """How one spec field reaches the backend: `plan` prints these so nothing is silent."""

    model_config = LAZY

    field: str = Field(description="Spec field path, e.g. `method.lora.rank`.")
    target: str | None = Field(default=None, description="Backend field it becomes, e.g. `adapterSize`; None if not sent.")
    value: Any = None
    note: str | None = Field(default=None, description="How it was mapped, when not one to one.")


class Plan(BaseModel):
    """The compiled job: exactly what `apply` will start."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    backend: str
    spec_name: str
    summary: dict[str, Any] = Field(default_factory=dict, description="Short human summary shown first by `plan`.")
    job: dict[str, Any] = Field(description="The exact job: a request body, a trainer config. JSON-serialisable.")
    mappings: list[FieldMapping] = Field(default_factory=list)
    billable: bool = Field(
        default=False,
        description="True when apply starts paid compute (a managed service, a cluster someone pays for). This is the one "
        "rule for confirmation: `apply` asks before starting a billable plan (or needs `--yes` without a terminal). "
        "`Backend.remote` says something else: runs outlive `apply` and `status` follows them.",
    )
    warnings: list[dict[str, Any]] = Field(default_factory=list, description="Diagnostics (as JSON) the plan carries.")


RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]


class RunResult(BaseModel):
    """What apply/status report about a run."""

    model_config = LAZY

    status: RunStatus
    message: str | None = None
    remote_id: str | None = Field(default=None, description="Remote job id (Vertex tuning job name, Ray job id).")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Metrics summary for the manifest.")
    evaluation: dict[str, Any] = Field(default_factory=dict, description="Base vs tuned evaluation for the manifest.")
    outputs: dict[str, Any] = Field(default_factory=dict, description="Remote resources (tuned model, endpoint, ...).")
    error: dict[str, Any] | None = None


@dataclass
class RunContext:
    """Everything `Backend.apply` needs for one run.

    run_dir:  the run's staging directory. Write files into ``run_dir.path``; tunespec
              finalises it (checksums, manifest.json, atomic rename) after `apply` returns
              a finished result. It persists across interruptions, so checkpoints written
              there survive a crash and `resuming` tells the backend to pick them up.
    resuming: an earlier attempt of this same run (same fingerprint) was interrupted.
    """

    run_id: str
    spec: "ResolvedSpec"
    plan: Plan
    data: "DataReport"
    run_dir: "RunDirectory"
    progress: "Progress"
    resuming: bool = False
    record_remote_id: Any = None  # callable(str): store a remote job id in the state as soon as it exists
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base class for backends. Subclass it, set the class attributes, implement
    `compile` and `apply`; override the rest where the backend has something to say."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    config_model: ClassVar[type[BaseModel]]
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""
    # True when runs are remote jobs that outlive the `apply` process (status polls them,
    # cancel asks the backend). Whether apply asks before starting one is `Plan.billable`.
    remote: ClassVar[bool] = False

    def data_rules(self, spec: "ResolvedSpec") -> "DataRules | None":
        """This backend's data limits (one table), added to the modality rules. None: no extra limits."""
        return None

    def token_counter(self, spec: "ResolvedSpec") -> "TokenCounter | None":
        """A counter with the base model's real tokenizer and chat template, or None (tokens are estimated)."""
        return None

    def validate(self, spec: "ResolvedSpec", data: "DataReport | None") -> Iterable[Diagnostic]:
        """Diagnostics only this backend can find. Locate them with ``spec.locate("field.path")``."""
        return ()

    def compile(self, spec: "ResolvedSpec", data: "DataReport | None") -> Plan:
        raise NotImplementedError

    def apply(self, ctx: RunContext) -> RunResult:
        raise NotImplementedError

    def status(self, run: "RunRecord") -> RunResult:
        """Current status of a run started earlier. Local runs answer from the state store."""
        return RunResult(status=run.status, remote_id=run.remote_id)  # type: ignore[arg-type]

    def cancel(self, run: "RunRecord") -> RunResult:
        raise NotImplementedError(f"backend {self.name!r} cannot cancel runs")
