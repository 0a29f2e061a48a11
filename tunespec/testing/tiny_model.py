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


def write_tiny_gguf(model_folder: str | Path, path: str | Path) -> Path:
    """Write the model in `model_folder` (from `make_tiny_model`) as a llama GGUF file, the
    way llama.cpp's converter lays it out (F32 tensors, byte-level BPE vocabulary with its
    merges, chat template), so GGUF loading and conversion can be tested without a real
    model. Only the architecture `make_tiny_model` builds is supported.
    """
    import json

    import numpy as np
    from gguf import GGUFWriter, TokenType
    from safetensors.numpy import load_file

    folder = Path(model_folder)
    config = json.loads((folder / "config.json").read_text())
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config["hidden_size"] // heads

    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.get("rope_theta") or config.get("rope_parameters", {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])

    vocab = dict(tok["model"]["vocab"])
    special = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    vocab.update(special)
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([TokenType.CONTROL if t in special else TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab[tok_config["bos_token"]])
    writer.add_eos_token_id(vocab[tok_config["eos_token"]])
    writer.add_pad_token_id(vocab[tok_config["pad_token"]])
    writer.add_chat_template(CHAT_TEMPLATE)

    def permute(w, n_head):  # llama.cpp stores q/k rotary halves interleaved
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for name, tensor in load_file(folder / "model.safetensors").items():
        tensor = tensor.astype(np.float32)
        if name == "model.embed_tokens.weight":
            writer.add_tensor("token_embd.weight", tensor)
        elif name == "model.norm.weight":
            writer.add_tensor("output_norm.weight", tensor)
        elif name == "lm_head.weight":
            if not config.get("tie_word_embeddings"):
                writer.add_tensor("output.weight", tensor)
        else:
            if name.endswith("q_proj.weight"):
                tensor = permute(tensor, heads)
            elif name.endswith("k_proj.weight"):
                tensor = permute(tensor, kv_heads)
            key = next(v for k, v in names.items() if f".{k}." in name)
            writer.add_tensor(f"blk.{name.split('.')[2]}.{key}.weight", tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)
