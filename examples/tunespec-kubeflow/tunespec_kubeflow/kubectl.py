"""The cluster, through the user's own `kubectl` (their kubeconfig, context and auth).

Shelling out keeps this plugin free of a Kubernetes client dependency and means it talks
to the cluster exactly as its user does. Errors become diagnostics with kubectl's message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from tunespec import Diagnostic, DiagnosticError, Location

TIMEOUT_S = 60


def available(context: str | None) -> bool:
    """kubectl is on PATH and has a context to talk to (the given one, or a current one)."""
    if shutil.which("kubectl") is None:
        return False
    args = ["config", "get-contexts", context, "-o", "name"] if context else ["config", "current-context"]
    try:
        proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def run(args: list[str], context: str | None) -> str:
    """stdout of `kubectl [--context C] ARGS`; a failure raises DiagnosticError (TS308)."""
    command = ["kubectl", *(["--context", context] if context else []), *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiagnosticError(Diagnostic("TS308", f"`{' '.join(command)}` did not run: {exc}", Location())) from exc
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise DiagnosticError(
            Diagnostic("TS308", f"`kubectl {args[0]}` failed: {message[-1] if message else proc.returncode}", Location(),
                       "check `kubectl config current-context` and that the Kubeflow training operator is installed")
        )
    return proc.stdout


def apply(manifest_file: str, context: str | None) -> None:
    run(["apply", "-f", manifest_file], context)


def get_job(name: str, namespace: str, context: str | None) -> dict[str, Any] | None:
    """The PyTorchJob object, or None when it does not exist (deleted)."""
    out = run(["get", "pytorchjob", name, "-n", namespace, "-o", "json", "--ignore-not-found"], context)
    return json.loads(out) if out.strip() else None


def copy_from_pod(namespace: str, pod: str, path: str, destination: str, context: str | None) -> None:
    """`kubectl cp NAMESPACE/POD:PATH DESTINATION`: a folder in a pod, into a local folder.
    A pod that is gone (or a path it lacks) leaves the destination as it was."""
    try:
        run(["cp", f"{namespace}/{pod}:{path}", destination], context)
    except DiagnosticError:
        pass


def delete_job(name: str, namespace: str, context: str | None) -> None:
    run(["delete", "pytorchjob", name, "-n", namespace, "--ignore-not-found", "--wait=false"], context)


def job_state(job: dict[str, Any] | None) -> tuple[str, str | None]:
    """(tunespec run status, message) from a PyTorchJob's `status.conditions`: the newest
    condition that is true wins (Created -> Running -> Succeeded | Failed)."""
    if job is None:
        return "cancelled", "the PyTorchJob no longer exists (deleted)"
    conditions = [c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    if not conditions:
        return "pending", "waiting for the training operator"
    latest = conditions[-1]
    state = {"Succeeded": "succeeded", "Failed": "failed", "Running": "running", "Restarting": "running"}.get(latest.get("type"), "pending")
    return state, latest.get("message")
