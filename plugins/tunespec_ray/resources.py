"""`validate` against a live cluster: does the cluster at `address` have what the workers ask?

Only called when the spec names an `address` (so the default validate path never imports
Ray). An unreachable cluster is a warning, not an error: validation in CI often runs where
the cluster is not reachable, and `apply` reports the failure properly if it still is not.
"""

from __future__ import annotations

import logging
from typing import Iterable

from tunespec import Diagnostic, ResolvedSpec, Severity

from tunespec_ray.cluster import port_open, quiet_environment, quiet_loggers
from tunespec_ray.config import RayConfig


def check_cluster(spec: ResolvedSpec, config: RayConfig) -> Iterable[Diagnostic]:
    address = config.address
    if address is None or not config.check_resources:
        return []
    if address.startswith(("http://", "https://")):
        return []  # a Jobs API address: the job itself is scheduled by the cluster
    if address.startswith("ray://") and not port_open(address):
        return [_unreachable(spec, address, "nothing listens on that port")]
    try:
        available = _cluster_resources(address)
    except Exception as exc:  # any failure to connect means: cannot check here
        return [_unreachable(spec, address, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)]
    return list(missing_resources(spec, config, available))


def missing_resources(spec: ResolvedSpec, config: RayConfig, available: dict[str, float]) -> Iterable[Diagnostic]:
    """One error per resource the workers need more of than the cluster has in total."""
    for key, needed in sorted(config.total_resources.items()):
        have = available.get(key, 0.0)
        if needed > have:
            field = "backend.use_gpu" if key == "GPU" and config.resources_per_worker is None else "backend.resources_per_worker"
            yield Diagnostic(
                "TS309",
                f"the cluster at {config.address} has {have:g} {key} in total; {config.num_workers} workers "
                f"need {needed:g} ({config.worker_resources.get(key, 0):g} each)",
                spec.locate(field if field in _written(spec) else "backend.num_workers"),
                hint="lower `num_workers` or the resources per worker, add nodes, or set "
                "`check_resources: false` if the cluster autoscales",
            )


def _cluster_resources(address: str) -> dict[str, float]:
    import ray

    quiet_environment({"RAY_DEDUP_LOGS": "1"})
    if ray.is_initialized():
        return dict(ray.cluster_resources())
    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    quiet_loggers(False)
    try:
        return dict(ray.cluster_resources())
    finally:
        ray.shutdown()


def _written(spec: ResolvedSpec) -> set[str]:
    """Backend fields the user wrote (so a diagnostic points at the line that asks)."""
    return {f"backend.{key}" for key in spec.job.backend.options}


def _unreachable(spec: ResolvedSpec, address: str, why: str) -> Diagnostic:
    return Diagnostic(
        "TS309",
        f"cluster at {address} not reachable ({why}); its resources were not checked",
        spec.locate("backend.address"),
        hint="start the cluster or check the address; `apply` needs it reachable",
        severity=Severity.WARNING,
    )
