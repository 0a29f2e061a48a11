"""Generation metrics on the validation set: did tuning beat prompting?

The same prompts (each validation conversation up to its last model turn) go to the base
model before tuning and to the tuned model after; greedy decoding, `max_new_tokens` from
the spec. Metrics (`evaluation.metrics` in the spec):

    exact_match       output == reference, after trimming whitespace
    json_valid        output parses as JSON
    json_field_match  mean fraction of the reference's top-level JSON fields the output
                      reproduces exactly (0 for an output that is not a JSON object)

For preference runs, `preference_accuracy` scores the held-out pairs: the fraction whose
preferred response the model gives a higher log-likelihood than the non-preferred one (the
model's own preference, comparable between the base and the tuned model; DPO's implicit
reward accuracy, relative to the reference, is in metrics.jsonl).

Scoring (`score`) is plain Python; only `generate` and `preference_accuracy` import torch.
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


def generate(model: Any, tokenizer: ChatTokenizer, prompts: Sequence[Prompt], max_new_tokens: int, batch_size: int, device: Any, on_batch: Any = None,
             temperature: float = 0.0, media_inputs: Any = None) -> list[str]:
    """Completions of `prompts`, in order: greedy, or sampled when `temperature` > 0.
    Prompts are left-padded into batches (sorted by length, so a batch wastes little on padding).
    `media_inputs` (multimodal prompts): a batch of prompts -> their pixel values/features."""
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
            input_ids = torch.tensor(ids)
            media = {}
            if media_inputs is not None:
                from tunespec_local.media.family import media_to

                media = media_to(model, media_inputs([prompts[i] for i in chunk], input_ids), device)
            generated = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=torch.tensor(mask, device=device),
                **media,
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                **({"temperature": temperature} if temperature > 0 else {}),
                pad_token_id=pad,
                eos_token_id=eos,
                use_cache=True,
            )
            for row, i in enumerate(chunk):
                outputs[i] = tokenizer.decode(generated[row, width:].tolist())
            if on_batch is not None:
                on_batch(len(chunk))
    return outputs


def preference_accuracy(model: Any, pairs: Sequence[Any], batch_size: int, pad_token_id: int, device: Any) -> float:
    """Fraction of `pairs` (`EncodedPair`s) whose preferred response `model` finds more
    likely than the non-preferred one (summed log-probability of the response tokens)."""
    import torch

    from tunespec_local.training.loop import supports_logits_to_keep
    from tunespec_local.training.objectives import collate_pairs, sequence_logps

    model.eval()
    keeps_logits = supports_logits_to_keep(model)
    preferred = 0
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            batch = collate_pairs(pairs[start : start + batch_size], packing=False, pad_token_id=pad_token_id)
            logps, _ = sequence_logps(model, {k: v.to(device) for k, v in batch.items()}, keeps_logits)
            preferred += int((logps[0::2] > logps[1::2]).sum())
    return round(preferred / max(len(pairs), 1), 4)
