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
    value: Any = Field(default=None, description="The value it is sent as (after any conversion).")
    note: str | None = Field(default=None, description="How it was mapped, when not one to one.")


class Plan(BaseModel):
    """The compiled job: exactly what `apply` will start."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    backend: str = Field(description="The backend's name.")
    spec_name: str = Field(description="`metadata.name` of the spec it was compiled from.")
    summary: dict[str, Any] = Field(default_factory=dict, description="Short human summary shown first by `plan`.")
    job: dict[str, Any] = Field(description="The exact job: a request body, a trainer config. JSON-serialisable.")
    mappings: list[FieldMapping] = Field(default_factory=list, description="How each spec field reaches the job, when not one to one; `plan` prints them.")
    billable: bool = Field(
        default=False,
        description="True when apply starts paid compute (a managed service, a cluster someone pays for). This is the one "
        "rule for confirmation: `apply` asks before starting a billable plan (or needs `--yes` without a terminal). "
        "`Backend.remote` says something else: runs outlive `apply` and `status` follows them.",
    )
    warnings: list[dict[str, Any]] = Field(default_factory=list, description="Diagnostics (as JSON) the plan carries.")


RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]


class RunResult(BaseModel):
    """What `apply`, `status` and `cancel` report about a run. `pending`/`running` keep the
    run in flight (`status` asks again later); `succeeded`/`failed`/`cancelled` end it, and
    tunespec publishes the run folder with these fields in its manifest.json."""

    model_config = LAZY

    status: RunStatus = Field(description="`pending` | `running` (in flight) | `succeeded` | `failed` | `cancelled` (finished).")
    message: str | None = Field(default=None, description="One line for the user (`apply` and `status` print it), e.g. `80 steps`.")
    remote_id: str | None = Field(default=None, description="Remote job id (Vertex tuning job name, Ray job id); `status` and `cancel` receive it back in `RunRecord.remote_id`.")
    metrics: dict[str, Any] = Field(
        default_factory=dict,
        description="Summary numbers, flat: metric name -> number (or short string), e.g. `{\"steps\": 80, \"final_train_loss\": 0.41, "
        "\"tokens_per_s\": 812.5, \"device\": \"cpu\"}`. Stored as the manifest's `metrics`; per-step figures go in "
        "metrics.jsonl (`tunespec.artifacts.MetricsLog`).",
    )
    evaluation: dict[str, Any] = Field(
        default_factory=dict,
        description="Base vs tuned on the validation set, the shape the CLI prints and the manifest stores: "
        "`{\"base\": {metric: value, \"examples\": n}, \"tuned\": {metric: value, \"examples\": n}, "
        "\"improvement\": {metric: tuned - base}, \"metrics\": [metric, ...], \"outputs\": {\"base\": path, \"tuned\": path}}`. "
        "`metrics` orders the table and its first entry decides \"tuning beat prompting\"; `outputs` are run-folder paths "
        "of every generated answer. Any key may be missing (no base evaluation: no `base`, no `improvement`).",
    )
    outputs: dict[str, Any] = Field(default_factory=dict, description="What the run produced besides its files: remote resources (tuning job, tuned model, endpoint) by name.")
    error: dict[str, Any] | None = Field(default=None, description="Why a failed run failed, for the manifest: e.g. `{\"diagnostics\": [Diagnostic.to_json(), ...]}`.")


@dataclass
class RunContext:
    """Everything `Backend.apply` needs for one run."""

    run_id: str
    """The run's id (`RunRecord.run_id`): label remote jobs with it, so a retried `apply`
    finds the job it already started instead of starting a second one."""
    spec: "ResolvedSpec"
    """The checked spec (`spec.job` is the `TuningJob`, `spec.config` the backend's options)."""
    plan: Plan
    """What `compile` returned for this spec."""
    data: "DataReport"
    """The data report from validation (examples, tokens, files with their hashes)."""
    run_dir: "RunDirectory"
    """The run's staging directory. Write files into ``run_dir.path``; tunespec finalises it
    (scrubs secrets from text files, writes spec.yaml and manifest.json with every file's
    sha256, renames it into place) after `apply` returns a finished result. It persists
    across interruptions, so checkpoints written there survive a crash."""
    progress: "Progress"
    """Progress display: ``progress.task(name, total)`` and ``progress.log(message)``."""
    resuming: bool = False
    """An earlier attempt of this same run (same fingerprint) was interrupted: pick up its
    checkpoints in `run_dir`."""
    record_remote_id: Any = None
    """``record_remote_id(job_id)``: store the remote job's id in the state as soon as it
    exists (before `apply` returns), so `status` and `cancel` can reach it even if this
    process dies next."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free for the backend's own use during `apply`."""


class Backend:
    """Base class for backends. Subclass it, set the class attributes, implement
    `compile` and `apply`; override the rest where the backend has something to say."""

    name: ClassVar[str]
    """What specs write in `backend.name`."""
    description: ClassVar[str] = ""
    """One line for `tunespec plugins` and the docs."""
    config_model: ClassVar[type[BaseModel]]
    """The pydantic model of the backend's options (the rest of the `backend:` block):
    `extra="forbid"`, every field with a `Field(description=...)`."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Modules `apply` needs (checked without importing them); a missing one makes the
    backend `unavailable` in `tunespec plugins` and its specs fail with TS300."""
    install_hint: ClassVar[str] = ""
    """What to run when `requires` is not met, e.g. `pip install 'tunespec[ray]'`."""
    remote: ClassVar[bool] = False
    """True when runs are remote jobs that outlive the `apply` process: `status` asks the
    backend about them and `cancel` asks it to stop them. Whether `apply` asks before
    starting one is `Plan.billable`, not this."""

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
        """The exact job `apply` will start, as a `Plan`: deterministic (no timestamps or
        random ids: use placeholders that `apply` fills in), JSON-serialisable, with a
        `FieldMapping` for every spec field that is not passed one to one."""
        raise NotImplementedError

    def apply(self, ctx: RunContext) -> RunResult:
        """Start (or resume, when `ctx.resuming`) the run. Return a finished result when the
        run ends here, or `pending`/`running` with the remote job's id for a job that goes
        on elsewhere (call `ctx.record_remote_id` as soon as the id exists). Raise
        `DiagnosticError` for a failure the user can act on: the run is published as failed."""
        raise NotImplementedError

    def status(self, run: "RunRecord") -> RunResult:
        """Current status of a run started earlier. Local runs answer from the state store."""
        return RunResult(status=run.status, remote_id=run.remote_id)  # type: ignore[arg-type]

    def cancel(self, run: "RunRecord") -> RunResult:
        """Stop the remote job of a run in flight (called for `remote` backends and runs with
        a `remote_id`; tunespec stops local runs itself). Return `cancelled` once it has
        stopped (tunespec publishes the run), or `running` while it is stopping."""
        raise NotImplementedError(f"backend {self.name!r} cannot cancel runs")
