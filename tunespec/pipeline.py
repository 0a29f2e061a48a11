"""The one path every spec takes, for every backend:

    load -> schema -> resolve -> validate data -> backend.validate -> backend.compile
         -> diff against state -> apply -> artifact directory + manifest -> verify

The CLI is a thin layer over these functions; the conformance kit and tests call them too.
Nothing here imports torch, ray or google.*: backends do, inside `apply`/`status`/`cancel`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import yaml

from tunespec.artifacts import MANIFEST_FILE, Manifest, RunDirectory, environment_versions, is_published, output_root_problem
from tunespec.backend import Backend, Plan, RunContext, RunResult
from tunespec.diagnostics import Diagnostic, DiagnosticError, Diagnostics, Location
from tunespec.plugins.host import PluginHost, missing_requirements
from tunespec.progress import Progress
from tunespec.spec.loader import load_documents
from tunespec.spec.resolve import ResolvedSpec
from tunespec.spec.schema import validate_document
from tunespec.state import RunRecord, StateStore, find_state_path
from tunespec.state.store import now_iso

SPEC_SUFFIXES = (".yaml", ".yml")


# Load ------------------------------------------------------------------------------------


def find_spec_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand files and directories into spec files. Directories are searched recursively,
    skipping hidden folders (.tunespec, staging runs) and run directories (a folder with a
    manifest.json holds a run's copy of its spec, not a spec to apply).

    Specs come from pull requests, and a symbolic link in one could make tunespec read (and
    quote in its diagnostics) any file on the machine. So a spec file found in a directory
    must resolve to a file inside that directory, and a path named on the command line that
    is itself a link must resolve inside the current directory or the link's own folder.
    Those refused are reported (TS100), never skipped silently."""
    from tunespec.spec.loader import has_link_below, link_outside

    files: list[Path] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        try:
            outside = link_outside(path, [Path.cwd(), path.absolute().parent]) if path.is_symlink() else None
            if outside:
                problems.append(outside)
            elif path.is_dir():
                found = sorted(_spec_files_under(path))
                if not found:
                    problems.append(Diagnostic("TS002", f"no spec files (*.yaml, *.yml) in {path}", Location(str(path))))
                for file in found:
                    outside = link_outside(file, [path]) if has_link_below(file, path) else None
                    if outside:
                        problems.append(outside)
                    else:
                        files.append(file)
            elif path.is_file():
                files.append(path)
            elif path.exists():
                problems.append(Diagnostic("TS100", f"not a regular file: {path}", Location(str(path)), "a spec is a plain .yaml file"))
            else:
                problems.append(Diagnostic("TS001", f"no such file or directory: {path}", Location(str(path))))
        except OSError as exc:  # e.g. a folder on the way that cannot be searched
            problems.append(Diagnostic("TS100", f"cannot read {path}: {exc.strerror or exc}", Location(str(path))))
    return files, problems


def _spec_files_under(folder: Path) -> Iterable[Path]:
    for root, dirs, names in os.walk(folder):
        if MANIFEST_FILE in names:
            dirs.clear()
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from (Path(root) / n for n in names if n.endswith(SPEC_SUFFIXES) and not n.startswith("."))


def load_specs(paths: Iterable[str | Path], host: PluginHost, env: dict[str, str] | None = None) -> tuple[list[ResolvedSpec], list[Diagnostic]]:
    """Load and schema-check every spec document under `paths`. Bad documents are reported
    and left out; good ones are returned, so one bad file never hides the others' problems:
    anything unexpected while loading one file (a bug, RecursionError, MemoryError) becomes
    a TS121 diagnostic for that file and the other files are still loaded, and one file
    reports at most its first problems (with a TS122 count of the rest)."""
    from tunespec.spec.loader import limit_problems, load_failure

    files, problems = find_spec_files(paths)
    specs: list[ResolvedSpec] = []
    for file in files:
        file_specs: list[ResolvedSpec] = []
        file_problems: list[Diagnostic] = []
        try:
            documents, load_problems = load_documents(file, env)
            file_problems.extend(load_problems)
            for doc in documents:
                spec, schema_problems = validate_document(doc, host)
                file_problems.extend(schema_problems)
                if spec is not None:
                    file_specs.append(spec)
        except Exception as exc:  # noqa: BLE001 - a bug must not hide the other files' problems
            file_specs = []
            file_problems.append(load_failure(file, exc))
        specs.extend(file_specs)
        problems.extend(limit_problems(file, file_problems))
    problems.extend(_duplicate_names(specs))
    return specs, problems


