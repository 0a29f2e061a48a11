"""`tunespec plan --output markdown`: the plan as a review-ready pull-request comment.

A reviewer reads it in a PR before anything runs: what each spec will do (create,
replace, resume, nothing) and why (the spec fields and data files that changed since the
last run), how the data changed, and the figures that decide cost: trained tokens and how
many billable jobs `apply` will start. The compiled jobs are folded away at the end.

Specs and data names come from the pull request itself, so every value is escaped for
Markdown (a spec name must not close a table cell, start a link or open a code block) and
cleaned of terminal controls, and secrets appear only as their `${env:...}` references.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from tunespec.cli.render import printable

RUNS = ("create", "replace", "resume")
"""Actions that start compute when `apply` runs."""

ACTION_MARK = {"create": "➕ create", "replace": "🔁 replace", "resume": "▶️ resume", "no-op": "✔️ no change", "in-flight": "⏳ in flight"}

# Characters Markdown (GitHub's included) gives a meaning to. HTML is escaped too: GitHub
# renders a subset of it in comments.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def text(value: Any) -> str:
    """Any value as inert Markdown text: one line, special characters backslash-escaped."""
    return _SPECIAL.sub(r"\\\1", printable(str(value)))


def code(value: Any) -> str:
    """A value as inline code, with a fence longer than any run of backticks it contains."""
    s = printable(str(value))
    fence = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def block(value: str, language: str = "") -> str:
    """A fenced code block that nothing inside can close."""
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", value)), default=0) + 1)
    return f"{fence}{language}\n{value}\n{fence}"


def _cell(value: str) -> str:
    """A table cell: a pipe ends a cell even inside a code span (GitHub's tables), unless
    backslash-escaped; the escape is removed when the cell is rendered."""
    return re.sub(r"(?<!\\)\|", r"\\|", value.replace("\n", " "))


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _tokens(report: Any) -> int:
    return int(getattr(report, "trained_tokens", 0) or 0) if report is not None else 0


def _approx(report: Any) -> str:
    return "~" if report is not None and getattr(report, "tokens_estimated", False) else ""


def _examples(report: Any) -> str:
    if report is None or not getattr(report, "splits", None):
        return "-"
    return " / ".join(f"{s.examples:,} {text(name)}" for name, s in report.splits.items())


def plan_markdown(checked: list[Any], changes: dict[str, Any], problems: list[Any], errors: int) -> str:
    """The whole comment: a headline, one table row per spec, one section per spec that
    would change, the problems (if any), and each compiled job folded."""
    will_run = [c for c in checked if c.ok and changes[c.spec.name].action in RUNS]
    billable = [c for c in will_run if c.plan.billable]
    tokens = sum(_tokens(c.data) for c in will_run)
    approx = "~" if any(_approx(c.data) for c in will_run) else ""
    counts = {a: sum(1 for c in checked if c.ok and changes[c.spec.name].action == a) for a in ACTION_MARK}
    out = ["## tunespec plan", ""]
    headline = ", ".join(f"{n} to {a}" if a in RUNS else f"{n} {a}" for a, n in counts.items() if n) or "no specs"
    out += [f"**{headline}** · billable jobs: **{len(billable)}** · trained tokens: **{approx}{tokens:,}**", ""]
    if errors:
        out += [f"❌ **{errors} error{'s' * (errors != 1)}**: `apply` starts nothing until they are fixed (see Problems).", ""]
    if checked:
        out += _table(
            ["spec", "backend", "action", "billable", "trained tokens", "examples"],
            ([code(c.spec.name), code(c.backend.name), _action(c, changes), _billable(c),
              f"{_approx(c.data)}{_tokens(c.data):,}" if c.ok else "-", _examples(c.data)] for c in checked),
        )
        out.append("")
    if problems or any(c.diagnostics.has_errors or c.diagnostics.warning_count for c in checked):
        out += _problems(problems, checked)
    for c in checked:
        if c.ok and changes[c.spec.name].action in RUNS + ("in-flight",):
            out += _spec_section(c, changes[c.spec.name])
    return "\n".join(out).rstrip() + "\n"


def _action(c: Any, changes: dict[str, Any]) -> str:
    if not c.ok:
        return "❌ invalid"
    return ACTION_MARK.get(changes[c.spec.name].action, text(changes[c.spec.name].action))


def _billable(c: Any) -> str:
    if c.plan is None:
        return "-"
    return "**yes**" if c.plan.billable else "no"


def _problems(problems: list[Any], checked: list[Any]) -> list[str]:
    out = ["### Problems", ""]
    every = list(problems) + [d for c in checked for d in c.diagnostics]
    for d in every:
        where = code(str(d.location)) if str(d.location) else ""
        hint = f" — {text(d.hint)}" if d.hint else ""
        out.append(f"- **{d.severity.value}** {code(d.code)} {where} {text(d.message)}{hint}".replace("  ", " "))
    return out + [""]


def _spec_section(c: Any, change: Any) -> list[str]:
    plan = c.plan.model_validate(c.spec.redact(c.plan.model_dump(mode="json")))  # references, never values
    out = [f"### {text(c.spec.name)}: {ACTION_MARK.get(change.action, text(change.action))}", ""]
    out.append(f"{code(c.spec.file)} · backend {code(c.backend.name)} · fingerprint {code(c.spec.fingerprint[:12])}")
    out.append("")
    out += _why(change)
    if plan.summary:
        out += ["**Job**", ""] + [f"- {text(k)}: {code(_plain(v))}" for k, v in plan.summary.items()] + [""]
    out += _data_section(c.data, change)
    out += ["<details><summary>compiled job</summary>", "", block(json.dumps(plan.job, indent=2, default=str), "json"), "", "</details>", ""]
    return out


def _display(path: str) -> str:
    """A data path as `plan` shows it: relative to the working directory when under it, an
    interpolated part as its `${env:...}` reference."""
    import os

    from tunespec import secrets

    path = secrets.redact(path)
    if "://" in path or not os.path.isabs(path):
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _why(change: Any) -> list[str]:
    previous = change.previous
    if change.action == "create":
        return ["**Why:** no run of this spec is recorded yet.", ""]
    if change.action == "resume":
        return [f"**Why:** run {code(previous.run_id)} of this same job was interrupted; `apply` resumes it from its last checkpoint.", ""]
    if change.action == "in-flight":
        return [f"**Why:** run {code(previous.run_id)} is running now; `apply` will not start it again.", ""]
    out = [f"**Why:** the last run {code(previous.run_id)} ({text(previous.status)}) differs:", ""]
    out += [f"- {code(field)}" for field in change.changed]
    return out + [""]


def _data_section(report: Any, change: Any) -> list[str]:
    """Each data file, with how it changed since the previous run (new, changed, unchanged),
    and the files the previous run used that are gone."""
    if report is None or not getattr(report, "files", None):
        return []
    before = {f["path"]: f for f in ((change.previous.data or {}).get("files", []) if change.previous else [])}
    rows = []
    for f in report.files:
        old = before.pop(f.path, None)
        if change.previous is None:
            what = "-"
        elif old is None:
            what = "**new**"
        elif old.get("sha256") != f.sha256:
            delta = f.examples - int(old.get("examples", 0))
            what = f"**changed** ({delta:+,} examples)"
        else:
            what = "unchanged"
        rows.append([code(_display(f.path)), text(f.split), text(f.format or "-"), f"{f.examples:,}", f"{f.bytes:,} B", what])
    rows += [[code(_display(path)), text(old.get("split", "")), "-", "-", "-", "**removed**"] for path, old in before.items()]
    est = "~" if report.tokens_estimated else ""
    out = ["**Data**", ""] + _table(["file", "split", "format", "examples", "size", "since last run"], rows) + [""]
    out.append(f"Trained tokens: {est}{report.trained_tokens:,} ({text(report.trained_tokens_basis)}); "
               f"token counts {'estimated' if report.tokens_estimated else 'exact'} ({text(report.token_counter)}).")
    return out + [""]
