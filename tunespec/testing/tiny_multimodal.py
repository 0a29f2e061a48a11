"""Tiny random-initialised multimodal models of real architectures, with real processors.

`make_tiny_model` (tiny_model.py) gives tests a text model in seconds; this module does the
same for image-text models, so the multimodal path is tested on the architectures users
tune, not on a stand-in. `make_tiny_vision_model(folder, architecture)` writes a complete
Hugging Face folder: config and random weights, a byte-level BPE tokenizer trained on the
fly with the architecture's media tokens, the architecture's own processor (image
processor settings scaled down to 32-pixel images) and a ChatML chat template that places
media the way the family's templates do (`{"type": "image"}` content parts).

    llava      LlavaForConditionalGeneration: CLIP vision tower + 2-layer MLP projector +
               Llama; a fixed number of image tokens per image
    idefics3   Idefics3ForConditionalGeneration (SmolVLM's architecture): SigLIP-style vision
               model + pixel-shuffle connector + Llama; images are split into tiles, each
               with its own run of image tokens, so the count depends on the image's size

Loads with `AutoModelForMultimodalLM.from_pretrained(folder)` and
`AutoProcessor.from_pretrained(folder)`; usable as a spec's `model.base`. Heavy libraries
are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tunespec.testing.tiny_model import train_tiny_tokenizer

ARCHITECTURES = ("llava", "idefics3")

MULTIMODAL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'audio' %}{{ '<|AUDIO|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML with media placeholders: each `{"type": "image"}` part becomes `<image>` (the
token LLaVA and Idefics3 processors expand), as SmolVLM's and LLaVA's own templates do."""


def make_tiny_vision_model(folder: str | Path, architecture: str = "llava", *, corpus: Iterable[str] = (), vocab_size: int = 512,
                           hidden_size: int = 64, seed: int = 0) -> Path:
    """Write a tiny image-text model of `architecture` (see the module docstring) to `folder`."""
    import torch

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build = {"llava": _llava, "idefics3": _idefics3}[architecture]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        processor, model = build(list(corpus), vocab_size, hidden_size)
    tokenizer = processor.tokenizer
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def _tokenizer(corpus: list[str], vocab_size: int, media_tokens: list[str]):
    from transformers import PreTrainedTokenizerFast

    raw = train_tiny_tokenizer(corpus, vocab_size)
    raw.add_special_tokens(media_tokens)
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None)


def _text_config(tokenizer, hidden_size: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                       pad_token_id=tokenizer.pad_token_id)


def _llava(corpus: list[str], vocab_size: int, hidden_size: int):
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _tokenizer(corpus, vocab_size, ["<image>"])
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    # 32x32 images in 8x8 patches: 16 patches + CLS, minus CLS ("default" feature selection) = 16 image tokens
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=MULTIMODAL_CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
                              projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=_text_config(tokenizer, hidden_size),
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    return processor, LlavaForConditionalGeneration(config)


def _idefics3(corpus: list[str], vocab_size: int, hidden_size: int):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    media_tokens = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    media_tokens += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tokenizer = _tokenizer(corpus, vocab_size, media_tokens)
    # Tiles of 32 pixels (the longest edge resized to at most 64: up to 2x2 tiles + the global
    # view); 32/8 = 4x4 patches, pixel-shuffled by 2 -> 4 image tokens per tile.
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4, chat_template=MULTIMODAL_CHAT_TEMPLATE)
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32,
                       "patch_size": 8},
        text_config=_text_config(tokenizer, hidden_size).to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    return processor, Idefics3ForConditionalGeneration(config)