def _duplicate_names(specs: list[ResolvedSpec]) -> list[Diagnostic]:
    first: dict[str, ResolvedSpec] = {}
    out = []
    for spec in specs:
        if spec.name in first:
            other = first[spec.name]
            out.append(
                Diagnostic(
                    "TS118",
                    f"spec name {spec.name!r} is also used by {other.file} (document {other.document + 1})",
                    spec.locate("metadata.name"),
                    "names identify specs in the state store and artifact paths; make them unique",
                )
            )
        else:
            first[spec.name] = spec
    return out


# Check: data, backend validation, compile ------------------------------------------------


@dataclass
class Checked:
    """A spec after every check: its backend, data report, plan and problems."""

    spec: ResolvedSpec
    backend: Backend
    diagnostics: Diagnostics
    data: Any = None  # tunespec.data.DataReport
    plan: Plan | None = None

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors and self.plan is not None


def check_spec(spec: ResolvedSpec, host: PluginHost, state: StateStore | None, progress: Progress) -> Checked:
    """Validate data and backend rules, then compile the plan. Collects every problem found.
    `state` (None: there is no state database yet) only caches data hashes."""
    from tunespec.data import validate_data  # light: the data layer imports no heavy libraries

    backend = host.backends()[spec.job.backend.name]
    diagnostics = Diagnostics(max_per_code=spec.job.data.max_reported_problems)
    checked = Checked(spec, backend, diagnostics)
    diagnostics.extend(_output_problems(spec))
    try:
        checked.data = validate_data(
            spec,
            rules=backend.data_rules(spec),
            counter=backend.token_counter(spec),
            diagnostics=diagnostics,
            progress=progress,
            hash_cache=state,
        )
        diagnostics.extend(backend.validate(spec, checked.data))
        if not diagnostics.has_errors:
            checked.plan = backend.compile(spec, checked.data)
            diagnostics.extend(_plan_warnings(checked.plan))
            if spec.upstream is not None:  # shown by plan, and stored with the run (see _changed_fields)
                checked.plan.summary[BUILDS_ON] = spec.upstream.describe()
    except DiagnosticError as exc:
        diagnostics.extend(exc.diagnostics)
    return checked


BUILDS_ON = "builds on"
"""The plan summary row naming the run a `run:` spec builds on."""


def check_specs(specs: list[ResolvedSpec], host: PluginHost, state: StateStore | None, progress: Progress) -> tuple[list[Checked], list[Diagnostic]]:
    """Check every spec of a command, in dependency order (a spec after the spec its
    `model.base: run:` names), linking each `run:` reference as it goes: to the upstream's
    latest succeeded run, or, when the upstream is in this command and will run first
    (create, replace, resume), to that pending run. Returns the checked specs in the order
    `apply` runs them, and the problems of specs left out (cycles)."""
    from tunespec.chains import link_upstream, order_specs

    ordered, problems = order_specs(specs)
    names = [spec.name for spec in specs]
    pending: set[str] = set()
    checked_all = []
    for spec in ordered:
        link_problems = link_upstream(spec, state, pending, names)
        if link_problems:
            checked = Checked(spec, host.backends()[spec.job.backend.name], Diagnostics(max_per_code=spec.job.data.max_reported_problems))
            checked.diagnostics.extend(link_problems)
        else:
            checked = check_spec(spec, host, state, progress)
        checked_all.append(checked)
        if not checked.ok or diff(checked, state).action != "no-op":
            pending.add(spec.name)  # what builds on it cannot be planned against an existing run
    return checked_all, problems


def recheck_after_upstream(checked: Checked, host: PluginHost, state: StateStore, progress: Progress) -> Checked:
    """Check a spec again once the spec it builds on has run in this apply: its `run:`
    reference now names that new run, which changes its plan and fingerprint."""
    from tunespec.chains import link_upstream

    spec = checked.spec
    problems = link_upstream(spec, state, (), ())
    if problems:
        again = Checked(spec, checked.backend, Diagnostics())
        again.diagnostics.extend(problems)
        return again
    return check_spec(spec, host, state, progress)


