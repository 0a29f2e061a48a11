"""The processor's tensors for the media of a batch.

The token ids of a multimodal example were expanded when it was encoded (encode.py): each
image already stands as its run of image tokens. What the model still needs is the media
themselves as its encoder reads them: pixel values (with Idefics3's pixel mask, Qwen2-VL's
patch grid...) or audio features (with their mask). Each family names and shapes these
differently, so the processor is asked for them the way it knows: called on the batch's
media with a text of bare placeholders, keeping every output but the text's own. Decoding
happens here, per batch (in the DataLoader's workers when there are some), so memory holds
one batch of decoded media, never the split's.
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
    """Callable: a list of examples (`Encoded` or `Prompt`) -> the model's media inputs
    (an empty dict when none of them has media). Pickles as its model folder."""

    def __init__(self, model_path: str):
        self.model_path = model_path

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        media = [example_media(e) for e in examples]
        if not any(media):
            return {}
        processor = load_processor(self.model_path)
        placeholders = ["".join(_placeholder(processor, m.kind) for m in items) for items in media]
        outputs = processor(text=placeholders, **media_arguments(processor, media), return_tensors="pt", add_special_tokens=False, padding=True)
        return {key: value for key, value in outputs.items() if key not in TEXT_OUTPUTS}


def _placeholder(processor: Any, kind: str) -> str:
    return getattr(processor, f"{kind}_token")
