"""Specs that build on specs (`model.base: run:<spec>`), with the echo backend: the order
plan and apply use, the upstream run in the fingerprint, and every way it can go wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

CHAIN = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: {base}
data:
  train: data/train.jsonl
hyperparameters:
  epochs: {epochs}
backend:
  name: echo
{backend_extra}"""


def write(project, name: str, base: str, epochs: int = 1, backend_extra: str = "") -> Path:
    path = project.root / f"{name}.yaml"
    path.write_text(CHAIN.format(name=name, base=base, epochs=epochs, backend_extra=backend_extra))
    return path


def actions(plan) -> dict[str, str]:
    return {s["name"]: s["change"]["action"] for s in plan.json["specs"]}


def test_a_chain_is_planned_and_applied_upstream_first(cli, project):
    # Written so that file order is the wrong order: plan must reorder them.
    write(project, "a-preference", "run:b-sft")
    write(project, "b-sft", "tiny-model")
    plan = cli("plan", project.root, "--output", "json")
    assert plan.code == 2
    assert plan.json["order"] == ["b-sft", "a-preference"]
    assert actions(plan) == {"b-sft": "create", "a-preference": "create"}
    assert plan.json["specs"][1]["upstream"] == {"spec": "b-sft", "run_id": None, "pending": True}
    human = cli("plan", project.root)
    assert "order: b-sft → a-preference (after b-sft)" in human.out

    applied = cli("apply", project.root, "--output", "json")
    assert applied.code == 0, applied.out
    runs = {r["spec"]: r for r in applied.json["runs"]}
    assert [r["spec"] for r in applied.json["runs"]] == ["b-sft", "a-preference"]
    sft_run = runs["b-sft"]["run"]["run_id"]
    assert runs["a-preference"]["result"]["status"] == "succeeded"

    again = cli("plan", project.root, "--output", "json")
    assert again.code == 0 and actions(again) == {"b-sft": "no-op", "a-preference": "no-op"}
    assert again.json["specs"][1]["upstream"]["run_id"] == sft_run
    assert f"run {sft_run}" in again.json["specs"][1]["plan"]["summary"]["builds on"]


def test_an_upstream_change_replaces_what_builds_on_it(cli, project):
    write(project, "b-sft", "tiny-model", epochs=1)
    write(project, "a-preference", "run:b-sft")
    assert cli("apply", project.root).code == 0
    write(project, "b-sft", "tiny-model", epochs=2)
    plan = cli("plan", project.root, "--output", "json")
    assert actions(plan) == {"b-sft": "replace", "a-preference": "replace"}
    [changed] = plan.json["specs"][1]["change"]["changed"]
    assert changed.startswith("upstream: run:b-sft = the run this apply makes first (was run:b-sft = run ")
    applied = cli("apply", project.root, "--output", "json")
    assert [r["action"] for r in applied.json["runs"]] == ["started", "started"]
    assert actions(cli("plan", project.root, "--output", "json")) == {"b-sft": "no-op", "a-preference": "no-op"}

    # The upstream re-applied on its own: the downstream now builds on a newer run.
    assert cli("apply", project.root / "b-sft.yaml", "--force").code == 0
    plan = cli("plan", project.root / "a-preference.yaml", "--output", "json")
    assert actions(plan) == {"a-preference": "replace"}
    assert plan.json["specs"][0]["change"]["changed"][0].startswith("upstream: run:b-sft = run ")


def test_an_upstream_that_never_succeeded_is_named(cli, project):
    down = write(project, "a-preference", "run:b-sft")
    result = cli("apply", down)
    assert result.code == 1
    assert "TS125" in result.err and "a-preference builds on run:b-sft, but b-sft has never succeeded" in result.err
    assert f"{down}:6:9:" in result.err  # at model.base


def test_a_deleted_upstream_run_is_not_a_base(cli, project):
    write(project, "b-sft", "tiny-model")
    down = write(project, "a-preference", "run:b-sft")
    applied = cli("apply", project.root / "b-sft.yaml", "--output", "json")
    shutil.rmtree(applied.json["runs"][0]["run_dir"])
    result = cli("plan", down)
    assert result.code == 1 and "TS125" in result.err and "is missing" in result.err
    # Planned together, the upstream is run again first, so the chain is fine.
    assert actions(cli("plan", project.root, "--output", "json")) == {"b-sft": "replace", "a-preference": "create"}


def test_cycles_are_refused_where_they_are_written(cli, project):
    a = write(project, "a-spec", "run:b-spec")
    write(project, "b-spec", "run:a-spec")
    write(project, "c-spec", "run:c-spec")
    result = cli("plan", project.root)
    assert result.code == 1
    assert result.err.count("TS124") == 3
    assert "a-spec builds on itself: specs build on each other in a cycle (a-spec → b-spec → a-spec)" in result.err
    assert "c-spec builds on itself" in result.err
    assert f"{a}:6:9:" in result.err


def test_a_failed_upstream_stops_what_builds_on_it(cli, project):
    write(project, "b-sft", "tiny-model", backend_extra="  outcome: failed\n")
    write(project, "a-preference", "run:b-sft")
    result = cli("apply", project.root, "--output", "json")
    assert result.code == 1
    down = result.json["runs"][1]
    assert down["action"] == "error" and down["diagnostics"][0]["code"] == "TS126"
    assert not (project.root / "runs" / "a-preference").exists()