def _output_problems(spec: ResolvedSpec) -> list[Diagnostic]:
    """`output.path` must be a folder tunespec can write, checked before any run is claimed
    (never by creating anything: validate and plan are read-only)."""
    problem = output_root_problem(spec.output_root)
    if problem is None:
        return []
    return [Diagnostic("TS123", f"output.path {spec.job.output.path!r} cannot hold runs: {problem}", spec.locate("output.path"),
                       "point `output.path` at a folder you can write (relative paths are relative to the spec file)")]


def _plan_warnings(plan: Plan) -> list[Diagnostic]:
    from tunespec.diagnostics import Severity

    out = []
    for w in plan.warnings:
        loc = Location(**w["location"]) if w.get("location") else Location()
        out.append(Diagnostic(w["code"], w["message"], loc, w.get("hint"), Severity(w.get("severity", "warning"))))
    return out


# Plan diff ------------------------------------------------------------------------------


@dataclass
class Change:
    """What `apply` would do for a checked spec, compared with the state store."""

    action: Literal["create", "no-op", "replace", "in-flight", "resume"]
    previous: RunRecord | None = None
    changed: list[str] = field(default_factory=list)


def stored_spec(spec: ResolvedSpec) -> dict[str, Any]:
    """The resolved spec as applied, with interpolated values replaced by their `${env:...}`
    references: what spec.yaml, the manifest and the state keep."""
    resolved = spec.job.model_dump(mode="json", by_alias=True)
    resolved["backend"] = {"name": spec.job.backend.name, **spec.config.model_dump(mode="json")}
    return _keep_references(resolved, spec.redacted)


def _keep_references(resolved: Any, raw: Any) -> Any:
    if isinstance(raw, str) and "${" in raw:
        return raw
    if isinstance(resolved, dict) and isinstance(raw, dict):
        return {k: _keep_references(v, raw.get(k)) for k, v in resolved.items()}
    if isinstance(resolved, list) and isinstance(raw, list) and len(raw) == len(resolved):
        return [_keep_references(v, r) for v, r in zip(resolved, raw)]
    return resolved


def diff(checked: Checked, state: StateStore | None) -> Change:
    spec = checked.spec
    previous = state.latest_run(spec.name) if state is not None else None
    if previous is None:
        return Change("create")
    if previous.fingerprint == spec.fingerprint:
        if previous.status == "succeeded":
            if not run_published(previous):
                return Change("replace", previous, [f"previous run is missing: {previous.run_dir} has no {MANIFEST_FILE}"])
            return Change("no-op", previous)
        if previous.status == "cancelling" and previous.owner_alive:
            return Change("in-flight", previous)
        if previous.status in ("pending", "running", "interrupted"):
            alive = previous.owner_alive or (previous.remote_id and previous.status != "interrupted")
            return Change("in-flight" if alive else "resume", previous)
        return Change("replace", previous, ["previous run " + previous.status])
    return Change("replace", previous, _changed_fields(previous, stored_spec(spec), _data_json(checked.data), checked.plan))


def _changed_fields(previous: RunRecord, current: dict[str, Any], data: dict[str, Any], plan: Plan | None = None) -> list[str]:
    """Spec fields, data files and the upstream run that differ from the previous run's."""
    changed = _diff_paths(previous.spec or {}, current)
    was = ((previous.plan or {}).get("summary") or {}).get(BUILDS_ON)
    now = plan.summary.get(BUILDS_ON) if plan is not None else None
    if now != was and (now or was):
        changed.append(f"upstream: {now or 'none'} (was {was or 'none'})")
    old = {f["path"]: f["sha256"] for f in (previous.data or {}).get("files", [])}
    new = {f["path"]: f["sha256"] for f in data.get("files", [])}
    changed += [f"data content: {path}" for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)]
    return changed or ["environment (interpolated values)"]


def _diff_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out.extend(_diff_paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key))
        return out
    return [] if old == new else [prefix or "(root)"]


# Apply ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The result of applying one spec."""

    spec_name: str
    action: str
    run: RunRecord | None = None
    result: RunResult | None = None
    run_dir: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.diagnostics and any(d.is_error for d in self.diagnostics)) or (
            self.result is not None and self.result.status in ("failed", "cancelled")
        )


