"""Generation metrics on the validation set: did tuning beat prompting?

The same prompts (each validation conversation up to its last model turn) go to the base
model before tuning and to the tuned model after; greedy decoding, `max_new_tokens` from
the spec. Metrics (`evaluation.metrics` in the spec):

    exact_match       output == reference, after trimming whitespace
    json_valid        output parses as JSON
    json_field_match  mean fraction of the reference's top-level JSON fields the output
                      reproduces exactly (0 for an output that is not a JSON object)

Scoring (`score`) is plain Python; only `generate` imports torch.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from tunespec_local.encode import ChatTokenizer, Prompt


def exact_match(output: str, reference: str) -> float:
    return float(output.strip() == reference.strip())


def json_valid(output: str, reference: str) -> float:
    return float(_parse(output) is not _INVALID)


def json_field_match(output: str, reference: str) -> float:
    expected = _parse(reference)
    got = _parse(output)
    if not isinstance(expected, dict):  # a non-object reference: all or nothing
        return float(expected is not _INVALID and got == expected)
    if not expected:
        return float(got == {})
    if not isinstance(got, dict):
        return 0.0
    return sum(1 for key, value in expected.items() if key in got and got[key] == value) / len(expected)


METRICS = {"exact_match": exact_match, "json_valid": json_valid, "json_field_match": json_field_match}

_INVALID = object()


def _parse(text: str) -> Any:
    try:
        return json.loads(text.strip())
    except ValueError:
        return _INVALID


def score(outputs: Sequence[str], references: Sequence[str], metrics: Sequence[str]) -> dict[str, float]:
    n = max(len(references), 1)
    return {name: round(sum(METRICS[name](o, r) for o, r in zip(outputs, references)) / n, 4) for name in metrics}


def generate(model: Any, tokenizer: ChatTokenizer, prompts: Sequence[Prompt], max_new_tokens: int, batch_size: int, device: Any, on_batch: Any = None) -> list[str]:
    """Greedy completions of `prompts`, in order. Prompts are left-padded into batches
    (sorted by length, so a batch wastes little on padding)."""
    import torch

    model.eval()
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    outputs: list[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].input_ids))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(prompts[i].input_ids) for i in chunk)
            ids = [[pad] * (width - len(prompts[i].input_ids)) + prompts[i].input_ids for i in chunk]
            mask = [[0] * (width - len(prompts[i].input_ids)) + [1] * len(prompts[i].input_ids) for i in chunk]
            generated = model.generate(
                input_ids=torch.tensor(ids, device=device),
                attention_mask=torch.tensor(mask, device=device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
                use_cache=True,
            )
            for row, i in enumerate(chunk):
                outputs[i] = tokenizer.decode(generated[row, width:].tolist())
            if on_batch is not None:
                on_batch(len(chunk))
    return outputs
