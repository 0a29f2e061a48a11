"""The encoder: what the model is trained on, and what `plan` counts."""

from __future__ import annotations

import subprocess
import sys

from tunespec.data import Conversation, Part, Turn

from tunespec_local.encode import IGNORE_INDEX, ChatTokenizer, to_messages


def conversation(*turns: tuple[str, str], system: str | None = None) -> Conversation:
    return Conversation(
        turns=[Turn(role, [Part.of_text(text)]) for role, text in turns],  # type: ignore[arg-type]
        system=[Part.of_text(system)] if system else [],
    )


def trained_text(tokenizer: ChatTokenizer, encoded) -> list[str]:
    """The trained tokens decoded, one string per contiguous run of trained tokens."""
    runs, current = [], []
    for token, label in zip(encoded.input_ids, encoded.labels):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tokenizer.tokenizer.decode(current, skip_special_tokens=False))
            current = []
    if current:
        runs.append(tokenizer.tokenizer.decode(current, skip_special_tokens=False))
    return runs


def test_loss_mask_covers_only_model_turns(tiny_model):
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    conv = conversation(
        ("user", "My invoice is wrong."), ("model", '{"category": "billing"}'),
        ("user", "And it is urgent!"), ("model", '{"priority": "urgent"}'),
        system="Triage the ticket.",
    )
    encoded = tokenizer.encode(conv, max_seq_length=1024)
    # Exactly the two model answers (with the end-of-turn token that teaches the model to
    # stop) are trained; system, user and template scaffolding are not.
    assert trained_text(tokenizer, encoded) == ['{"category": "billing"}<|im_end|>\n', '{"priority": "urgent"}<|im_end|>\n']


def test_tokens_match_transformers_chat_template(tiny_model):
    from transformers import AutoTokenizer

    conv = conversation(("user", "Where is order 12345?"), ("model", '{"category": "shipping"}'), system="Triage.")
    ours = ChatTokenizer.from_folder(tiny_model).encode(conv, 1024).input_ids
    hf = AutoTokenizer.from_pretrained(tiny_model).apply_chat_template(to_messages(conv), tokenize=True, return_dict=True)
    assert ours == list(hf["input_ids"])


def test_truncation_keeps_the_first_max_seq_length_tokens(tiny_model):
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    conv = conversation(("user", "word " * 200), ("model", "ok"))
    full = tokenizer.encode(conv, 10_000)
    cut = tokenizer.encode(conv, 32)
    assert len(cut) == 32 and cut.truncated and not full.truncated
    assert cut.input_ids == full.input_ids[:32]
    assert cut.trained_tokens == 0  # the answer was cut off: training skips such an example


def test_prompt_ends_with_generation_prompt_and_keeps_reference(tiny_model):
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    prompt = tokenizer.prompt(conversation(("user", "hi"), ("model", '{"a": 1}')))
    assert tokenizer.tokenizer.decode(prompt.input_ids, skip_special_tokens=False).endswith("<|im_start|>assistant\n")
    assert prompt.reference == '{"a": 1}'


def test_token_counter_is_exact_and_imports_no_torch(tiny_model):
    """validate/plan count tokens with the model's tokenizer without importing torch."""
    code = f"""
import sys
from tunespec.data import Conversation, Part, Turn
from tunespec_local.encode import ChatTokenCounter
counter = ChatTokenCounter({str(tiny_model)!r}, None, "tiny")
conv = Conversation(turns=[Turn("user", [Part.of_text("hello")]), Turn("model", [Part.of_text("hi")])])
print(counter.exact, counter.count([conv])[0])
assert not {{"torch", "transformers", "peft"}} & set(sys.modules), "heavy import"
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    assert out == ["True", str(len(tokenizer.encode(conversation(("user", "hello"), ("model", "hi")), 10_000)))]