def apply_checked(
    checked: Checked,
    state: StateStore,
    progress: Progress,
    *,
    force: bool = False,
    confirm: Callable[[Checked], bool] = lambda c: True,
) -> Outcome:
    """Start (or resume, or skip) the run for one checked spec, and finish it if it ends."""
    spec, backend, plan = checked.spec, checked.backend, checked.plan
    assert plan is not None
    missing = missing_requirements(backend)
    if missing:
        hint = backend.install_hint or f"install {', '.join(missing)}"
        return Outcome(spec.name, "error", diagnostics=[
            Diagnostic("TS300", f"backend {backend.name!r} needs {', '.join(missing)}, which is not installed", spec.locate("backend.name"), hint)
        ])
    change = diff(checked, state)
    if change.action == "no-op" and not force:
        return Outcome(spec.name, "no-op", run=change.previous, run_dir=change.previous.run_dir if change.previous else None)
    if change.action == "in-flight":
        return Outcome(spec.name, "in-flight", run=change.previous)
    if change.action in ("create", "replace") or force:
        if not confirm(checked):
            return Outcome(spec.name, "declined")
    layout = output_layout(spec, state)
    claim = state.claim(
        spec_name=spec.name,
        spec_file=str(spec.file),
        fingerprint=spec.fingerprint,
        backend=backend.name,
        output_root=spec.output_root,
        run_dir_for=lambda run_id: layout(run_id).final_path,
        spec=stored_spec(spec),
        plan=spec.redact(plan.model_dump(mode="json")),
        data=spec.redact(_data_json(checked.data)),
        force=force,
        published=run_published,
    )
    if claim.action == "noop":
        return Outcome(spec.name, "no-op", run=claim.run, run_dir=claim.run.run_dir)
    if claim.action == "in_flight":
        return Outcome(spec.name, "in-flight", run=claim.run)
    run = claim.run
    try:
        run_dir = layout(run.run_id).create()
    except OSError as exc:
        result = RunResult(status="failed", message=f"cannot create the run folder: {exc}")
        state.update_run(run.run_id, status="failed", message=result.message, owner_pid=None)
        return Outcome(spec.name, "error", run=state.get_run(run.run_id), result=result, diagnostics=[
            Diagnostic("TS123", f"cannot create the run folder {layout(run.run_id).path}: {exc.strerror}", spec.locate("output.path"),
                       "point `output.path` at a folder you can write")])
    ctx = RunContext(
        run_id=run.run_id,
        spec=spec,
        plan=plan,
        data=checked.data,
        run_dir=run_dir,
        progress=progress,
        resuming=claim.action == "resume",
        record_remote_id=lambda remote_id: state.update_run(run.run_id, remote_id=remote_id),
    )
    action = "resumed" if ctx.resuming else "started"
    try:
        result = backend.apply(ctx)
    except KeyboardInterrupt:
        # `tunespec cancel` stops a local run by interrupting its process (this one), after
        # recording that it asked to: then the run ends here, published as cancelled.
        current = state.get_run(run.run_id)
        if current is not None and current.status == "cancelling":
            result = RunResult(status="cancelled", message="cancelled by `tunespec cancel`")
            run = finish_run(current, result, state, backend)
            return Outcome(spec.name, "cancelled", run=run, result=result, run_dir=run.run_dir)
        state.update_run(run.run_id, status="interrupted", message="interrupted; `tunespec apply` resumes it")
        raise
    except DiagnosticError as exc:
        result = RunResult(status="failed", message=exc.diagnostics[0].message, error={"diagnostics": [d.to_json() for d in exc.diagnostics]})
        run = finish_run(state.get_run(run.run_id), result, state, backend)  # type: ignore[arg-type]
        return Outcome(spec.name, action, run=run, result=result, run_dir=run.run_dir, diagnostics=exc.diagnostics)
    # One rule for everything stored: an interpolated value is kept as its ${env:...}
    # reference, even inside a resource name the service returned.
    result = RunResult.model_validate(spec.redact(result.model_dump(mode="json")))
    if result.status in ("pending", "running"):
        run = state.update_run(run.run_id, status=result.status, remote_id=result.remote_id or run.remote_id, message=result.message)
        return Outcome(spec.name, "submitted", run=run, result=result)
    run = finish_run(state.get_run(run.run_id), result, state, backend)  # type: ignore[arg-type]
    return Outcome(spec.name, action, run=run, result=result, run_dir=run.run_dir)


