"""The `ray` backend: the local backend's training loop, data-parallel under Ray Train.

    validate  config checks (no Ray import); with an `address`, the live cluster's resources
    compile   the TorchTrainer job as a dict (job.py), printed by `plan`
    apply     wait: true  -> run the TorchTrainer here (run.py) and write the artifacts
              wait: false -> submit a Ray job (Jobs API) and return `running` (remote.py)
    status / cancel   follow or stop a detached Ray job
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterable

from tunespec import Backend, Diagnostic, Plan, ResolvedSpec, RunContext, RunResult, Severity

from tunespec_ray import job as job_module
from tunespec_ray.cluster import verbose_requested
from tunespec_ray.config import RayConfig

if TYPE_CHECKING:
    from tunespec.data import DataReport


class RayBackend(Backend):
    name = "ray"
    description = "Data-parallel training on a Ray cluster (Ray Train TorchTrainer), embedded or remote"
    config_model = RayConfig
    requires = ("ray.train", "torch", "peft", "transformers", "tunespec_local")
    install_hint = "pip install 'tunespec[ray]'"
    export_formats = ("merged",)

    # The loop is the local backend's: so are its data limits, its tokenizer-backed counter,
    # its model and method checks and its training plan.
    def data_rules(self, spec: ResolvedSpec):
        return _local_backend().data_rules(local_view(spec))

    def token_counter(self, spec: ResolvedSpec):
        return _local_backend().token_counter(local_view(spec))

    def validate(self, spec: ResolvedSpec, data: "DataReport | None") -> Iterable[Diagnostic]:
        config: RayConfig = spec.config  # type: ignore[assignment]
        yield from _local_backend().validate(local_view(spec), data)
        yield from _check_config(spec, config)
        if config.check_memory:
            yield from worker_memory_fit(spec, data, config).diagnostics(spec, "backend.check_memory")
        if config.address is not None and not _running_attached():
            from tunespec_ray.resources import check_cluster

            yield from check_cluster(spec, config)

    def compile(self, spec: ResolvedSpec, data: "DataReport | None") -> Plan:
        config: RayConfig = spec.config  # type: ignore[assignment]
        if _running_attached():
            config = attached_config(config)
        local_plan = _local_backend().compile(local_view(spec), data)
        # The local plan sized memory for this machine; the workers' devices decide instead.
        fit = worker_memory_fit(spec, data, config)
        local_plan.job["training"]["activation_checkpointing"] = fit.checkpointing
        job = job_module.compile_job(spec, config, verbose_requested(config.verbose), local_plan.job)
        job["memory"] = fit.as_plan()
        where = "embedded local cluster" if config.embedded else config.address
        return Plan(
            backend=self.name,
            spec_name=spec.name,
            summary={
                **local_plan.summary,
                "device": "GPU" if config.use_gpu else "CPU",
                "cluster": where,
                "workers": config.num_workers,
                "parallelism": job["parallelism"]["strategy"],
                "per worker": config.worker_resources,
                "memory": fit.summary(),
                "activation checkpointing": f"{'on' if fit.checkpointing else 'off'} ({fit.checkpointing_reason})",
                "mode": "attached (apply waits)" if config.wait else "detached (Ray Jobs API)",
            },
            job=job,
            mappings=[*local_plan.mappings, *job_module.mappings(spec, config)],
            billable=not config.embedded,
        )

    def apply(self, ctx: RunContext) -> RunResult:
        job = job_module.fill_placeholders(ctx.plan.job, ctx.run_id, str(ctx.run_dir.path))
        if "submission" in job:
            from tunespec_ray.remote import submit

            return submit(ctx, job["submission"])
        from tunespec_ray.run import run_attached

        return run_attached(ctx, job, local_view(ctx.spec))

    def status(self, run) -> RunResult:
        if not run.remote_id:
            return super().status(run)
        from tunespec_ray.remote import job_status

        return job_status(run)

    def cancel(self, run) -> RunResult:
        """Stop a detached run's Ray job. (An attached run is its `apply` process: tunespec
        only calls this for runs with a remote id.)"""
        from tunespec_ray.remote import stop_job

        return stop_job(run)

    # A Ray run publishes what a local run does (adapter/ or model/): it is used the same way.
    def predictor(self, run, options):
        return _local_backend().predictor(run, options)

    def export(self, run, format, target, progress):
        return _local_backend().export(run, format, target, progress)


def local_view(spec: ResolvedSpec) -> ResolvedSpec:
    """The spec as the local backend sees it: its loop, model and data steps read their own
    config, so the Ray options that mean the same thing are passed on in its terms."""

    config: RayConfig = spec.config  # type: ignore[assignment]
    options: dict = {
        "check_memory": False,  # the ray backend checks memory against its workers' devices
        "keep_checkpoints": config.checkpoints_to_keep,
        "keep_checkpoints_after_success": config.keep_checkpoints_after_success,
    }
    if config.checkpoint_every_steps is not None:
        options["checkpoint_every"] = config.checkpoint_every_steps
    return dataclasses.replace(spec, config=_local_backend().config_model.model_validate(options))


def worker_memory_fit(spec: ResolvedSpec, data: "DataReport | None", config: RayConfig):
    """The memory estimate per worker, against the workers' device memory (declared, or for
    the embedded cluster this machine's RAM shared by the workers)."""
    from tunespec_local.backend import memory_fit
    from tunespec_local.devices import DeviceInfo, physical_memory
    from tunespec_local.memory import Levers

    gib = 1024**3
    declared = config.device_memory_gib * gib if config.device_memory_gib else None
    if config.use_gpu:
        device = DeviceInfo("cuda", None, "a worker's GPU", bf16=True)
    elif config.embedded:
        total = physical_memory()
        device = DeviceInfo("cpu", total // config.num_workers if total else None, f"this machine's RAM / {config.num_workers} workers")
    else:
        device = DeviceInfo("cpu", None, "a worker's RAM")
    if declared:  # the message names where the capacity came from
        device = dataclasses.replace(device, name="a worker (backend.device_memory_gib)")
    why = "" if declared or device.memory else "set `backend.device_memory_gib`"
    # FSDP over the same workers is a change the plan may suggest (TS320's fixes) when DDP does not fit.
    levers = Levers(fsdp_workers=config.num_workers if config.num_workers > 1 else 0)
    fit = memory_fit(local_view(spec), data, device=device, capacity=declared, workers=config.num_workers,
                     parallelism=config.parallelism, levers=levers)
    if why and not fit.why_unknown:
        fit.why_unknown = why
    return fit


def attached_config(config: RayConfig) -> RayConfig:
    """On the cluster, inside a detached Ray job: run attached to this very cluster."""
    return config.model_copy(update={"address": "auto", "wait": True, "dashboard_address": None})


def _running_attached() -> bool:
    import os

    return os.environ.get(job_module.ATTACHED_ENV) == "1"


def _check_config(spec: ResolvedSpec, config: RayConfig) -> Iterable[Diagnostic]:
    """Problems visible from the spec alone (fast, no Ray)."""
    hp = spec.job.hyperparameters
    if hp.batch_size < config.num_workers:
        yield Diagnostic(
            "TS304",
            f"batch_size {hp.batch_size} is smaller than num_workers {config.num_workers}: "
            f"{config.num_workers - hp.batch_size} workers have no example in a step and only join the gradient sync",
            spec.locate("hyperparameters.batch_size"),
            hint="raise batch_size to at least num_workers, or use fewer workers",
            severity=Severity.WARNING,
        )
    if config.parallelism == "fsdp" and spec.job.method.quantization != "none":
        yield Diagnostic(
            "TS302",
            f"`parallelism: fsdp` cannot shard a {spec.job.method.quantization}-quantised base: FSDP2 shards and gathers "
            "plain tensors, and bitsandbytes' packed weights would be split in the middle of their blocks",
            spec.locate("method.quantization"),
            hint="remove `method.quantization` (FSDP shards the full-precision base over the workers instead), "
            "or use `backend.parallelism: ddp` for QLoRA",
        )
    if config.embedded and config.num_cpus is not None:
        needed = config.total_resources.get("CPU", 0)
        if needed > config.num_cpus:
            yield Diagnostic(
                "TS309",
                f"the embedded cluster has num_cpus {config.num_cpus} but {config.num_workers} workers need "
                f"{needed:g} CPUs; Ray would wait forever to place them",
                spec.locate("backend.num_cpus"),
                hint="raise num_cpus, lower num_workers, or lower resources_per_worker.CPU",
            )
    if config.wait is False:
        yield from _check_detached(spec, config)


def _check_detached(spec: ResolvedSpec, config: RayConfig) -> Iterable[Diagnostic]:
    """A detached job runs the spec on the cluster: the spec must travel with the uploaded
    folder, and its outputs must land somewhere this machine can read."""
    from pathlib import Path

    working_dir = Path(spec.resolve_path(config.runtime_env.working_dir or "."))
    try:
        spec.file.resolve().relative_to(working_dir)
    except ValueError:
        yield Diagnostic(
            "TS116",
            f"the spec file is outside runtime_env.working_dir ({working_dir}); the detached job could not find it",
            spec.locate("backend.runtime_env.working_dir"),
            hint="point working_dir at a folder holding the spec and its data (default: the spec's folder)",
        )
    if config.storage_path is None or not _shared(config.storage_path):
        yield Diagnostic(
            "TS115",
            "a detached run (`wait: false`) needs `storage_path` on storage both the cluster and this machine "
            "reach: the job writes checkpoints and the run's files there and `tunespec status` collects them",
            spec.locate("backend.storage_path" if config.storage_path else "backend.wait"),
            hint="set `storage_path: gs://bucket/prefix` (or an absolute path on a shared file system)",
        )


def _shared(path: str) -> bool:
    from pathlib import PurePath

    return "://" in path or PurePath(path).is_absolute()


def _local_backend() -> Backend:
    """The local backend instance, found through its plugin's own hook (no private import)."""
    from tunespec_local import plugin

    for backend in plugin.tunespec_backends():
        if backend.name == "local":
            return backend
    raise RuntimeError("tunespec_local registers no `local` backend")
