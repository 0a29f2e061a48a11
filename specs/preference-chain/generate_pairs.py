"""Generate the preference pairs of this example: a ticket, its right triage, and a
plausible wrong one.

The tickets come from the quickstart's generator (../quickstart/generate_data.py), so
they read like the tickets the supervised run learned from. Each pair prefers the
correct label and rejects a mistake a triage model plausibly makes:

- the right category with the priority one step off (`high` for `urgent`, `medium` for `low`), or
- the right priority with a confusable category (billing/account, bug/feature_request,
  shipping/billing).

    pairs-train.jsonl        240 new tickets (none is a quickstart validation ticket)
    pairs-validation.jsonl   the 48 quickstart validation tickets, as held-out pairs

Pairs are written in OpenAI's preference format (`input`, `preferred_output`,
`non_preferred_output`). A fixed seed makes the output identical on every run: the
committed files are exactly what this writes.

    python specs/preference-chain/generate_pairs.py
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261126
TRAIN_PAIRS = 240
PRIORITIES = ["low", "medium", "high", "urgent"]
CONFUSED_WITH = {"billing": "account", "account": "billing", "bug": "feature_request", "feature_request": "bug", "shipping": "billing"}


def quickstart_generator():
    """The quickstart's generate_data.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("quickstart_data", HERE.parent / "quickstart" / "generate_data.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def wrong_triage(label: dict[str, str], rng: random.Random) -> dict[str, str]:
    """A plausible mistake: one field wrong, the other right."""
    wrong = dict(label)
    if rng.random() < 0.5:
        i = PRIORITIES.index(label["priority"])
        wrong["priority"] = PRIORITIES[i - 1] if i == len(PRIORITIES) - 1 or (i > 0 and rng.random() < 0.5) else PRIORITIES[i + 1]
    else:
        wrong["category"] = CONFUSED_WITH[label["category"]]
    return wrong


def pair(system: str, ticket: str, label: dict[str, str], rng: random.Random) -> dict:
    return {
        "input": {"messages": [{"role": "system", "content": system}, {"role": "user", "content": ticket}]},
        "preferred_output": [{"role": "assistant", "content": json.dumps(label)}],
        "non_preferred_output": [{"role": "assistant", "content": json.dumps(wrong_triage(label, rng))}],
    }


def main() -> None:
    qs = quickstart_generator()
    rng = random.Random(SEED)
    validation = [json.loads(line) for line in (HERE.parent / "quickstart" / "validation.jsonl").read_text().splitlines()]
    held_out = {r["messages"][1]["content"] for r in validation}
    train, seen = [], set(held_out)
    while len(train) < TRAIN_PAIRS:
        ticket, label = qs.make_ticket(rng)
        if ticket not in seen:
            seen.add(ticket)
            train.append(pair(qs.SYSTEM, ticket, label, rng))
    held = [pair(r["messages"][0]["content"], r["messages"][1]["content"], json.loads(r["messages"][2]["content"]), rng) for r in validation]
    for name, records in (("pairs-train.jsonl", train), ("pairs-validation.jsonl", held)):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


if __name__ == "__main__":
    main()