def _data_json(report: Any) -> dict[str, Any]:
    if report is None:
        return {}
    return report.model_dump(mode="json") if hasattr(report, "model_dump") else dict(report)


def output_layout(spec_or_root: ResolvedSpec | str, state: StateStore, spec_name: str | None = None) -> Callable[[str], RunDirectory]:
    """Where a run's files are staged. A `gs://` root is staged locally beside the state
    store and uploaded when the run is finalised."""
    if isinstance(spec_or_root, ResolvedSpec):
        root, spec_name = spec_or_root.output_root, spec_or_root.name
    else:
        root = spec_or_root
    assert spec_name is not None
    if root.startswith("gs://"):
        local_root = state.path.parent / "outputs"
        return lambda run_id: RunDirectory(local_root, spec_name, run_id)
    return lambda run_id: RunDirectory(root, spec_name, run_id)


def finish_run(run: RunRecord, result: RunResult, state: StateStore, backend: Backend) -> RunRecord:
    """Write spec.yaml + manifest.json, publish the run directory atomically (uploading it
    for a gs:// root), and record the final status. Failed and cancelled runs are
    published the same way, so every finished run in the state has its folder."""
    run.require_resolved()
    status = result.status if result.status in ("succeeded", "failed", "cancelled") else "failed"
    spec = run.spec or {}
    run_dir = output_layout(run.output_root, state, run.spec_name)(run.run_id).create()
    manifest = Manifest(
        run_id=run.run_id,
        spec_name=run.spec_name,
        fingerprint=run.fingerprint,
        backend=run.backend,
        status=status,  # type: ignore[arg-type]
        started_at=run.created_at,
        finished_at=now_iso(),
        base_model=spec.get("model", {}).get("base", ""),
        method=spec.get("method", {}),
        hyperparameters=spec.get("hyperparameters", {}),
        labels=spec.get("metadata", {}).get("labels", {}),
        data=run.data or {},
        metrics=result.metrics,
        evaluation=result.evaluation,
        outputs=result.outputs,
        error=result.error,
        environment=environment_versions(tuple(m.split(".")[0] for m in backend.requires)),
    )
    final = run_dir.finalize(manifest, yaml.safe_dump(spec, sort_keys=False))
    location = str(final)
    if run.output_root.startswith("gs://"):
        from tunespec.artifacts.gcs import upload_run

        location = f"{run.output_root.rstrip('/')}/{run.spec_name}/{run.run_id}"
        upload_run(final, location)
    return state.update_run(run.run_id, status=status, run_dir=location, message=result.message, owner_pid=None)


def run_published(run: RunRecord) -> bool:
    """True while a finished run's folder still holds its manifest (someone may have
    deleted it). A path whose ${env:...} is unset now cannot be looked at: assumed there."""
    return bool(run.unresolved) or is_published(run.run_dir)


def refresh_status(run: RunRecord, host: PluginHost, state: StateStore) -> tuple[RunRecord, RunResult | None]:
    """Ask the backend about a run in flight; finish it when it has ended. A finished run
    whose folder was deleted shows as `missing` (the record keeps its real status)."""
    if run.finished:
        if not run_published(run):
            run = dataclasses.replace(run, status="missing", message=f"{run.run_dir} has no {MANIFEST_FILE}: the run's folder was deleted or moved")
        return run, None
    backend = host.backends().get(run.backend)
    if backend is None:
        return run, None
    if not backend.remote and not run.remote_id:
        if run.owner_alive:
            return run, None
        if run.status == "cancelling":  # its process ended before it could publish the run
            result = RunResult(status="cancelled", message="cancelled by `tunespec cancel`")
            return finish_run(run, result, state, backend), result
        if run.status == "interrupted":
            return run, None
        return state.update_run(run.run_id, status="interrupted", message="its process ended; `tunespec apply` resumes it"), None
    result = backend.status(run)
    if result.status in ("succeeded", "failed", "cancelled"):
        return finish_run(run, result, state, backend), result
    if (result.status, result.message) != (run.status, run.message):
        run = state.update_run(run.run_id, status=result.status, message=result.message or run.message)
    return run, result


