"""Packing: several examples in one row must behave exactly like each example alone."""

from __future__ import annotations

import pytest

from tunespec.data import Conversation, Part, Turn

from tunespec_local.encode import IGNORE_INDEX, ChatTokenizer
from tunespec_local.training.batching import collate, step_examples
from tunespec_local.training.loop import forward_logits, token_loss_sum


def examples(tokenizer: ChatTokenizer):
    texts = [("Refund please", '{"category": "billing"}'), ("App crashes on start, production down!", '{"category": "bug"}'),
             ("Dark mode?", '{"category": "feature_request"}')]
    return [tokenizer.encode(Conversation(turns=[Turn("user", [Part.of_text(u)]), Turn("model", [Part.of_text(m)])]), 512) for u, m in texts]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_each_example_alone(tiny_model, attn):
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = ChatTokenizer.from_folder(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attn).eval()
    encoded = examples(tokenizer)
    packed = collate(encoded, packing=True, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        packed_logits = forward_logits(model, packed)[0]  # the call training makes
        offset = 0
        for e in encoded:
            alone = model(input_ids=torch.tensor([e.input_ids])).logits[0]
            torch.testing.assert_close(packed_logits[offset : offset + len(e)], alone, rtol=1e-4, atol=1e-4)
            offset += len(e)


def test_packed_labels_never_cross_examples(tiny_model):
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    encoded = examples(tokenizer)
    packed = collate(encoded, packing=True, pad_token_id=0)
    labels, positions = packed["labels"][0].tolist(), packed["position_ids"][0].tolist()
    starts = [i for i, p in enumerate(positions) if p == 0]
    assert starts == [0, len(encoded[0]), len(encoded[0]) + len(encoded[1])]
    assert all(labels[s] == IGNORE_INDEX for s in starts)  # no token is trained to predict the next example
    assert sum(label != IGNORE_INDEX for label in labels) == sum(e.trained_tokens for e in encoded)


def test_padding_collation_masks_padding(tiny_model):
    tokenizer = ChatTokenizer.from_folder(tiny_model)
    encoded = examples(tokenizer)
    padded = collate(encoded, packing=False, pad_token_id=tokenizer.pad_token_id)
    assert padded["input_ids"].shape == (3, max(len(e) for e in encoded))
    for row, e in enumerate(encoded):
        assert padded["attention_mask"][row].sum() == len(e)
        assert (padded["labels"][row, len(e):] == IGNORE_INDEX).all()


def test_data_order_depends_only_on_seed_and_step():
    run = [step_examples(10, 4, seed=3, step=s) for s in range(6)]
    assert run == [step_examples(10, 4, seed=3, step=s) for s in range(6)]
    assert sorted(i for batch in run[:3] for i in batch) == list(range(10))  # epoch 0 covers every example once
    assert run[:3] != run[3:]  # epoch 1 is shuffled differently
    assert run != [step_examples(10, 4, seed=4, step=s) for s in range(6)]


def test_packed_loss_equals_sum_of_losses_alone(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = ChatTokenizer.from_folder(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    encoded = examples(tokenizer)
    with torch.no_grad():
        packed, n = token_loss_sum(model, collate(encoded, True, 0), keeps_logits=True)
        alone = [token_loss_sum(model, collate([e], True, 0), keeps_logits=False) for e in encoded]
    assert n == sum(k for _, k in alone) == sum(e.trained_tokens for e in encoded)
    torch.testing.assert_close(packed, sum(loss for loss, _ in alone), rtol=1e-5, atol=1e-4)
