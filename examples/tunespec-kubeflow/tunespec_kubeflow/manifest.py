"""From a spec to the Kubernetes objects that run it: a ConfigMap holding the spec, and a
Kubeflow `PyTorchJob` (kubeflow.org/v1) whose container runs `tunespec run-job` on it, the
local trainer writing the run's folder (under `torchrun` when there are worker replicas).

Pure functions of the spec and the config: the same spec always gives the same manifests,
with `{run_id}` and `{run}` where the run's id goes (`fill_run` puts it in at apply), so
`plan` is stable. The job is named after the spec, its fingerprint and the run: a resumed
run applies the same job again (unchanged), a new run of the same spec gets its own.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

import yaml

from tunespec import ResolvedSpec

from tunespec_kubeflow.config import KubeflowConfig

SPEC_MOUNT = "/etc/tunespec"
SPEC_FILE = f"{SPEC_MOUNT}/spec.yaml"
CONTAINER = "pytorch"  # the training operator finds the trainer container by this name
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)")


RUN_ID = "{run_id}"
RUN_KEY = "{run}"  # the run id's random part, in names


def job_name(spec: ResolvedSpec) -> str:
    """`<spec name>-<fingerprint>-<run>`: one job per run of a job content, a valid DNS
    label (<= 63)."""
    return f"{spec.name[:45].rstrip('-')}-{spec.fingerprint[:8]}-{RUN_KEY}"


def fill_run(value: Any, run_id: str) -> Any:
    """The compiled manifests with this run's id in place of the placeholders."""
    if isinstance(value, str):
        return value.replace(RUN_ID, run_id).replace(RUN_KEY, run_id.rsplit("-", 1)[-1])
    if isinstance(value, dict):
        return {k: fill_run(v, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_run(v, run_id) for v in value]
    return value


def run_folder(spec: ResolvedSpec, config: KubeflowConfig) -> str:
    """The run's staging folder in the container: what `tunespec run-job --run-dir` writes."""
    return posixpath.join(config.workdir, config.output_path, spec.name, f".{RUN_ID}.partial")


def manifests(spec: ResolvedSpec, config: KubeflowConfig) -> list[dict[str, Any]]:
    """The ConfigMap and the PyTorchJob, in the order `kubectl apply` needs them."""
    name = job_name(spec)
    labels = job_labels(spec)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": config.namespace, "labels": labels},
        "data": {"spec.yaml": yaml.safe_dump(container_spec(spec, config), sort_keys=False)},
    }
    command = config.command or _run_job_command(spec, config)
    replicas = {"Master": _replica(1, name, labels, config, command)}
    if config.workers:
        replicas["Worker"] = _replica(config.workers, name, labels, config, command)
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": config.namespace, "labels": labels},
        "spec": {"runPolicy": {"backoffLimit": config.backoff_limit, "cleanPodPolicy": "None"}, "pytorchReplicaSpecs": replicas},
    }
    return [config_map, job]


def container_spec(spec: ResolvedSpec, config: KubeflowConfig) -> dict[str, Any]:
    """The spec the container applies: this one, on the `local` backend, with paths made
    absolute inside the container. Interpolated values stay `${env:...}` references (the
    container resolves them from `env`/`secret_env`), so no secret is in the manifest."""
    job = spec.redact(spec.job.model_dump(mode="json", by_alias=True))
    for split in ("train", "validation"):
        for source in job["data"][split]:
            source["path"] = in_container(source["path"], config.workdir)
    if is_local_model(spec):
        job["model"]["base"] = in_container(job["model"]["base"], config.workdir)
    job["output"]["path"] = in_container(config.output_path, config.workdir)
    job["backend"] = {"name": "local"}
    return job


def in_container(path: str, workdir: str) -> str:
    """A spec path as the container sees it: URIs unchanged, relative paths under `workdir`."""
    if "://" in path or path.startswith("package:") or path.startswith("${"):
        return path
    return posixpath.normpath(posixpath.join(workdir, path))


