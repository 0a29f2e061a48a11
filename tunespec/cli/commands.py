"""One function per CLI command. Each returns the process exit code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tunespec.cli import render
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location
from tunespec.plugins.host import plugin_host
from tunespec.progress import Progress

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(enabled=args.output == "human" and sys.stderr.isatty(), quiet=args.output == "json")


def _check_all(args: argparse.Namespace) -> tuple[list[Any], list[Diagnostic], Any]:
    """Load every spec under args.paths and run every check on each, in dependency order
    (specs that build on another spec's run after it). The state database is opened if it
    exists (it caches data hashes and resolves `run:` references), never created here."""
    from tunespec.pipeline import check_specs, load_specs, state_for

    host = plugin_host()
    specs, problems = load_specs(args.paths, host)
    state = state_for(args.paths, args.state, create=False)
    with _progress(args) as progress:
        checked, order_problems = check_specs(specs, host, state, progress)
    return checked, problems + order_problems, state


def _report_problems(args: argparse.Namespace, problems: list[Diagnostic], checked: list[Any]) -> int:
    """Render (human mode) every problem; return the number of errors."""
    errors = sum(d.is_error for d in problems) + sum(c.diagnostics.error_count for c in checked)
    warnings = sum(not d.is_error for d in problems) + sum(c.diagnostics.warning_count for c in checked)
    if args.output == "human":
        render.diagnostics(problems)
        for c in checked:
            render.diagnostics(c.diagnostics, c.diagnostics.omitted())
        render.summary(errors, warnings)
    return errors


def _data_rows(report: Any) -> list[tuple[str, Any]]:
    if report is None:
        return []
    return list(report.summary_rows()) if hasattr(report, "summary_rows") else []


def _checked_json(c: Any) -> dict[str, Any]:
    upstream = c.spec.upstream.to_json() if c.spec.upstream is not None else None
    return {
        "upstream": upstream,
        "name": c.spec.name,
        "file": str(c.spec.file),
        "document": c.spec.document,
        "backend": c.backend.name,
        "ok": c.ok,
        "fingerprint": c.spec.fingerprint if c.ok else None,
        "data": c.data.model_dump(mode="json") if c.data is not None and hasattr(c.data, "model_dump") else None,
        **c.diagnostics.to_json(),
    }


# validate ----------------------------------------------------------------------------


def validate(args: argparse.Namespace) -> int:
    checked, problems, _ = _check_all(args)
    errors = _report_problems(args, problems, checked)
    if args.output == "json":
        render.print_json({"specs": [_checked_json(c) for c in checked], "diagnostics": [d.to_json() for d in problems], "errors": errors})
    else:
        for c in checked:
            mark = "[green]ok[/green]" if c.ok else "[red]invalid[/red]"
            render.out.print(f"{mark} {c.spec.name} [dim]({c.spec.file}, backend {c.backend.name})[/dim]")
            if c.data is not None:
                render.rows("  data", _data_rows(c.data))
    return EXIT_ERROR if errors else EXIT_OK


# plan --------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> int:
    from tunespec.pipeline import diff

    checked, problems, state = _check_all(args)
    errors = _report_problems(args, problems, checked)
    changes = {c.spec.name: diff(c, state) for c in checked if c.ok}
    if args.output == "json":
        specs = []
        for c in checked:
            item = _checked_json(c)
            if c.ok:
                change = changes[c.spec.name]
                item["plan"] = c.spec.redact(c.plan.model_dump(mode="json"))
                item["change"] = {"action": change.action, "changed": change.changed, "previous_run": change.previous.run_id if change.previous else None}
            specs.append(item)
        render.print_json({"specs": specs, "order": [c.spec.name for c in checked], "diagnostics": [d.to_json() for d in problems], "errors": errors})
    else:
        _print_order(checked)
        for c in checked:
            if c.ok:
                _print_plan(c, changes[c.spec.name])
    if errors:
        return EXIT_ERROR
    return EXIT_CHANGES if any(ch.action in ("create", "replace", "resume") for ch in changes.values()) else EXIT_OK


def _print_order(checked: list[Any]) -> None:
    """When specs build on each other, the order `apply` runs them in, each after its upstream."""
    if not any(c.spec.job.model.upstream for c in checked):
        return
    steps = []
    for c in checked:
        upstream = c.spec.job.model.upstream
        steps.append(f"{c.spec.name}" + (f" [dim](after {upstream})[/dim]" if upstream else ""))
    render.out.print("[bold]order[/bold]: " + " → ".join(steps))


ACTION_STYLE = {"create": "green", "replace": "yellow", "resume": "cyan", "no-op": "dim", "in-flight": "cyan"}


def _print_plan(c: Any, change: Any) -> None:
    style = ACTION_STYLE.get(change.action, "")
    render.out.rule(f"[bold]{c.spec.name}[/bold]  [{style}]{change.action}[/{style}]", align="left")
    render.out.print(f"[dim]{c.spec.file} · backend {c.backend.name} · fingerprint {c.spec.fingerprint[:12]}[/dim]")
    if change.previous is not None:
        render.out.print(f"[dim]last run {change.previous.run_id} ({change.previous.status})[/dim]")
    for field in change.changed:
        render.out.print(f"  [yellow]~[/yellow] {field}")
    plan = c.plan.model_validate(c.spec.redact(c.plan.model_dump(mode="json")))  # never print interpolated secrets
    if plan.summary:
        render.rows("  job", plan.summary.items())
    render.rows("  data", _data_rows(c.data))
    if plan.mappings:
        render.out.print("  [dim]spec field → backend[/dim]")
        for m in plan.mappings:
            target = f"[bold]{m.target}[/bold]" if m.target else "[dim](not sent)[/dim]"
            note = f"  [dim]{render.escape(m.note)}[/dim]" if m.note else ""
            value = render.escape(json.dumps(m.value, default=str))
            render.out.print(f"    {m.field} → {target} = {value}{note}")
    render.out.print("  [dim]compiled job:[/dim]")
    render.out.print_json(json.dumps(plan.job, default=str), indent=2)


# apply -------------------------------------------------------------------------------


def apply(args: argparse.Namespace) -> int:
    from tunespec.pipeline import apply_checked, interactive, state_for

    checked, problems, state = _check_all(args)
    errors = _report_problems(args, problems, checked)
    if errors:
        if args.output == "json":
            render.print_json({"specs": [_checked_json(c) for c in checked], "diagnostics": [d.to_json() for d in problems], "errors": errors})
        elif args.output == "human":
            render.err.print("nothing applied: fix the errors above first")
        return EXIT_ERROR

    def confirm(c: Any) -> bool:
        if not c.plan.billable or args.yes:  # the one rule: the plan says whether it costs money
            return True
        if not interactive():
            raise _NeedsConfirmation(c)
        from rich.prompt import Confirm

        return Confirm.ask(f"Start billable {c.backend.name} job for [bold]{c.spec.name}[/bold]?", console=render.err)

    state = state or state_for(args.paths, args.state, create=True)  # the first apply of a project makes it
    outcomes = []
    failed = False
    applied: dict[str, Any] = {}
    try:
        with _progress(args) as progress:
            for c in checked:  # dependency order: a spec after the spec it builds on
                try:
                    c, blocked = _after_upstream(c, applied, state, progress)
                    outcome = blocked or apply_checked(c, state, progress, force=args.force, confirm=confirm)
                except _NeedsConfirmation:
                    outcome = _confirmation_error(c)
                applied[c.spec.name] = outcome
                outcomes.append(outcome)
                failed |= outcome.failed
                if args.output == "human":
                    _print_outcome(outcome, progress)
    finally:
        state.backup()  # the copy a damaged database is restored from (TS402 says how)
    if args.output == "json":
        render.print_json({"runs": [_outcome_json(o) for o in outcomes], "errors": sum(o.failed for o in outcomes)})
    return EXIT_ERROR if failed else EXIT_OK


def _after_upstream(c: Any, applied: dict[str, Any], state: Any, progress: Progress) -> tuple[Any, Any]:
    """A spec whose upstream ran earlier in this apply: check it again against that new run
    (or, when the upstream did not succeed, do not apply it). Returns the spec to apply and,
    when it must not be applied, the outcome saying why."""
    from tunespec.chains import PendingUpstream
    from tunespec.pipeline import Outcome, recheck_after_upstream

    upstream = c.spec.upstream
    if not isinstance(upstream, PendingUpstream):
        return c, None
    before = applied.get(upstream.spec_name)
    succeeded = before is not None and before.run is not None and before.run.status == "succeeded" and not before.failed
    if not succeeded:
        what = before.action if before is not None else "not applied"
        status = f", run {before.run.status}" if before is not None and before.run is not None else ""
        return c, Outcome(c.spec.name, "error", diagnostics=[Diagnostic(
            "TS126", f"{c.spec.name} was not applied: it builds on {upstream.spec_name}, which did not succeed in this apply ({what}{status})",
            c.spec.locate("model.base"), f"fix {upstream.spec_name} (see above), then apply again")])
    again = recheck_after_upstream(c, plugin_host(), state, progress)
    if again.diagnostics.has_errors or again.plan is None:
        return again, Outcome(c.spec.name, "error", diagnostics=list(again.diagnostics))
    return again, None


class _NeedsConfirmation(Exception):
    def __init__(self, checked: Any):
        self.checked = checked


def _confirmation_error(c: Any) -> Any:
    from tunespec.pipeline import Outcome

    d = Diagnostic(
        "TS003",
        f"{c.spec.name}: apply would start a billable {c.backend.name} job and there is no terminal to confirm",
        c.spec.locate("backend.name"),
        "pass --yes to confirm in CI",
    )
    return Outcome(c.spec.name, "error", diagnostics=[d])


def _print_outcome(o: Any, progress: Progress) -> None:
    render.diagnostics(o.diagnostics)
    run_id = o.run.run_id if o.run else ""
    if o.action == "no-op":
        render.out.print(f"[dim]no changes[/dim] {o.spec_name}: run {run_id} already succeeded ({o.run_dir})")
    elif o.action == "in-flight":
        render.out.print(f"[cyan]in flight[/cyan] {o.spec_name}: run {run_id} is running; not started again (`tunespec status`)")
    elif o.action == "submitted":
        remote = f" as {o.run.remote_id}" if o.run and o.run.remote_id else ""
        render.out.print(f"[cyan]submitted[/cyan] {o.spec_name}: run {run_id}{remote}; follow it with `tunespec status`")
    elif o.action == "declined":
        render.out.print(f"[dim]skipped[/dim] {o.spec_name}")
    elif o.action == "cancelled":
        render.out.print(f"[yellow]cancelled[/yellow] {o.spec_name}: run {run_id} → {o.run_dir}")
    elif o.result is not None:
        style = "green" if o.result.status == "succeeded" else "red"
        render.out.print(f"[{style}]{o.result.status}[/{style}] {o.spec_name}: run {run_id} → {o.run_dir}")
        if o.result.message:
            render.out.print(f"  {o.result.message}")
        _print_evaluation(o.result.evaluation)


def _print_evaluation(evaluation: dict[str, Any]) -> None:
    """Base vs tuned on the validation set, and whether tuning beat prompting (the first
    metric decides), for any backend whose result carries `evaluation.base/tuned`."""
    base, tuned = evaluation.get("base") or {}, evaluation.get("tuned")
    if not isinstance(tuned, dict):
        return
    metrics = evaluation.get("metrics") or sorted(k for k, v in tuned.items() if isinstance(v, float))
    examples = f" ({tuned['examples']} validation examples)" if "examples" in tuned else ""
    render.table(
        f"  evaluation{examples}",
        ["metric", "base model", "tuned model"],
        ([m, _fmt(base.get(m)), _fmt(tuned.get(m))] for m in metrics),
    )
    first = metrics[0] if metrics else None
    if first is not None and isinstance(base.get(first), (int, float)) and isinstance(tuned.get(first), (int, float)):
        verdict = "[green]tuning beat prompting[/green]" if tuned[first] > base[first] else "[red]tuning did NOT beat prompting[/red]"
        render.out.print(f"  {verdict} on {first}")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("-" if value is None else str(value))


def _outcome_json(o: Any) -> dict[str, Any]:
    return {
        "spec": o.spec_name,
        "action": o.action,
        "run": o.run.to_json() if o.run else None,
        "result": o.result.model_dump(mode="json") if o.result else None,
        "run_dir": o.run_dir,
        "diagnostics": [d.to_json() for d in o.diagnostics],
    }


# status / runs / cancel -------------------------------------------------------------


def _spec_names(paths: list[str]) -> list[str] | None:
    """Names of the specs under `paths` (read leniently: schema errors do not matter here).
    A path that does not exist is an error (TS001)."""
    from tunespec.pipeline import find_spec_files
    from tunespec.spec.loader import load_documents

    if not paths:
        return None
    files, problems = find_spec_files(paths)
    missing = [d for d in problems if d.code == "TS001"]
    if missing:
        raise DiagnosticError(missing)
    names = []
    for file in files:
        docs, problems = load_documents(file)
        # A spec whose ${env:...} is not set (or that does not load) cannot be named: say
        # why, as validate would, rather than "no runs recorded".
        if problems:
            raise DiagnosticError(problems)
        names.extend(d.data["metadata"]["name"] for d in docs if isinstance(d.data.get("metadata"), dict) and "name" in d.data["metadata"])
    return names


def _no_state(args: argparse.Namespace, paths: list[str]) -> int:
    from tunespec.pipeline import state_path_for

    where = state_path_for(paths, args.state)
    if args.output == "json":
        render.print_json({"runs": [], "state": None})
    else:
        render.out.print(f"no runs recorded yet (no state database at {where}); `tunespec apply` starts one")
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    from tunespec.pipeline import refresh_status, state_for

    names = _spec_names(args.paths)  # first: a spec that cannot be read is an error either way
    state = state_for(args.paths, args.state, create=False)
    if state is None:
        return _no_state(args, args.paths)
    latest = [state.latest_run(n) for n in names] if names is not None else _latest_per_spec(state)
    host = plugin_host()
    rows = []
    failed = False
    for run in filter(None, latest):
        try:
            run, result = refresh_status(run, host, state)
        except DiagnosticError as exc:  # the backend could not ask (credentials, network): say why
            failed = True
            if args.output == "human":
                render.diagnostics(exc.diagnostics)
        failed |= run.status in ("failed", "cancelled", "missing")
        rows.append(run)
    if args.output == "json":
        render.print_json({"runs": [r.to_json() for r in rows]})
    elif rows:
        render.table("latest runs", ["spec", "run", "backend", "status", "remote", "updated", "where"],
                     ([r.spec_name, r.run_id, r.backend, r.status, r.remote_id, r.updated_at, r.where] for r in rows))
        for r in rows:
            if r.status == "missing":
                render.out.print(f"[yellow]missing[/yellow] {r.spec_name}: {r.message}; `tunespec apply` runs it again")
    else:
        render.out.print("no runs recorded yet; `tunespec apply` starts one")
    return EXIT_ERROR if failed else EXIT_OK


def _latest_per_spec(state: Any) -> list[Any]:
    seen: dict[str, Any] = {}
    for run in state.runs(limit=1000):
        seen.setdefault(run.spec_name, run)
    return list(seen.values())


def runs(args: argparse.Namespace) -> int:
    from tunespec.pipeline import state_for

    state = state_for([], args.state, create=False)
    if state is None:
        return _no_state(args, [])
    records = state.runs(args.spec_name)
    if args.output == "json":
        render.print_json({"runs": [r.to_json() for r in records]})
    elif records:
        render.table("runs", ["spec", "run", "backend", "status", "created", "fingerprint", "where"],
                     ([r.spec_name, r.run_id, r.backend, r.status, r.created_at, r.fingerprint[:12], r.where] for r in records))
    else:
        render.out.print("no runs recorded")
    return EXIT_OK


def cancel(args: argparse.Namespace) -> int:
    from tunespec.pipeline import cancel_run, state_for, state_path_for

    state = state_for([], args.state, create=False)
    run = (state.get_run(args.target) or state.latest_run(args.target)) if state is not None else None
    if run is None or run.finished:
        if state is None:
            what, hint = f"no run or spec named {args.target!r}: there is no state database at {state_path_for([], args.state)}", "run from your project (or pass --state FILE)"
        else:
            what = f"no run in flight for {args.target!r}" if run else f"no run or spec named {args.target!r}"
            hint = "see `tunespec runs`"
        raise DiagnosticError(Diagnostic("TS401", what, Location(subject=f"cancel {args.target}"), hint))
    outcome = cancel_run(run, plugin_host(), state)  # type: ignore[arg-type]
    if args.output == "json":
        render.print_json({"run": outcome.run.to_json(), "stopped": outcome.stopped, "message": outcome.message})
    elif outcome.stopped:
        render.out.print(f"{outcome.run.spec_name}: run {outcome.run.run_id} is {outcome.run.status} → {outcome.run.where}")
    else:
        render.out.print(f"{outcome.run.spec_name}: run {outcome.run.run_id} is {outcome.run.status}: {outcome.message}")
    return EXIT_OK


# run-job: the remote side of a remote backend -------------------------------------------


def run_job(args: argparse.Namespace) -> int:
    """`tunespec run-job SPEC --run-dir DIR`: see `tunespec.pipeline.run_job`. Exit 0 when the
    run succeeded; the result is also in DIR/result.json for the backend that started it."""
    from tunespec.pipeline import run_job as run_one

    with _progress(args) as progress:
        result, problems = run_one(args.spec, args.run_dir, args.run_id, plugin_host(), progress, name=args.name)
    if args.output == "json":
        render.print_json({"result": result.model_dump(mode="json") if result else None, "run_dir": args.run_dir,
                           "diagnostics": [d.to_json() for d in problems], "errors": sum(d.is_error for d in problems)})
    else:
        render.diagnostics(problems)
        if result is not None:
            style = "green" if result.status == "succeeded" else "red"
            render.out.print(f"[{style}]{result.status}[/{style}] {args.run_dir}" + (f": {result.message}" if result.message else ""))
    return EXIT_OK if result is not None and result.status == "succeeded" else EXIT_ERROR


# verify / schema / plugins / init -------------------------------------------------------


def verify(args: argparse.Namespace) -> int:
    from tunespec.artifacts import verify_run

    from tunespec import secrets

    results = []
    errors = 0
    for run in args.runs:
        # A run folder as tunespec prints it may hold ${env:...} references: resolve them.
        run, missing = secrets.expand(run)
        if missing:
            raise DiagnosticError(Diagnostic("TS106", f"environment variable {missing[0]} is not set", Location(run), f"export {missing[0]}=... to verify {run}"))
        manifest, problems = verify_run(run)
        errors += problems.error_count
        results.append({"run": run, "ok": not problems.has_errors, "status": manifest.status if manifest else None, **problems.to_json()})
        if args.output == "human":
            render.diagnostics(problems, problems.omitted())
            if not problems.has_errors and manifest is not None:
                render.out.print(f"[green]ok[/green] {run}: {len(manifest.files)} files match the manifest (run {manifest.run_id}, {manifest.status})")
    if args.output == "json":
        render.print_json({"runs": results, "errors": errors})
    return EXIT_ERROR if errors else EXIT_OK


def schema(args: argparse.Namespace) -> int:
    from tunespec.spec.schema import spec_json_schema

    text = json.dumps(spec_json_schema(plugin_host()), indent=2)
    if args.write:
        _write_new_file(Path(args.write), text + "\n", overwrite=True)
        if args.output == "json":
            render.print_json({"wrote": args.write})
        else:
            render.err.print(f"wrote {args.write}")
    else:
        print(text)
    return EXIT_OK


def _write_new_file(path: Path, text: str, overwrite: bool = False) -> None:
    """Write a file the user asked for; refusing to overwrite, or failing to write, is a
    diagnostic (the command exits 1), never a traceback."""
    if path.exists() and not overwrite:
        raise DiagnosticError(Diagnostic("TS007", f"{path} already exists; not overwriting it", Location(str(path)), "choose another path"))
    try:
        path.write_text(text)
    except OSError as exc:
        raise DiagnosticError(Diagnostic("TS007", f"cannot write {path}: {exc.strerror}", Location(str(path)),
                                         "choose a path in a folder that exists and that you can write")) from None


def plugins(args: argparse.Namespace) -> int:
    host = plugin_host()
    if args.output == "json":
        render.print_json({"plugins": [p.to_json() for p in host.plugins]})
        return EXIT_OK
    style = {"ok": "green", "unavailable": "yellow", "broken": "red", "disabled": "dim"}
    t_rows = []
    for p in host.plugins:
        registers = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p.registers.items())
        note = p.error or (f"missing {', '.join(p.missing)}: {p.install_hint}" if p.missing else "")
        version = p.version or ("built-in" if p.module.startswith("tunespec.") else "not packaged")
        t_rows.append([p.name, version, f"[{style[p.status]}]{p.status}[/{style[p.status]}]", registers, note])
    from rich.table import Table

    table = Table(title="plugins", title_justify="left")
    for col in ("plugin", "version", "status", "registers", "notes"):
        table.add_column(col)
    for row in t_rows:
        table.add_row(*row)
    render.out.print(table)
    return EXIT_OK


def init(args: argparse.Namespace) -> int:
    if args.plugin:
        from tunespec.scaffold import scaffold_plugin

        return scaffold_plugin(args.plugin, Path(args.path if args.path != "tunespec.yaml" else "."))
    from tunespec.spec.starter import starter_spec

    path = Path(args.path)
    _write_new_file(path, starter_spec(args.backend))
    if args.output == "json":
        render.print_json({"wrote": str(path)})
    else:
        render.out.print(f"wrote {path}: edit it, then `tunespec plan {path}`")
    return EXIT_OK
