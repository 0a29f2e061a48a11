"""KubeflowBackend: validate, compile, apply, status and cancel for Kubeflow PyTorchJobs.

validate/compile are pure (no cluster contact, so `tunespec plan` works anywhere and is
deterministic); apply writes `pytorchjob.yaml` into the run directory and, where kubectl
is configured, applies it; status and cancel ask the cluster through kubectl. The job's
container runs `tunespec run-job` (tunespec's remote-executor command) into the run's
folder; when the job ends, status collects that folder into the run (from shared storage,
or from the Master pod with `kubectl cp`) and tunespec publishes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from tunespec import Backend, Diagnostic, DiagnosticError, FieldMapping, Plan, ResolvedSpec, RunContext, RunResult
from tunespec.pipeline import read_job_result

from tunespec_kubeflow import kubectl
from tunespec_kubeflow.config import KubeflowConfig
from tunespec_kubeflow.manifest import env_references, fill_run, job_name, local_paths, manifests, outside_project, run_folder

MANIFEST_FILE = "pytorchjob.yaml"


class KubeflowBackend(Backend):
    name = "kubeflow"
    description = "Run the local trainer as a Kubeflow PyTorchJob on Kubernetes (written to the run, applied with kubectl)."
    config_model = KubeflowConfig

    def validate(self, spec: ResolvedSpec, data: Any) -> Iterable[Diagnostic]:
        config: KubeflowConfig = spec.config  # type: ignore[assignment]
        for field, path in local_paths(spec):
            if outside_project(spec, path):
                yield Diagnostic(
                    "TS303",
                    f"{path!r} is outside the spec's folder, which is all the cluster gets (at `backend.workdir`)",
                    spec.locate(field),
                    "move it into the spec's folder and use a relative path, or use a gs:// URI",
                )
        provided = set(config.env) | set(config.secret_env)
        for name, reference in sorted(env_references(spec).items()):
            if name not in provided:
                yield Diagnostic(
                    "TS307",
                    f"the container re-reads the spec, and nothing gives it {reference}",
                    spec.locate("backend"),
                    f"add `secret_env: {{{name}: {{secret: <secret name>, key: <key>}}}}` (or `env` for a non-secret value)",
                )
        if config.workers and config.command is None and not config.volume_claim:
            yield Diagnostic(
                "TS313",
                f"with {config.workers} worker replicas every pod reads and writes the run's folder (checkpoints), so it must "
                "be on a volume they share",
                spec.locate("backend.workers"),
                "set `volume_claim` to a ReadWriteMany PersistentVolumeClaim mounted at `workdir`",
            )

    def compile(self, spec: ResolvedSpec, data: Any) -> Plan:
        config: KubeflowConfig = spec.config  # type: ignore[assignment]
        objects = manifests(spec, config)
        name = job_name(spec)
        res = config.resources
        return Plan(
            backend=self.name,
            spec_name=spec.name,
            summary={
                "job": f"PyTorchJob {config.namespace}/{name}",
                "replicas": f"1 master + {config.workers} workers",
                "per replica": f"{res.cpu} CPU, {res.memory}" + (f", {res.gpus} GPU" if res.gpus else ""),
                "image": config.image,
                "submit": config.submit,
            },
            job={"name": name, "namespace": config.namespace, "context": config.context, "run_folder": run_folder(spec, config),
                 "manifests": objects},
            mappings=[
                FieldMapping(field="metadata.name", target="metadata.name", value=name, note="spec name + fingerprint: one job per job content"),
                FieldMapping(field="metadata.labels", target="metadata.labels", note="interpolated or invalid label values are not sent"),
                FieldMapping(field="model, data, method, hyperparameters, evaluation", target="ConfigMap spec.yaml",
                              note="run unchanged by the local backend inside the container; relative paths under backend.workdir"),
                FieldMapping(field="output.path", target="ConfigMap spec.yaml output.path", value=config.output_path,
                             note="replaced by backend.output_path: the container writes its own run"),
            ],
            billable=config.submit != "never",
        )

    def apply(self, ctx: RunContext) -> RunResult:
        config: KubeflowConfig = ctx.spec.config  # type: ignore[assignment]
        job = fill_run(ctx.plan.job, ctx.run_id)
        manifest = Path(ctx.run_dir.path) / MANIFEST_FILE
        manifest.write_text(yaml.safe_dump_all(ctx.spec.redact(job["manifests"]), sort_keys=False))
        outputs = {"manifest": MANIFEST_FILE, "pytorchjob": f"{job['namespace']}/{job['name']}"}
        reachable = config.submit != "never" and kubectl.available(config.context)
        if config.submit == "never" or (config.submit == "auto" and not reachable):
            why = "submit: never" if config.submit == "never" else "kubectl has no context here"
            return RunResult(status="succeeded", message=f"wrote {MANIFEST_FILE}, not applied ({why}); `kubectl apply -f` it",
                             outputs={**outputs, "submitted": False})
        if not reachable:
            raise DiagnosticError(Diagnostic("TS309", "`submit: always` but kubectl is not installed or has no context",
                                             ctx.spec.locate("backend.submit"), "configure kubectl, or set `submit: auto`"))
        remote_id = f"{job['namespace']}/{job['name']}"
        if ctx.record_remote_id is not None:
            ctx.record_remote_id(remote_id)  # before applying: a crash right after still finds the job
        kubectl.apply(str(manifest), config.context)  # idempotent: the same run's job applies as "unchanged"
        return RunResult(status="pending", remote_id=remote_id, message="PyTorchJob applied", outputs={**outputs, "submitted": True})

    def status(self, run: Any) -> RunResult:
        namespace, name, context = _where(run)
        state, message = kubectl.job_state(kubectl.get_job(name, namespace, context))
        outputs = {"manifest": MANIFEST_FILE, "pytorchjob": run.remote_id, "submitted": True}
        if state not in ("succeeded", "failed"):
            return RunResult(status=state, message=message, remote_id=run.remote_id, outputs=outputs)  # type: ignore[arg-type]
        result = collect(run, f"{name}-master-0", namespace, context)
        if result is None:  # the job ended without leaving its result (killed, or no shared storage and no pod)
            return RunResult(status=state, message=message, remote_id=run.remote_id, outputs=outputs,  # type: ignore[arg-type]
                             error={"message": message} if state == "failed" else None)
        return result.model_copy(update={"remote_id": run.remote_id, "outputs": {**result.outputs, **outputs}})

    def cancel(self, run: Any) -> RunResult:
        namespace, name, context = _where(run)
        kubectl.delete_job(name, namespace, context)
        return RunResult(status="cancelled", message=f"deleted PyTorchJob {namespace}/{name}", remote_id=run.remote_id)


def collect(run: Any, pod: str, namespace: str, context: str | None) -> RunResult | None:
    """The finished job's run folder, brought into the run's staging folder: already there
    when it is on storage both sides share, else copied from the Master pod. Its
    result.json is the run's result (tunespec.pipeline.read_job_result)."""
    staging = Path(run.staging_dir)
    result = read_job_result(staging)
    if result is None:
        container_folder = (run.plan or {}).get("job", {}).get("run_folder", "").replace("{run_id}", run.run_id)
        staging.mkdir(parents=True, exist_ok=True)
        kubectl.copy_from_pod(namespace, pod, container_folder, str(staging), context)
        result = read_job_result(staging)
    return result


def _where(run: Any) -> tuple[str, str, str | None]:
    """Namespace, job name and kubectl context of a submitted run (from its stored plan)."""
    job = (run.plan or {}).get("job", {})
    namespace, _, name = (run.remote_id or "").partition("/")
    return namespace, name, job.get("context")
