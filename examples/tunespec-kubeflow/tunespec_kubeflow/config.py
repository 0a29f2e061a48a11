"""KubeflowConfig: the options of the `kubeflow` backend, in the spec's `backend:` block.

    backend:
      name: kubeflow
      image: registry.example.com/ml/tunespec:0.1
      namespace: ml-team
      resources: {cpu: "8", memory: 32Gi, gpus: 1}
      secret_env:
        HF_TOKEN: {secret: hf-credentials, key: token}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class Resources(BaseModel):
    """Compute for each replica (Kubernetes requests and limits)."""

    model_config = ConfigDict(extra="forbid")

    cpu: str = Field(default="2", description="CPU request and limit per replica, in Kubernetes quantity syntax (`2`, `500m`).")
    memory: str = Field(default="8Gi", description="Memory request and limit per replica (`8Gi`, `512Mi`).")
    gpus: int = Field(default=0, ge=0, le=16, description="NVIDIA GPUs per replica (`nvidia.com/gpu` limit); 0 trains on CPU.")


class SecretRef(BaseModel):
    """A key of a Kubernetes Secret, passed to the container as an environment variable."""

    model_config = ConfigDict(extra="forbid")

    secret: str = Field(pattern=DNS_LABEL, description="Name of the Secret in the job's namespace.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class KubeflowConfig(BaseModel):
    """Where and how the PyTorchJob runs. The container runs tunespec's `local` backend on
    the spec (the same trainer as on a laptop), so the image needs `tunespec[local]`."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, description="Container image with `tunespec[local]` installed, e.g. `registry.example.com/ml/tunespec:0.1`.")
    namespace: str = Field(default="default", pattern=DNS_LABEL, description="Kubernetes namespace of the job.")
    context: str | None = Field(default=None, description="kubectl context to use; default: kubectl's current context.")
    workdir: str = Field(
        default="/workspace",
        pattern=r"^/",
        description="Folder in the container holding the spec's folder (its data, a local model): baked into the image or "
        "mounted with `volume_claim`. Relative paths in the spec are rewritten against it.",
    )
    volume_claim: str | None = Field(default=None, pattern=DNS_LABEL, description="PersistentVolumeClaim mounted at `workdir` (the project folder and the runs).")
    output_path: str = Field(
        default="runs",
        description="Where the run's folder is inside the container, relative to `workdir`: the job writes the run's "
        "staging folder `<output_path>/<name>/.<run id>.partial/` there, and `status` collects it from the Master pod "
        "(`kubectl cp`) unless the same folder is on storage this machine shares.",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Worker replicas besides the Master. With workers the container runs `torchrun -m tunespec run-job`: "
        "every replica joins the process group the training operator describes (PET_* variables) and trains its share "
        "of each batch (DDP); rank 0 writes the run. The run folder must then be on the shared volume (`volume_claim`).",
    )
    command: list[str] | None = Field(
        default=None,
        description="Container command. Default: `tunespec run-job <spec> --run-dir <run folder> --run-id <run id>` (with "
        "`workers`, under `torchrun`), i.e. the local trainer on the spec, writing the run's folder.",
    )
    resources: Resources = Field(default_factory=Resources, description="CPU, memory and GPUs of every replica.")
    env: dict[str, str] = Field(default_factory=dict, description="Plain environment variables for the container. Never put secrets here: use `secret_env`.")
    secret_env: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Environment variables read from Kubernetes Secrets. Every `${env:NAME}` in the spec must be provided "
        "here or in `env`, since the container re-reads the spec.",
    )
    service_account: str | None = Field(default=None, pattern=DNS_LABEL, description="ServiceAccount the pods run as (e.g. one with bucket access).")
    backoff_limit: int = Field(default=2, ge=0, le=100, description="Pod restarts before the job is marked failed (`runPolicy.backoffLimit`).")
    submit: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="`auto`: `kubectl apply` when kubectl has a context, else only write the manifest. `always`: fail without "
        "kubectl. `never`: only write `pytorchjob.yaml` into the run directory (apply it yourself).",
    )
