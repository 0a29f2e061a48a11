"""Preference pairs: every supported layout becomes a prompt with a preferred and a
non-preferred response, and bad pairs are located like any other data problem."""

from __future__ import annotations

from tunespec.data import iter_conversations, validate_data
from tunespec.data.tokens import estimate_tokens
from tunespec.diagnostics import Diagnostics

from .conftest import make_spec, openai, write_jsonl

PREFERENCE = {"objective": "preference"}
SYSTEM = "Triage the ticket."


def openai_pair(prompt: str, preferred: str, rejected: str) -> dict:
    return {
        "input": {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def gemini_pair(prompt: str, preferred: str, rejected: str, scores: tuple = (1, 0)) -> dict:
    return {
        "system_instruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "completions": [
            {"score": scores[0], "completion": {"role": "model", "parts": [{"text": preferred}]}},
            {"score": scores[1], "completion": {"role": "model", "parts": [{"text": rejected}]}},
        ],
    }


def _problems(d: Diagnostics) -> list[tuple[str, int | None, str | None]]:
    return [(x.code, x.location.line, x.location.path) for x in d if x.is_error]


def _pair(conv) -> tuple:
    return ([p.text for p in conv.system], [(t.role, t.parts[0].text) for t in conv.turns], conv.rejected.parts[0].text)


def test_every_pair_layout_reads_as_the_same_pair(tmp_path):
    expected = ([SYSTEM], [("user", "Refund?"), ("model", "billing")], "bug")
    layouts = {
        "openai_preference": openai_pair("Refund?", "billing", "bug"),
        "gemini_preference": gemini_pair("Refund?", "billing", "bug"),
        "prompt_chosen_rejected": {  # conversational, explicit prompt
            "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Refund?"}],
            "chosen": [{"role": "assistant", "content": "billing"}],
            "rejected": [{"role": "assistant", "content": "bug"}],
        },
    }
    implicit = {  # the prompt implicit in two whole conversations
        "chosen": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Refund?"}, {"role": "assistant", "content": "billing"}],
        "rejected": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Refund?"}, {"role": "assistant", "content": "bug"}],
    }
    for name, record in [*layouts.items(), ("prompt_chosen_rejected", implicit)]:
        write_jsonl(tmp_path / "pairs.jsonl", [record])
        [conv] = iter_conversations(make_spec(tmp_path, "pairs.jsonl", method=PREFERENCE), "train")
        assert conv.format == name
        assert _pair(conv) == expected, name
    write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "Refund?", "chosen": "billing", "rejected": "bug"}])
    [plain] = iter_conversations(make_spec(tmp_path, "plain.jsonl", method=PREFERENCE), "train")
    assert _pair(plain) == ([], expected[1], "bug")


def test_pairs_are_counted_as_two_sequences(tmp_path, diagnostics):
    """Training sees prompt + preferred and prompt + non-preferred: both count, each must fit."""
    write_jsonl(tmp_path / "train.jsonl", [openai_pair("Refund for my order please", "billing", "a much longer wrong answer " * 20)])
    spec = make_spec(tmp_path, "train.jsonl", method=PREFERENCE, max_seq_length=40)
    report = validate_data(spec, None, None, diagnostics)
    [conv] = iter_conversations(spec, "train")
    chosen, rejected = conv.pair_views()
    assert report.splits["train"].tokens_total == estimate_tokens(chosen) + estimate_tokens(rejected)
    assert report.splits["train"].over_length == 1
    [warning] = [d for d in diagnostics if d.code == "TS215"]
    assert "prompt + non-preferred response" in warning.message and warning.location.line == 1
    assert not diagnostics.has_errors


def test_bad_pairs_are_located(tmp_path, diagnostics):
    write_jsonl(
        tmp_path / "train.jsonl",
        [
            openai_pair("Refund?", "billing", "bug"),  # fine
            openai_pair("Refund?", "billing", " billing "),  # the same answer twice
            {"input": {"messages": [{"role": "user", "content": "Refund?"}]}, "preferred_output": [{"role": "assistant", "content": "billing"}]},
            openai_pair("Refund?", "billing", ""),  # an empty non-preferred response
        ],
    )
    validate_data(make_spec(tmp_path, "train.jsonl", method=PREFERENCE), None, None, diagnostics)
    assert _problems(diagnostics) == [
        ("TS231", 2, "$.non_preferred_output[0]"),
        ("TS203", 3, "$.non_preferred_output"),
        ("TS209", 4, "$.non_preferred_output[0].content"),
    ]


def test_gemini_pairs_need_one_preferred_and_one_non_preferred_completion(tmp_path, diagnostics):
    write_jsonl(tmp_path / "train.jsonl", [gemini_pair("Refund?", "billing", "bug", scores=(1, 1)),
                                           {**gemini_pair("Refund?", "billing", "bug"), "completions": []},
                                           gemini_pair("Refund?", "bug", "billing", scores=(0, 1))])  # order does not matter
    validate_data(make_spec(tmp_path, "train.jsonl", method=PREFERENCE), None, None, diagnostics)
    assert _problems(diagnostics) == [("TS203", 1, "$.completions[1].score"), ("TS203", 2, "$.completions")]


def test_implicit_prompts_must_be_the_same(tmp_path, diagnostics):
    write_jsonl(tmp_path / "train.jsonl", [{
        "chosen": [{"role": "user", "content": "Refund?"}, {"role": "assistant", "content": "billing"}],
        "rejected": [{"role": "user", "content": "Crash?"}, {"role": "assistant", "content": "bug"}],
    }, {"prompt": "Refund?", "chosen": "billing", "rejected": "bug"}])
    validate_data(make_spec(tmp_path, "train.jsonl", method=PREFERENCE), None, None, diagnostics)
    assert _problems(diagnostics) == [("TS232", 1, "$.rejected[0]")]


def test_the_objective_decides_between_pairs_and_conversations(tmp_path):
    write_jsonl(tmp_path / "pairs.jsonl", [openai_pair("Refund?", "billing", "bug")])
    write_jsonl(tmp_path / "chats.jsonl", [openai(("user", "Refund?"), ("assistant", "billing")), openai(("user", "Crash?"), ("assistant", "bug"))])
    sft = Diagnostics()
    validate_data(make_spec(tmp_path, "pairs.jsonl"), None, None, sft)
    assert _problems(sft) == [("TS233", 1, "$")]
    assert "method.objective: preference" in next(iter(sft)).hint
    preference = Diagnostics()
    validate_data(make_spec(tmp_path, "chats.jsonl", method=PREFERENCE), None, None, preference)
    assert _problems(preference) == [("TS233", 1, "$"), ("TS233", 2, "$")]
