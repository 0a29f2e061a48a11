"""Preference tuning (DPO) on Ray Train: two workers compute the step's DPO loss and reward
statistics over all of its pairs, exactly as one local process does."""

from __future__ import annotations

import json

import pytest

from tunespec.artifacts import verify_run

from ray_helpers import apply, losses, only_run, write_spec

pytestmark = pytest.mark.slow

PRIORITIES = ["low", "medium", "high", "urgent"]
PREFERENCE = "  max_steps: 4\n"
EVALUATION = "evaluation:\n  compare_base: true\n  metrics: []\n  validation_loss: true\n"


def _pairs(tiny_project) -> None:
    """The project's tickets as OpenAI preference pairs (rejected: the next priority)."""
    for split in ("train", "validation"):
        lines = []
        for line in (tiny_project / f"{split}.jsonl").read_text().splitlines():
            *prompt, answer = json.loads(line)["messages"]
            label = json.loads(answer["content"])
            label["priority"] = PRIORITIES[(PRIORITIES.index(label["priority"]) + 1) % 4]
            lines.append(json.dumps({"input": {"messages": prompt}, "preferred_output": [answer],
                                     "non_preferred_output": [{"role": "assistant", "content": json.dumps(label)}]}))
        (tiny_project / f"pairs-{split}.jsonl").write_text("\n".join(lines) + "\n")


def _preference_spec(tiny_project, backend: str, name: str):
    spec = write_spec(tiny_project, backend, name=name, hyper=PREFERENCE, data="pairs-train.jsonl",
                      validation="pairs-validation.jsonl", evaluation=EVALUATION)
    spec.write_text(spec.read_text().replace("method:\n  type: peft\n", "method:\n  type: peft\n  objective: preference\n"))
    return spec


def test_two_workers_train_dpo_like_one_process(ray_cluster, tiny_project):
    _pairs(tiny_project)
    local = _preference_spec(tiny_project, "  name: local\n  checkpoint_every: 0", "dpo-local")
    ray = _preference_spec(tiny_project, "  name: ray\n  num_workers: 2\n  checkpoint_every_steps: 2", "dpo-ray")
    assert apply(local) == 0 and apply(ray) == 0
    local_run, ray_run = only_run(local, "dpo-local"), only_run(ray, "dpo-ray")
    manifest, problems = verify_run(ray_run)
    assert not problems.has_errors, problems.to_json()
    assert manifest.backend == "ray" and manifest.metrics["steps"] == 4
    assert losses(ray_run)[0] == pytest.approx(0.6931, abs=1e-3)  # DPO at the reference
    assert losses(ray_run) == pytest.approx(losses(local_run), rel=2e-3)
    records = [json.loads(line) for line in (ray_run / "metrics.jsonl").read_text().splitlines()]
    local_records = [json.loads(line) for line in (local_run / "metrics.jsonl").read_text().splitlines()]
    for key in ("reward_margin", "reward_accuracy", "eval_reward_accuracy"):
        assert records[-1][key] == pytest.approx(local_records[-1][key], rel=1e-2, abs=1e-3), key
    assert {"base", "tuned"} <= set(manifest.evaluation)
    assert manifest.evaluation["tuned"]["pairs"] == 4 and "preference_accuracy" in manifest.evaluation["base"]
