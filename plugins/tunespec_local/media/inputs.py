"""The processor's tensors for the media of a batch.

The token ids of a multimodal example were expanded when it was encoded (encode.py): each
image already stands as its run of image tokens. What the model still needs is the media
themselves as its encoder reads them: pixel values (with Idefics3's pixel mask, Qwen2-VL's
patch grid...) or audio features (log-mel features or the raw waveform, with their mask,
`feature_attention_mask`, `padding_mask`...). Each family names and shapes these
differently, so the processor is asked for them the way it knows: called on the batch's
media with a text of bare placeholders, keeping every output but the text's own. Decoding
happens here, per batch (in the DataLoader's workers when there are some), so memory holds
one batch of decoded media, never the split's.

One input is the batch's token ids' own, not the media's: Qwen2-VL's and Qwen2.5-VL's
`mm_token_type_ids` (which tokens are image tokens). The model builds its 3-D rotary
positions (mrope: an image's tokens placed on its patch grid, the text after it shifted by
the grid's size, not by its token count) from them with `image_grid_thw`; without them it
falls back to 1-D positions without a warning (every image's tokens in a line, where the
pretrained model expects a grid). Gemma 3's processor returns the same marks as
`token_type_ids` (Gemma 3n's and ShieldGemma 2's too): the model lets an image's tokens
attend to each other both ways (a block in its causal mask, as it was pretrained), and
without them every image token sees only those before it, again without a warning. So when
the processor returns them, they are made from the ids of the batch as collated (padding
included), the way the processor makes them, under the processor's name for them.
"""

from __future__ import annotations

from typing import Any, Sequence

from tunespec_local.media.encode import load_processor, media_arguments
from tunespec_local.media.load import Media

TEXT_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
KINDS = {"i": "image", "a": "audio"}


def example_media(example: Any) -> list[Media]:
    return [Media(KINDS[k], data) for data, k in zip(example.media, example.media_kinds)]


class MediaInputs:
    """Callable: a list of examples (`Encoded` or `Prompt`) and the batch's token ids as the
    model gets them (one row per example, padded) -> the model's media inputs (an empty dict
    when none of them has media). Pickles as its model folder."""

    def __init__(self, model_path: str):
        self.model_path = model_path

    def __call__(self, examples: Sequence[Any], input_ids: Any = None) -> dict[str, Any]:
        media = [example_media(e) for e in examples]
        if not any(media):
            return {}
        processor = load_processor(self.model_path)
        outputs: dict[str, Any] = {}
        type_ids = type_ids_name(processor)
        if input_ids is not None and type_ids is not None:
            import torch

            outputs[type_ids] = torch.tensor(processor.create_mm_token_type_ids(input_ids), dtype=torch.long)
        images = [[m for m in items if m.kind == "image"] for items in media]
        if any(images):  # one text per example: image processors group (and pad) images by example
            outputs.update(_media_outputs(processor, ["".join(processor.image_token for _ in items) for items in images], images))
        clips = [m for items in media for m in items if m.kind == "audio"]
        if clips:  # one text per clip: audio features are one row per clip, and some processors
            # (OmniASR, AudioFlamingo3) take exactly one clip per text
            outputs.update(_media_outputs(processor, [processor.audio_token] * len(clips), [[clip] for clip in clips]))
        return outputs


def type_ids_name(processor: Any) -> str | None:
    """The name the processor gives the marks of its media tokens among its outputs (made by
    its `create_mm_token_type_ids`), or None when it gives none: `mm_token_type_ids`
    (Qwen2-VL, Gemma 4...), or `token_type_ids` for the processors that rename them to that
    (Gemma 3), not the text segment ids some tokenizers return under the same name."""
    names = getattr(processor, "model_input_names", ())
    if "mm_token_type_ids" in names:
        return "mm_token_type_ids"
    if getattr(processor, "return_mm_token_type_ids", False) and "token_type_ids" in names:
        return "token_type_ids"
    return None


def _media_outputs(processor: Any, texts: list[str], media: list[list[Media]]) -> dict[str, Any]:
    outputs = processor(text=texts, **media_arguments(processor, media), return_tensors="pt", add_special_tokens=False, padding=True)
    return {key: value for key, value in outputs.items() if key not in TEXT_OUTPUTS}