@dataclass
class Cancelled:
    """What `cancel_run` did: the run as it is now, and whether it has stopped."""

    run: RunRecord
    stopped: bool
    message: str


def cancel_run(run: RunRecord, host: PluginHost, state: StateStore, wait_s: float = 120.0) -> Cancelled:
    """Stop a run in flight and publish it as cancelled.

    - a remote run (or one with a remote job id): the backend cancels the job;
    - a local run driven by a live `apply` on this host: record the request, interrupt
      that process (SIGTERM, which the CLI takes as Ctrl-C) and wait for it to publish
      the run as cancelled;
    - a local run driven from another host: refused, naming the host and process;
    - a local run whose process is gone (interrupted): published as cancelled here.
    """
    backend = host.backends().get(run.backend)
    if backend is None:
        raise DiagnosticError(Diagnostic("TS300", f"run {run.run_id} ran on backend {run.backend!r}, which is not installed", Location(run.spec_file)))
    run.require_resolved()
    if backend.remote or run.remote_id:
        result = backend.cancel(run)
        if result.status in ("succeeded", "failed", "cancelled"):
            run = finish_run(run, result, state, backend)
            return Cancelled(run, True, result.message or "cancelled")
        run = state.update_run(run.run_id, status=result.status, message=result.message or "cancel requested")
        return Cancelled(run, False, run.message or "cancel requested")
    if run.owner_alive:
        return _interrupt_owner(run, state, wait_s)
    if run.local_owner is False and run.owner_pid is not None and run.status != "interrupted":
        raise DiagnosticError(Diagnostic(
            "TS400", f"run {run.run_id} is being run by process {run.owner_pid} on host {run.owner_host}; it can only be cancelled there",
            Location(run.spec_file), f"run `tunespec cancel {run.run_id}` on {run.owner_host}, or stop that process",
        ))
    result = RunResult(status="cancelled", message="cancelled by `tunespec cancel` (its process had ended)")
    state.take_over(run.run_id)
    run = finish_run(run, result, state, backend)
    return Cancelled(run, True, result.message)  # type: ignore[arg-type]


def _interrupt_owner(run: RunRecord, state: StateStore, wait_s: float) -> Cancelled:
    import signal
    import time

    state.update_run(run.run_id, status="cancelling", message="cancel requested")
    # SIGTERM, not SIGINT: a process started in the background by a shell ignores SIGINT.
    # tunespec's CLI turns SIGTERM into the same interrupt as Ctrl-C.
    os.kill(run.owner_pid, signal.SIGTERM)  # type: ignore[arg-type]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        current = state.get_run(run.run_id)
        if current is None or current.finished:
            return Cancelled(current or run, True, "cancelled")
        if not current.owner_alive:  # it ended without publishing: publish it here
            result = RunResult(status="cancelled", message="cancelled by `tunespec cancel`")
            return Cancelled(finish_run(current, result, state, _backend_of(current)), True, "cancelled")
        time.sleep(0.2)
    current = state.get_run(run.run_id) or run
    return Cancelled(current, False, f"process {run.owner_pid} was asked to stop and has not yet; `tunespec status` shows when it has")


def _backend_of(run: RunRecord) -> Backend:
    from tunespec.plugins.host import plugin_host

    return plugin_host().backends()[run.backend]


# Remote executors: one spec's run, on the machine a remote backend started ------------------

RESULT_FILE = "result.json"
"""What `run_job` leaves in the run folder for the backend that started the job: the
`RunResult` as JSON. The backend's `status` reads it (`read_job_result`) once the job has
ended, and returns it; tunespec then publishes the run folder as usual."""