def is_local_model(spec: ResolvedSpec) -> bool:
    """`model.base` names a file or folder (rather than a hub or package id)."""
    base = spec.job.model.base
    return base.startswith((".", "/", "~")) or (spec.base_dir / base).exists()


def local_paths(spec: ResolvedSpec) -> list[tuple[str, str]]:
    """(field path, value) of every spec path the cluster must find under `workdir`."""
    out = [(f"data.{split}[{i}].path", s.path) for split in ("train", "validation") for i, s in enumerate(getattr(spec.job.data, split))]
    if is_local_model(spec):
        out.append(("model.base", spec.job.model.base))
    return [(field, path) for field, path in out if "://" not in path and not path.startswith("package:")]


def outside_project(spec: ResolvedSpec, path: str) -> bool:
    """True when `path` is not inside the spec's folder, so shipping the folder misses it."""
    resolved = Path(spec.resolve_path(path))
    return not resolved.is_relative_to(spec.base_dir.resolve())


def env_references(spec: ResolvedSpec) -> dict[str, str]:
    """NAME -> reference, for every `${env:NAME}` the spec interpolates."""
    return {m.group(1): ref for ref, _ in spec.interpolations for m in [ENV_REFERENCE.match(ref)] if m}


def job_labels(spec: ResolvedSpec) -> dict[str, str]:
    """tunespec's labels plus the spec's own, leaving out interpolated values (never sent)
    and values Kubernetes would reject."""
    labels = {"app.kubernetes.io/managed-by": "tunespec", "tunespec.dev/spec": spec.name, "tunespec.dev/fingerprint": spec.fingerprint[:16]}
    written = (spec.redacted.get("metadata") or {}).get("labels") or {}
    for key, value in sorted(spec.job.metadata.labels.items()):
        if "${" not in str(written.get(key, "")) and LABEL_VALUE.match(value) and len(value) <= 63:
            labels[key] = value
    return labels


def _run_job_command(spec: ResolvedSpec, config: KubeflowConfig) -> list[str]:
    """`tunespec run-job` on the shipped spec, into the run's folder; with worker replicas
    under `torchrun`, which reads the process group from the operator's PET_* variables."""
    run_job = ["run-job", SPEC_FILE, "--run-dir", run_folder(spec, config), "--run-id", RUN_ID]
    return ["torchrun", "-m", "tunespec", *run_job] if config.workers else ["tunespec", *run_job]


def _replica(count: int, name: str, labels: dict[str, str], config: KubeflowConfig, command: list[str]) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [_container(config, command)], "volumes": _volumes(name, config)}
    if config.service_account:
        pod["serviceAccountName"] = config.service_account
    return {"replicas": count, "restartPolicy": "OnFailure", "template": {"metadata": {"labels": labels}, "spec": pod}}


def _container(config: KubeflowConfig, command: list[str]) -> dict[str, Any]:
    limits = {"cpu": config.resources.cpu, "memory": config.resources.memory}
    if config.resources.gpus:
        limits["nvidia.com/gpu"] = str(config.resources.gpus)
    env = [{"name": k, "value": v} for k, v in sorted(config.env.items())]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": r.secret, "key": r.key}}} for k, r in sorted(config.secret_env.items())]
    mounts = [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True}]
    if config.volume_claim:
        mounts.append({"name": "workdir", "mountPath": config.workdir})
    return {
        "name": CONTAINER,
        "image": config.image,
        "command": command,
        "workingDir": config.workdir,
        "env": env,
        "resources": {"requests": {"cpu": config.resources.cpu, "memory": config.resources.memory}, "limits": limits},
        "volumeMounts": mounts,
    }


def _volumes(name: str, config: KubeflowConfig) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": "spec", "configMap": {"name": name}}]
    if config.volume_claim:
        volumes.append({"name": "workdir", "persistentVolumeClaim": {"claimName": config.volume_claim}})
    return volumes
