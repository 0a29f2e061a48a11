"""Specs that build on specs: `model.base: run:<spec name>`.

A spec may start from what another spec produced: its latest succeeded run, read through
the artifact contract (the run's manifest.json, then its `adapter/` or `model/`, or for a
managed backend the tuned model named in the manifest's `outputs`), never through a
backend's internals. The specs of one command then form a graph, as Terraform resources
that reference each other do:

- `order_specs` puts every spec after the spec it builds on, keeping the given order
  otherwise, and refuses cycles with a located diagnostic (TS124);
- `link_upstream` resolves a spec's `run:` reference through the state database the
  command uses, into an `UpstreamRun` (a published, succeeded run) or, when the upstream
  spec is in the same command and will run first, a `PendingUpstream`. A reference to a
  spec that never succeeded, or whose run folder was deleted (`missing`), is TS125.

The upstream run id is part of the downstream spec's fingerprint (`ResolvedSpec.fingerprint`),
so a new upstream run makes every spec built on it `replace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from tunespec import secrets
from tunespec.diagnostics import Diagnostic

if TYPE_CHECKING:
    from tunespec.artifacts import Manifest
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec.state import StateStore

OUTPUT_FOLDERS = ("adapter", "model")


@dataclass(frozen=True)
class UpstreamRun:
    """A published, succeeded run that another spec builds on."""

    spec_name: str
    run_id: str
    backend: str
    run_dir: str
    """The published run folder (a local path, or `gs://`)."""
    manifest: "Manifest"

    @property
    def output(self) -> str | None:
        """`adapter` (peft) or `model` (full) when the run published one, else None (a
        managed backend's result lives in the service: see `tuned_model`)."""
        listed = {f.path.split("/", 1)[0] for f in self.manifest.files}
        return next((name for name in OUTPUT_FOLDERS if name in listed), None)

    @property
    def output_path(self) -> Path | None:
        """The local folder of the run's adapter or model (None for remote or `gs://` runs)."""
        if self.output is None or "://" in self.run_dir:
            return None
        return Path(self.run_dir) / self.output

    @property
    def tuned_model(self) -> str | None:
        """The tuned model resource a managed backend reported (e.g. Vertex's `projects/.../models/...`).
        Manifests keep interpolated values as `${env:...}` references: expanded here, for use."""
        value = self.manifest.outputs.get("tuned_model")
        return secrets.expand(value)[0] if isinstance(value, str) else None

    @property
    def base_model(self) -> str:
        """The upstream spec's own `model.base`, as written."""
        return self.manifest.base_model

    def describe(self) -> str:
        return f"run:{self.spec_name} = run {self.run_id} ({self.backend}, {self.output or self.tuned_model or 'no output'})"

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec_name, "run_id": self.run_id, "backend": self.backend, "run_dir": self.run_dir,
                "output": self.output, "tuned_model": self.tuned_model}


@dataclass(frozen=True)
class PendingUpstream:
    """The upstream spec is in the same command and runs first: its run does not exist yet."""

    spec_name: str

    @property
    def run_id(self) -> None:
        return None

    def describe(self) -> str:
        return f"run:{self.spec_name} = the run this apply makes first"

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec_name, "run_id": None, "pending": True}


def fingerprint_part(spec: "ResolvedSpec") -> str | None:
    """What the upstream adds to a spec's fingerprint: its run id (or a pending marker that
    matches no earlier run, so the spec shows as changed until its upstream has run)."""
    upstream = spec.upstream
    if spec.job.model.upstream is None:
        return None
    if isinstance(upstream, UpstreamRun):
        return upstream.run_id
    return f"pending:{spec.job.model.upstream}"


def order_specs(specs: list["ResolvedSpec"]) -> tuple[list["ResolvedSpec"], list[Diagnostic]]:
    """Specs ordered so each comes after the spec it builds on (otherwise in the given
    order). Specs in a cycle, or built on one, are left out with a TS124 diagnostic."""
    by_name = {spec.name: spec for spec in specs}
    placed: list["ResolvedSpec"] = []
    done: set[str] = set()
    remaining = list(specs)
    while remaining:
        ready = [s for s in remaining if _upstream_in(s, by_name) is None or _upstream_in(s, by_name) in done]
        if not ready:
            break
        for spec in ready:
            placed.append(spec)
            done.add(spec.name)
        remaining = [s for s in remaining if s.name not in done]
    return placed, [_cycle_problem(spec, by_name) for spec in remaining]


def _upstream_in(spec: "ResolvedSpec", by_name: dict[str, "ResolvedSpec"]) -> str | None:
    name = spec.job.model.upstream
    return name if name in by_name else None


def _cycle_problem(spec: "ResolvedSpec", by_name: dict[str, "ResolvedSpec"]) -> Diagnostic:
    path = [spec.name]
    while True:
        nxt = by_name[path[-1]].job.model.upstream
        if nxt in path:
            cycle = path[path.index(nxt):] + [nxt]  # type: ignore[operator]
            break
        path.append(nxt)  # type: ignore[arg-type]
    chain = " → ".join(cycle)
    if spec.name in cycle[:-1]:
        message = f"{spec.name} builds on itself: specs build on each other in a cycle ({chain})"
    else:
        message = f"{spec.name} builds on {spec.job.model.upstream}, which is part of a cycle ({chain})"
    return Diagnostic("TS124", message, spec.locate("model.base"),
                      "a spec can build only on a spec that does not (directly or not) build on it; break the cycle")


def link_upstream(spec: "ResolvedSpec", state: "StateStore | None", pending: Iterable[str], in_command: Iterable[str]) -> list[Diagnostic]:
    """Resolve `spec`'s `run:` reference (a no-op for other specs) and set `spec.upstream`.

    pending:    specs of this command that will run (create, replace, resume) before it
    in_command: every spec name of this command (for a more helpful message)"""
    name = spec.job.model.upstream
    spec.upstream = None
    if name is None:
        return []
    if name in set(pending):
        spec.upstream = PendingUpstream(name)
        return []
    where = spec.locate("model.base")
    run = state.latest_succeeded(name) if state is not None else None
    if run is None:
        hint = (f"`tunespec apply` a folder holding both specs runs {name} first" if name not in set(in_command)
                else f"apply {name} first; it is in this command but has no succeeded run")
        return [Diagnostic("TS125", f"{spec.name} builds on run:{name}, but {name} has never succeeded"
                           + ("" if state is not None else " (there is no state database yet)"), where, hint)]
    if run.unresolved:
        names = ", ".join(run.unresolved)
        return [Diagnostic("TS125", f"the latest succeeded run of {name} ({run.run_id}) is stored under ${{env:...}} references to {names}, "
                           "which are not set", where, f"export {names} as when {name} was applied")]
    from tunespec.artifacts import is_published, read_manifest

    if not is_published(run.run_dir):
        return [Diagnostic("TS125", f"the latest succeeded run of {name} ({run.run_id}) is missing: {run.run_dir} has no manifest.json",
                           where, f"apply {name} again to make a new run to build on")]
    manifest = read_manifest(run.run_dir)
    if manifest is None or manifest.status != "succeeded":
        return [Diagnostic("TS125", f"the manifest of {name}'s run {run.run_id} cannot be read or does not say it succeeded",
                           where, f"run `tunespec verify {run.run_dir}`, or apply {name} again")]
    spec.upstream = UpstreamRun(name, run.run_id, run.backend, run.run_dir, manifest)
    return []


__all__ = ["PendingUpstream", "UpstreamRun", "fingerprint_part", "link_upstream", "order_specs"]