def run_job(spec_file: str | Path, run_dir: str | Path, run_id: str | None, host: PluginHost, progress: Progress,
            name: str | None = None) -> tuple[RunResult | None, list[Diagnostic]]:
    """Run one spec here, writing into `run_dir` as its staging folder: what a remote
    backend's job (a container, a batch node, a pod; under `torchrun` every process) runs,
    through `tunespec run-job`. No state database is involved: the backend that started the
    job owns the run's record, and collects `run_dir`'s files when the job ends.

    The spec runs on the backend it names (a remote backend ships a spec that names the
    backend to run it with, usually `local`). `${env:...}` references are resolved from this
    machine's environment (the remote backend ships their values as secret environment
    variables, never in files); every text file left in `run_dir` is scrubbed of them.
    A run folder that holds checkpoints resumes from them."""
    specs, problems = load_specs([spec_file], host)
    if name is not None:
        specs = [s for s in specs if s.name == name]
    if problems or len(specs) != 1:
        if not problems:
            what = f"no spec named {name!r} in {spec_file}" if name else f"{spec_file} holds {len(specs)} specs: pass --name"
            problems = [Diagnostic("TS001", what, Location(str(spec_file)))]
        return None, problems
    spec = specs[0]
    checked = check_spec(spec, host, None, progress)
    if not checked.ok:
        return None, [d for d in checked.diagnostics if d.is_error]
    if checked.backend.remote:
        where = spec.locate("backend.name")
        return None, [Diagnostic("TS302", f"run-job runs a spec on this machine; backend {checked.backend.name!r} starts remote jobs", where,
                                 "ship the job a spec whose backend runs here, e.g. `backend: {name: local}`")]
    folder = Path(run_dir)
    staged = RunDirectory.staged_at(folder, spec.name, run_id or folder.name.strip(".").removesuffix(".partial")).create()
    ctx = RunContext(run_id=staged.run_id, spec=spec, plan=checked.plan, data=checked.data, run_dir=staged,  # type: ignore[arg-type]
                     progress=progress, resuming=(folder / "checkpoints").is_dir())
    diagnostics: list[Diagnostic] = []
    try:
        result = checked.backend.apply(ctx)
    except DiagnosticError as exc:
        diagnostics = exc.diagnostics
        result = RunResult(status="failed", message=exc.diagnostics[0].message, error={"diagnostics": [d.to_json() for d in exc.diagnostics]})
    if is_main_process():
        result = RunResult.model_validate(spec.redact(result.model_dump(mode="json")))
        write_job_result(folder, result)
        from tunespec.artifacts.rundir import scrub_secrets

        scrub_secrets(folder)
    return result, diagnostics


def is_main_process() -> bool:
    """False in the other processes of a `torchrun` group (RANK > 0): they train, the main
    process writes the run's results."""
    return os.environ.get("RANK", "0") == "0"


def write_job_result(folder: str | Path, result: RunResult) -> None:
    import orjson

    target = Path(folder) / RESULT_FILE
    partial = target.with_name(f".{RESULT_FILE}.partial")
    partial.write_bytes(orjson.dumps(result.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
    os.replace(partial, target)


def read_job_result(folder: str | Path) -> RunResult | None:
    """The `RunResult` a finished `run_job` left in `folder` (taken out of the folder, so it
    is not published as one of the run's files), or None while there is none."""
    import orjson

    path = Path(folder) / RESULT_FILE
    if not path.is_file():
        return None
    result = RunResult.model_validate(orjson.loads(path.read_bytes()))
    path.unlink()
    return result


# Where the state database is --------------------------------------------------------------


def state_path_for(paths: Iterable[str | Path], override: str | None = None) -> Path:
    """The state database for the given spec paths: `--state`, else $TUNESPEC_STATE, else
    the project's (see `tunespec.state.find_state_path`), found from the first path's
    folder (or the current directory)."""
    if override:
        return Path(override)
    if os.environ.get("TUNESPEC_STATE"):
        return Path(os.environ["TUNESPEC_STATE"])
    first = next(iter(paths), None)
    start = Path(first) if first else Path.cwd()
    start = start if start.is_dir() else start.parent
    return find_state_path(start)


def state_for(paths: Iterable[str | Path], override: str | None = None, *, create: bool = True) -> StateStore | None:
    """The state store for the given spec paths. `create=False` (every read-only command)
    opens an existing database or returns None: it never creates a file or a folder."""
    path = state_path_for(paths, override)
    try:
        return StateStore(path, create=create)
    except FileNotFoundError:
        return None


def interactive() -> bool:
    return sys.stdin.isatty() and not os.environ.get("CI")
