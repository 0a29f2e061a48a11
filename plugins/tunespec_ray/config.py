"""The `backend:` block of a spec that runs on Ray: every option, documented where declared.

A spec that trained with `backend: {name: local}` runs data-parallel on Ray by changing
only this block::

    backend:
      name: ray
      num_workers: 2            # an embedded local cluster is started for the run

    backend:
      name: ray
      address: ray://head.example.com:10001
      use_gpu: true
      num_workers: 8
      storage_path: gs://my-bucket/ray
      wait: false               # submit through the Ray Jobs API and return

    backend:
      name: ray
      num_workers: 4
      parallelism: fsdp         # shard weights, gradients and optimizer state over the workers

This module imports nothing from Ray: `validate` and `plan` read it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The Ray Jobs API (dashboard) listens on this port unless the cluster was started otherwise.
DEFAULT_DASHBOARD_PORT = 8265

_ADDRESS = re.compile(r"^(auto|(ray|http|https)://[^\s/:]+(:\d+)?/?|[^\s/:]+:\d+)$")


class RuntimeEnvOptions(BaseModel):
    """What Ray installs and sets on every worker before the training loop runs."""

    model_config = ConfigDict(extra="forbid")

    pip: list[str] = Field(
        default_factory=list,
        description="Extra pip requirements installed on the workers (Ray `runtime_env.pip`), e.g. "
        "`['tunespec[ray]==0.1.0']` on a cluster whose image lacks tunespec. Empty: use the cluster's Python "
        "environment as it is.",
    )
    env_vars: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables set on every worker (Ray `runtime_env.env_vars`), e.g. "
        "`HF_HOME` or `NCCL_DEBUG`. Use `${env:NAME}` in the spec to pass a secret without storing it.",
    )
    working_dir: str | None = Field(
        default=None,
        description="Local folder (relative to the spec file) Ray uploads and makes the workers' working "
        "directory. Detached runs (`wait: false`) always upload the spec's folder so the job finds the spec "
        "and its data; set this to upload a different folder.",
    )


class RayConfig(BaseModel):
    """Options of the `ray` backend: where the Ray cluster is, how many workers train, and how
    failures, checkpoints and logs are handled. Ray Train does the scheduling; every option maps to
    a Ray Train or Ray Core setting, and `tunespec plan` prints the result."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description="Ray cluster to run on. Absent: an embedded local cluster is started for the run "
        "(`ray.init(num_cpus=...)`) and shut down after it. `auto`: the cluster this machine belongs to "
        "(`ray start` was run here, or `RAY_ADDRESS` is set). `ray://host:10001`: a remote cluster through "
        "Ray Client. `http://host:8265`: a remote cluster's dashboard, for detached runs through the Ray Jobs "
        "API only (`wait: false`).",
    )
    num_cpus: int | None = Field(
        default=None,
        ge=1,
        description="CPUs of the embedded local cluster (only without `address`). Default: enough for the "
        "workers (`num_workers` x the CPUs each asks for), at least 1.",
    )
    num_workers: int = Field(
        default=2,
        ge=1,
        le=4096,
        description="Training workers (Ray actors), one data shard each; gradients are averaged over them "
        "(see `parallelism`). `hyperparameters.batch_size` stays the global batch: each worker takes "
        "`batch_size / num_workers` examples per step.",
    )
    parallelism: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="How the workers share the model. `ddp`: every worker holds the whole model and optimizer "
        "state (DistributedDataParallel), fastest while it fits one device. `fsdp`: FSDP2 "
        "(`torch.distributed.fsdp.fully_shard`, per decoder block, then the root) shards weights, gradients and "
        "optimizer state over the workers, so a model too big for one device trains on several; each block's "
        "weights are gathered just for its forward and backward. Works for `method.type: full` and `peft`; "
        "needs `num_workers` >= 2 and no `method.quantization`. Checkpoints are then sharded PyTorch distributed "
        "checkpoints (one file per worker, resumable on any number of workers); the published `adapter/` or "
        "`model/` holds the full, gathered weights and loads on one machine as usual. The loss curve is DDP's.",
    )
    use_gpu: bool = Field(
        default=False,
        description="Give every worker one GPU (Ray Train `ScalingConfig.use_gpu`) and use NCCL; otherwise "
        "workers train on CPU with Gloo.",
    )
    resources_per_worker: dict[str, float] | None = Field(
        default=None,
        description="Ray resources reserved per worker, e.g. `{CPU: 4, GPU: 1}` or a custom resource "
        "`{A100: 1}`. Keys are case-sensitive (`CPU`, `GPU`, `memory` in bytes). Default: 1 CPU, plus 1 GPU "
        "with `use_gpu`.",
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        default="PACK",
        description="How the workers' placement group spreads over nodes: `PACK` (as few nodes as possible, "
        "faster all-reduce), `SPREAD` (as many nodes as possible), `STRICT_PACK` (one node or fail), "
        "`STRICT_SPREAD` (one worker per node or fail).",
    )
    max_failures: int = Field(
        default=2,
        ge=-1,
        description="Worker-group failures Ray Train recovers from (Ray `FailureConfig.max_failures`): after a "
        "worker dies the group restarts and resumes from the last checkpoint. 0: fail on the first error; "
        "-1: retry forever.",
    )
    checkpoint_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Save a checkpoint (reported to Ray Train) every this many optimizer steps, so a restart "
        "loses at most that much work. Default: the local backend's default, every 50 steps.",
    )
    checkpoints_to_keep: int = Field(
        default=2,
        ge=1,
        description="How many of the most recent checkpoints Ray Train keeps (`CheckpointConfig.num_to_keep`); "
        "older ones are deleted as new ones land.",
    )
    keep_checkpoints_after_success: bool = Field(
        default=False,
        description="Keep `checkpoints/` in the published run when training succeeds (with the default "
        "`storage_path`). Default: delete them, as the local backend does; the adapter or model is the result.",
    )
    storage_path: str | None = Field(
        default=None,
        description="Where Ray Train persists checkpoints and run state (`RunConfig.storage_path`): a local "
        "path (relative to the spec file) or `gs://bucket/prefix`. Default: the run's own artifact directory, "
        "so checkpoints land in `<run>/checkpoints/`. On a multi-node cluster set it to storage every node "
        "reaches (`gs://`, NFS).",
    )
    runtime_env: RuntimeEnvOptions = Field(
        default_factory=RuntimeEnvOptions,
        description="Packages and environment variables the workers need (Ray runtime environment).",
    )
    wait: bool = Field(
        default=True,
        description="`true`: `apply` runs the Ray Train job and blocks until it ends, then writes the artifact "
        "directory. `false` (needs `address`): `apply` submits the run as a Ray job (Jobs API) and returns at "
        "once; `tunespec status` follows it and the artifacts are written when it finishes.",
    )
    dashboard_address: str | None = Field(
        default=None,
        description="Ray Jobs API (dashboard) address for detached runs. Default: derived from `address` "
        f"(`ray://host:port` -> `http://host:{DEFAULT_DASHBOARD_PORT}`; `auto` -> the local cluster's dashboard).",
    )
    check_resources: bool = Field(
        default=True,
        description="`validate` connects to the cluster at `address` (when reachable) and checks it has the CPUs, "
        "GPUs and custom resources the workers ask for. Turn off for autoscaling clusters that grow on demand.",
    )
    device_memory_gib: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Memory of one worker's device in GiB (a GPU's memory with `use_gpu`, else the RAM a worker may "
        "use), for `plan`'s memory estimate. Default: detected for the embedded cluster (this machine's RAM "
        "shared by the workers); unknown for a remote cluster, where `plan` prints the estimate without "
        "comparing it.",
    )
    check_memory: bool = Field(
        default=True,
        description="`validate` and `plan` compare the estimated peak memory per worker with `device_memory_gib` "
        "(or the detected memory): a job that does not fit is refused (TS320) with the cheapest changes that "
        "would make it fit. `false`: print the estimate, refuse nothing.",
    )
    verbose: bool = Field(
        default=False,
        description="Show Ray's own logs (cluster start-up, Ray Train controller, worker stdout). Default: quiet; "
        "tunespec shows progress and errors itself. `TUNESPEC_VERBOSE=1` has the same effect.",
    )

    @field_validator("address", "dashboard_address")
    @classmethod
    def _address_shape(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError(
                "invalid value: expected `auto`, `ray://host:port`, `http://host:port` or `host:port`, "
                f"got {value!r}"
            )
        return value

    @field_validator("resources_per_worker")
    @classmethod
    def _resources_positive(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, amount in (value or {}).items():
            if amount < 0:
                raise ValueError(f"value out of range: resource {key!r} must be >= 0, got {amount}")
            if key.lower() in {"cpu", "gpu", "tpu"} and key not in {"CPU", "GPU", "TPU"}:
                raise ValueError(f"invalid value: resource keys are case-sensitive, write {key.upper()!r} not {key!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "RayConfig":
        if self.num_cpus is not None and self.address is not None:
            raise ValueError("conflict: `num_cpus` sizes the embedded local cluster; remove it when `address` is set")
        if not self.wait and self.address is None:
            raise ValueError(
                "conflict: `wait: false` submits a detached Ray job to an existing cluster; set `address` "
                "(e.g. `auto` or `ray://host:10001`) or remove `wait: false`"
            )
        if self.parallelism == "fsdp" and self.num_workers < 2:
            raise ValueError(
                "conflict: `parallelism: fsdp` shards the model over the workers and one worker has nothing to share it "
                "with; raise `num_workers` to 2 or more, or use `parallelism: ddp`"
            )
        if self.wait and self.address is not None and self.address.startswith(("http://", "https://")):
            raise ValueError(
                "conflict: an `http://` address is a Jobs API (dashboard) address, usable only with `wait: false`; "
                "use `ray://host:10001` or `auto` to run attached"
            )
        return self

    # Derived values: one place decides them, compile and apply both read them.

    @property
    def embedded(self) -> bool:
        """True when the run starts its own local cluster."""
        return self.address is None

    @property
    def worker_resources(self) -> dict[str, float]:
        """Resources one worker reserves, by Ray Train's own rule (ScalingConfig): the given
        resources (zeros dropped), else 1 CPU, or 1 GPU and no CPU with `use_gpu`."""
        if self.resources_per_worker is not None:
            resources = {key: float(v) for key, v in self.resources_per_worker.items() if v != 0}
        else:
            resources = {"GPU": 1.0} if self.use_gpu else {"CPU": 1.0}
        if self.use_gpu:
            resources.setdefault("GPU", 1.0)
        return resources

    @property
    def total_resources(self) -> dict[str, float]:
        return {key: amount * self.num_workers for key, amount in self.worker_resources.items() if amount}

    @property
    def embedded_num_cpus(self) -> int:
        """CPUs the embedded cluster is started with."""
        if self.num_cpus is not None:
            return self.num_cpus
        return max(1, int(round(self.total_resources.get("CPU", 0))))

    @property
    def jobs_address(self) -> str | None:
        """Address for `JobSubmissionClient` (detached runs)."""
        if self.dashboard_address is not None:
            return _as_http(self.dashboard_address)
        if self.address is None or self.address == "auto":
            return None  # the client finds the local cluster's dashboard itself
        if self.address.startswith(("http://", "https://")):
            return self.address.rstrip("/")
        host = self.address.removeprefix("ray://").split(":")[0].rstrip("/")
        return f"http://{host}:{DEFAULT_DASHBOARD_PORT}"


def _as_http(address: str) -> str:
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    return "http://" + address.removeprefix("ray://").rstrip("/")
