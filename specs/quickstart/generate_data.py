"""Generate the quickstart data set: support tickets -> a strict JSON label.

Each example is a customer support ticket (the user turn) and the label a triage system
needs (the model turn), as one line of strict JSON::

    {"category": "billing", "priority": "high"}

The category follows from what the ticket is about, the priority from how urgent and how
costly the problem is. The tickets are built from templates with random fillers, so the
set is varied but the labels are unambiguous. A fixed seed makes the output identical on
every run: the committed train.jsonl and validation.jsonl are exactly what this writes.

    python specs/quickstart/generate_data.py          # rewrites the two files beside it
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20260124
TRAIN_SIZE = 320
VALIDATION_SIZE = 48

SYSTEM = (
    'Triage the support ticket. Reply only with JSON {"category": C, "priority": P}, '
    "C in billing|bug|account|shipping|feature_request, P in low|medium|high|urgent."
)

PRODUCTS = ["the mobile app", "the dashboard", "the API", "the desktop client", "the checkout page", "the reports page"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kemi", "Luca", "Maya", "Noor"]
PLANS = ["Starter", "Team", "Business", "Enterprise"]

# What the ticket is about decides the category.
ISSUES = {
    "billing": [
        "I was charged twice for my {plan} subscription this month.",
        "My invoice #{num} shows the wrong amount.",
        "The refund you promised for order {num} never arrived on my card.",
        "Why did my {plan} plan renew at a higher price than last year?",
        "Please send me a corrected invoice with our VAT number.",
        "My card was declined but the money still left my account.",
    ],
    "bug": [
        "{product} crashes every time I open the settings screen.",
        "When I export a CSV from {product}, half the rows are missing.",
        "{product} shows a blank page after the latest update.",
        "Search in {product} returns results from other projects.",
        "The save button in {product} does nothing when I click it.",
        "{product} logs me out every few minutes.",
    ],
    "account": [
        "I can't reset my password, the reset email never comes.",
        "Please change the email address on my account to {name}@example.com.",
        "How do I add {name} as an admin on our team account?",
        "My account is locked after too many login attempts.",
        "I want to delete my account and all of my data.",
        "Two-factor codes are rejected when I try to sign in.",
    ],
    "shipping": [
        "Order {num} says delivered but nothing arrived.",
        "My package for order {num} has been stuck in customs for a week.",
        "The box for order {num} arrived damaged.",
        "Can I change the delivery address for order {num}?",
        "I received the wrong item in order {num}.",
        "Tracking for order {num} has not updated in five days.",
    ],
    "feature_request": [
        "It would be great if {product} had a dark mode.",
        "Could you add an export to PDF in {product}?",
        "Please let us schedule reports to be emailed weekly.",
        "We would love keyboard shortcuts in {product}.",
        "Can you support single sign-on with our identity provider?",
        "A bulk edit option in {product} would save us hours.",
    ],
}

# How urgent and costly it is decides the priority.
URGENCY = {
    "low": [
        "No rush, whenever you have time.",
        "Just a suggestion, not urgent at all.",
        "This is minor, it can wait.",
        "Low priority for us, thanks!",
    ],
    "medium": [
        "Could you look into it this week?",
        "It is annoying but we have a workaround.",
        "Please get back to me when you can.",
        "It would be good to sort this out soon.",
    ],
    "high": [
        "This is blocking my team today, please help quickly.",
        "We need this fixed before our client meeting tomorrow.",
        "Several customers have complained already.",
        "Please prioritise this, it is costing us sales.",
    ],
    "urgent": [
        "URGENT: our whole company is affected right now!",
        "This is an emergency, production is down for everyone.",
        "We are losing money every minute, fix this immediately!",
        "Critical: nobody can work until this is resolved.",
    ],
}

GREETINGS = ["Hi,", "Hello support,", "Hey team,", "Good morning,", "Dear support,", ""]
SIGN_OFFS = ["Thanks, {name}", "Regards, {name}", "- {name}", "{name}", "Cheers, {name}", ""]


def make_ticket(rng: random.Random) -> tuple[str, dict[str, str]]:
    category = rng.choice(sorted(ISSUES))
    priority = rng.choice(sorted(URGENCY))
    fill = {
        "product": rng.choice(PRODUCTS),
        "name": rng.choice(NAMES),
        "plan": rng.choice(PLANS),
        "num": str(rng.randint(10000, 99999)),
    }
    issue = rng.choice(ISSUES[category]).format(**fill)
    issue = issue[0].upper() + issue[1:]
    urgency = rng.choice(URGENCY[priority])
    # The urgency sentence comes before or after the issue, like real tickets.
    body = [issue, urgency] if rng.random() < 0.6 else [urgency, issue]
    parts = [rng.choice(GREETINGS), *body, rng.choice(SIGN_OFFS).format(**fill)]
    return " ".join(p for p in parts if p), {"category": category, "priority": priority}


def make_record(rng: random.Random) -> dict:
    ticket, label = make_ticket(rng)
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": ticket},
            {"role": "assistant", "content": json.dumps(label)},
        ]
    }


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    records: list[dict] = []
    # Distinct tickets only, so no validation example is also a training example.
    while len(records) < TRAIN_SIZE + VALIDATION_SIZE:
        record = make_record(rng)
        key = record["messages"][1]["content"]
        if key not in seen:
            seen.add(key)
            records.append(record)
    here = Path(__file__).resolve().parent
    write_jsonl(here / "train.jsonl", records[:TRAIN_SIZE])
    write_jsonl(here / "validation.jsonl", records[TRAIN_SIZE:])


if __name__ == "__main__":
    main()
