"""A tiny random-initialised causal LM with a real tokenizer and chat template, in seconds.

Tests (tunespec's own, the Ray backend's, a plugin author's) need a model that loads,
trains and generates exactly like a real one, without a model hub and without minutes of
CPU time. `make_tiny_model(folder)` writes a complete Hugging Face model folder:

    config.json, model.safetensors        a Llama-architecture model (hidden 64, 2 layers)
    tokenizer.json, tokenizer_config.json a byte-level BPE tokenizer trained on the fly
    chat_template.jinja                   a ChatML chat template (<|im_start|>role ... <|im_end|>)

The weights are random (seeded, so two calls with the same arguments give the same
model), so the model's outputs mean nothing until it is trained; that is what tests want.
Pass `corpus` (e.g. the texts of your training data) so the tokenizer learns merges for
them and sequences stay short.

Heavy libraries (torch, transformers) are imported inside the function, so importing this
module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML, as used by SmolLM2 and Qwen: the same shape a real small instruct model has."""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_BASE_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, how can I help you today? Please describe the problem.",
    '{"category": "billing", "priority": "high"} {"answer": 42, "ok": true}',
    "system user assistant model: translate, summarise, classify, answer.",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`",
]


def train_tiny_tokenizer(corpus: Iterable[str] = (), vocab_size: int = 512):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `corpus` plus a small built-in text.

    Byte-level means every string encodes and decodes losslessly, whatever the corpus.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([*_BASE_CORPUS, *corpus], trainer=trainer)
    return tokenizer


def make_tiny_model(
    folder: str | Path,
    *,
    corpus: Iterable[str] = (),
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 2048,
    seed: int = 0,
) -> Path:
    """Write a tiny Llama-architecture causal LM with tokenizer and chat template to `folder`.

    Returns the folder. Loads with ``AutoModelForCausalLM.from_pretrained(folder)`` and
    ``AutoTokenizer.from_pretrained(folder)``; usable as a spec's ``model.base``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tiny_tokenizer(corpus, vocab_size),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Seed only this construction, and give the global RNG back untouched to the caller.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    return folder
