"""tunespec's own trackers, MLflow, Weights & Biases and TensorBoard, registered through
the same `tunespec_trackers` hook a third-party plugin uses. Their options are declared
here (light); each imports its library only inside `send`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tunespec.plugins.hookspecs import hookimpl
from tunespec.tracking import Sent, TrackedRun, Tracker

INSTALL_HINT = "pip install 'tunespec[tracking]'"


class MlflowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        default=None,
        description="MLflow tracking URI (a server `https://...`, `databricks`, `sqlite:///file.db`, ...). Default: "
        "an embedded SQLite store beside the state database, `.tunespec/mlflow.db` (no server needed; open it with "
        "`mlflow ui --backend-store-uri sqlite:///.tunespec/mlflow.db`), artifacts in `.tunespec/mlflow-artifacts/`.",
    )
    experiment: str | None = Field(default=None, description="Experiment to log runs in (created if missing). Default: the spec's `metadata.name`.")


class WandbOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str | None = Field(default=None, description="W&B project. Default: the spec's `metadata.name`.")
    entity: str | None = Field(default=None, description="W&B entity (user or team). Default: your W&B default entity.")
    mode: Literal["online", "offline"] | None = Field(
        default=None,
        description="`online` sends to W&B (needs `WANDB_API_KEY`); `offline` writes the run to disk for "
        "`wandb sync` later. Default: W&B's own (`WANDB_MODE`, else online).",
    )
    dir: str | None = Field(default=None, description="Folder W&B writes its files into (a `wandb/` folder is made there). Default: beside the state database, `.tunespec/`.")
    tags: list[str] = Field(default_factory=list, description="Extra tags for the W&B run (the backend and status are always added).")


class TensorBoardOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        description="Log folder: each run writes event files into `<path>/<metadata.name>/<run id>/`; "
        "`tensorboard --logdir <path>` shows them. Default: `.tunespec/tensorboard` beside the state database.",
    )


class MlflowTracker(Tracker):
    name = "mlflow"
    description = "MLflow: params, step metrics, evaluation, data report and manifest; embedded SQLite store by default."
    config_model = MlflowOptions
    requires = ("mlflow", "sqlalchemy", "alembic")
    install_hint = INSTALL_HINT

    def send(self, run: TrackedRun, config: BaseModel, sent: Sent) -> None:
        from tunespec.tracking.mlflow_store import send_to_mlflow

        send_to_mlflow(run, config, sent)  # type: ignore[arg-type]


class WandbTracker(Tracker):
    name = "wandb"
    description = "Weights & Biases: config, step metrics, summary (evaluation) and the manifest and data report as an artifact."
    config_model = WandbOptions
    requires = ("wandb",)
    install_hint = INSTALL_HINT

    def send(self, run: TrackedRun, config: BaseModel, sent: Sent) -> None:
        from tunespec.tracking.wandb_run import send_to_wandb

        send_to_wandb(run, config, sent)  # type: ignore[arg-type]


class TensorBoardTracker(Tracker):
    name = "tensorboard"
    description = "TensorBoard event files: step metrics and evaluation as scalars, spec, data report and manifest as text."
    config_model = TensorBoardOptions
    requires = ("tensorboardX",)
    install_hint = INSTALL_HINT

    def send(self, run: TrackedRun, config: BaseModel, sent: Sent) -> None:
        from tunespec.tracking.tensorboard_events import send_to_tensorboard

        send_to_tensorboard(run, config, sent)  # type: ignore[arg-type]


BUILTIN_TRACKERS = [MlflowTracker(), WandbTracker(), TensorBoardTracker()]


@hookimpl
def tunespec_trackers():
    return BUILTIN_TRACKERS
