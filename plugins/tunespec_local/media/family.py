"""Which part of a multimodal model does what, found by the names transformers gives them.

Every image/audio-text model transformers ships is three parts: a media encoder (a vision
transformer, an audio encoder), a projector that maps its outputs into the language
model's embedding space, and the language model. Their attribute names differ by family
(LLaVA's `vision_tower` + `multi_modal_projector`, Idefics3's `vision_model` + `connector`,
Qwen2-VL's `visual`, Qwen2-Audio's `audio_tower`), so they are looked up here, once.

What trains (`method.media_encoder`):
    frozen (default)   LoRA: adapters on the language model's and the projector's linear
                       layers; full: everything but the encoder. The encoder, trained on far
                       more media than a tuning set, stays as it is.
    trained            the encoder and projector train in full too (with LoRA they are saved
                       with the adapter): for an encoder that is new or far from the data.
"""

from __future__ import annotations

from typing import Any

ENCODERS = ("vision_tower", "vision_model", "visual", "audio_tower", "audio_encoder", "vision_encoder")
PROJECTORS = ("multi_modal_projector", "connector", "mm_projector")


def media_modules(model: Any) -> tuple[list[str], list[str]]:
    """Qualified names of the model's media encoder(s) and projector(s), outermost only."""
    encoders: list[str] = []
    projectors: list[str] = []
    for name, _ in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        inside = any(name.startswith(prefix + ".") for prefix in encoders + projectors)
        if inside:
            continue
        if leaf in ENCODERS:
            encoders.append(name)
        elif leaf in PROJECTORS:
            projectors.append(name)
    if not encoders:
        raise ValueError(f"{type(model).__name__}: no media encoder found (looked for {', '.join(ENCODERS)})")
    return encoders, projectors


def lora_targets(model: Any, train_media_encoder: bool) -> list[str]:
    """Linear layers that get LoRA adapters: the language model's, and the projector's
    unless it trains in full; never the encoder's or the output head."""
    import torch

    encoders, projectors = media_modules(model)
    excluded = encoders + (projectors if train_media_encoder else [])
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.rsplit(".", 1)[-1] == "lm_head":
            continue
        if any(name == prefix or name.startswith(prefix + ".") for prefix in excluded):
            continue
        names.append(name)
    return names


def fully_trained(model: Any, train_media_encoder: bool) -> list[str]:
    """Modules trained in full beside LoRA (peft's `modules_to_save`): the encoder and
    projector when `media_encoder: trained`, else none."""
    if not train_media_encoder:
        return []
    encoders, projectors = media_modules(model)
    return encoders + projectors


def freeze_encoder(model: Any) -> None:
    """Full tuning with a frozen encoder: its weights take no gradient."""
    encoders, _ = media_modules(model)
    for name in encoders:
        model.get_submodule(name).requires_grad_(False)


def media_to(model: Any, media: dict[str, Any], device: Any) -> dict[str, Any]:
    """A batch's media inputs moved to `device`, floating-point ones (pixel values, audio
    features, waveforms) in the dtype of the model's media encoder. Training runs under
    autocast, which casts them on the way in; generation does not, and some families'
    encoders take their input as given (OmniASR's first convolution fails on an fp32
    waveform when the frozen base is held in bf16)."""
    encoders, _ = media_modules(model)
    weight = next((p for p in model.get_submodule(encoders[0]).parameters() if p.is_floating_point()), None)
    moved = {}
    for key, value in media.items():
        if not hasattr(value, "to"):
            moved[key] = value
        elif value.is_floating_point() and weight is not None:
            moved[key] = value.to(device, dtype=weight.dtype)
        else:
            moved[key] = value.to(device)
    return moved
