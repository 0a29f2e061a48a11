"""Sending a published run to its trackers, one at a time, each failure contained."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunespec import secrets
from tunespec.diagnostics import Diagnostic, Location

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tunespec.plugins.host import PluginHost
    from tunespec.tracking import TrackedRun, Tracker


def tracker_configs(entries: list[Any], host: "PluginHost") -> tuple[list[tuple["Tracker", "BaseModel"]], list[str]]:
    """The trackers a stored spec's `tracking` list names, with their options validated
    again (their `${env:...}` references resolved now, at use). Returns them and, for
    each entry that cannot be used, why."""
    from pydantic import ValidationError

    trackers = host.trackers()
    out, problems = [], []
    for entry in entries or []:
        entry = {"name": entry} if isinstance(entry, str) else dict(entry)
        name = entry.pop("name", None)
        tracker = trackers.get(name) if isinstance(name, str) else None
        if tracker is None:
            problems.append(f"{name}: no tracker of this name is installed")
            continue
        options, missing = _expand(entry)
        if missing:
            problems.append(f"{name}: environment variable {missing[0]} is not set")
            continue
        try:
            out.append((tracker, tracker.config_model.model_validate(options)))
        except ValidationError as exc:
            problems.append(f"{name}: {exc.errors()[0]['msg']}")
    return out, problems


def _expand(value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, str):
        return secrets.expand(value)
    if isinstance(value, dict):
        missing: list[str] = []
        out = {}
        for k, v in value.items():
            out[k], m = _expand(v)
            missing += m
        return out, missing
    if isinstance(value, list):
        pairs = [_expand(v) for v in value]
        return [p[0] for p in pairs], [m for p in pairs for m in p[1]]
    return value, []


def track_run(run: "TrackedRun", entries: list[Any], host: "PluginHost") -> tuple[dict[str, Any], list[Diagnostic]]:
    """Send `run` to every tracker in `entries` (the stored spec's `tracking` list).
    Returns the manifest's `tracking` record, per tracker: the parts `sent`, the parts
    `not_sent`, `where` to find the run, and the `error` when it failed; and a TS406
    warning per tracker that did not get everything. Never raises (but for Ctrl-C)."""
    from tunespec.tracking import PARTS, Sent

    record: dict[str, Any] = {}
    problems: list[Diagnostic] = []
    configs, unusable = tracker_configs(entries, host)
    for reason in unusable:
        name = reason.split(":", 1)[0]
        record[name] = {"sent": [], "not_sent": list(PARTS), "where": {}, "error": reason}
        problems.append(_warning(run, name, reason, list(PARTS)))
    for tracker, config in configs:
        sent = Sent(tracker.name)
        error = None
        try:
            tracker.send(run, config, sent)
        except Exception as exc:  # noqa: BLE001 - a tracker must never fail or lose the run
            error = secrets.redact(f"{type(exc).__name__}: {exc}".strip())[:500]
            if _debug():
                traceback.print_exc()
        not_sent = [p for p in PARTS if p not in sent.parts]
        record[tracker.name] = {"sent": sent.parts, "not_sent": not_sent, "where": secrets.redact(sent.where), "error": error}
        if not_sent:
            problems.append(_warning(run, tracker.name, error or "the tracker did not say why", not_sent))
    return record, problems


def _warning(run: "TrackedRun", tracker: str, why: str, not_sent: list[str]) -> Diagnostic:
    from tunespec.diagnostics import Severity

    return Diagnostic(
        "TS406",
        f"run {run.run_id} was not fully sent to tracker {tracker!r} ({', '.join(not_sent)} not sent): {why}",
        Location(subject=f"tracking {tracker}"),
        f"the run itself is fine and published in {run.run_dir}; its manifest's `tracking` entry records what was not sent",
        Severity.WARNING,
    )


def _debug() -> bool:
    import os

    return bool(os.environ.get("TUNESPEC_DEBUG"))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    from tunespec.artifacts import MetricsLog

    return MetricsLog(run_dir / "metrics.jsonl").read()
