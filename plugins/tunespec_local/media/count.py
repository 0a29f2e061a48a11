"""Token counts of multimodal examples for `validate` and `plan`, without torch.

Training counts with the model's processor (encode.py), which imports torch; `validate`
and `plan` must not. So the count here is built from the same parts without it:

    text     the chat template rendered exactly as training renders it, one placeholder
             token per media item, tokenised by the model's own tokenizer (exact)
    images   the processor's fixed cost per image, read from its saved settings, for the
             processors whose cost does not depend on the image (LLaVA's: (crop / patch)^2,
             plus its extra tokens): exact. Processors that tile or resize by image size
             (Idefics3/SmolVLM, Qwen2-VL) and audio: estimated (Gemini's per-item figures),
             and the report says the counts are estimates.
    audio    for Qwen2-Audio-style processors, from each WAV clip's length (its header: the
             processor's frames of `hop_length` samples, over its two stride-2 steps): exact;
             other audio formats and processors estimated
    PDFs     read as text (`data.documents.pages_as: text`): the pages' text, extracted as
             training extracts it (exact); as images: pages counted, each an image

Each media part is read only where its content changes the count (a PDF's pages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunespec import DiagnosticError
from tunespec.data.tokens import TOKENS_PER_MEDIA, estimate_tokens
from tunespec_local.encode import load_tokenizer, tokenizer_identity
from tunespec_local.media.load import PDF, Media, MediaReader


def processor_settings(folder: str | Path) -> dict[str, Any]:
    """The processor's saved settings (processor_config.json), or {} without one."""
    try:
        return json.loads((Path(folder) / "processor_config.json").read_text())
    except (OSError, ValueError):
        return {}


def fixed_image_tokens(config: dict[str, Any]) -> int | None:
    """Image tokens per image where the processor's settings fix them (LLaVA-style), else None."""
    if config.get("processor_class") != "LlavaProcessor":
        return None
    images = config.get("image_processor") or {}
    crop = images.get("crop_size") or {}
    patch = config.get("patch_size")
    if not patch or "height" not in crop or "width" not in crop or not images.get("do_center_crop", True):
        return None
    tokens = (crop["height"] // patch) * (crop["width"] // patch) + int(config.get("num_additional_image_tokens") or 0)
    return tokens - 1 if config.get("vision_feature_select_strategy") == "default" else tokens


def audio_frames_rule(config: dict[str, Any]) -> tuple[int, int, int] | None:
    """(sampling rate, hop length, most samples) of a Qwen2-Audio-style processor, whose
    audio tokens follow from a clip's length alone; None for other processors."""
    features = config.get("feature_extractor") or {}
    if config.get("processor_class") != "Qwen2AudioProcessor" or not features.get("hop_length"):
        return None
    rate = int(features.get("sampling_rate", 16000))
    return rate, int(features["hop_length"]), int(features.get("n_samples") or rate * int(features.get("chunk_length", 30)))


def wav_seconds(data: bytes) -> float | None:
    """A WAV clip's duration from its header (stdlib `wave`), None for anything else."""
    import io
    import wave

    try:
        with wave.open(io.BytesIO(data)) as clip:
            return clip.getnframes() / clip.getframerate()
    except Exception:  # untrusted bytes: `wave` raises wave.Error, EOFError, RuntimeError... on broken files
        return None


class _PlaceholderReader(MediaReader):
    """A MediaReader that reads only what changes a count: a PDF's pages (their text, or
    how many) and, where `read_audio`, an audio clip's bytes (for its length); never an
    image's."""

    read_audio = False

    def content(self, part: Any, conversation: Any) -> list[Any]:
        from tunespec.data.rules import media_kind

        kind = media_kind(part.mime_type or "")
        if part.mime_type in (PDF, "text/plain") or (kind == "audio" and self.read_audio):
            return super().content(part, conversation)
        return [Media(kind or "image", b"")]


class MediaTokenCounter:
    """`tunespec.data.TokenCounter` for image, audio and document data (see the module docstring)."""

    def __init__(self, folder: str | Path, chat_template: str | None, name: str, spec_dir: Path, documents: Any, modality: str, text_only: bool):
        self.folder = Path(folder)
        self.chat_template = chat_template
        self.documents = documents
        self.spec_dir = spec_dir
        self.text_only = text_only
        settings = {} if text_only else processor_settings(folder)
        self.image_tokens = fixed_image_tokens(settings)
        self.audio_rule = audio_frames_rule(settings)
        self._exact = text_only or (modality in ("image", "document") and self.image_tokens is not None) or (
            modality == "audio" and self.audio_rule is not None)
        self._estimated_any = False
        what = "PDF text" if text_only else ("media at the processor's own cost" if self._exact else "media estimated")
        self.name = f"{name} ({what})"

    @property
    def exact(self) -> bool:
        """Exact for this processor, until an item had to be estimated (e.g. an MP3 clip)."""
        return self._exact and not self._estimated_any

    @property
    def cache_key(self) -> str:
        import hashlib

        identity = repr((tokenizer_identity(self.folder)[1], self.chat_template, self.image_tokens, self.text_only,
                         self.documents.model_dump(mode="json") if self.documents is not None else None)).encode()
        return "media-tokenizer:" + hashlib.sha256(identity).hexdigest()[:32]

    def count(self, conversations: list[Any]) -> list[int]:
        from tunespec_local.media.encode import MediaChatEncoder

        chat = load_tokenizer(self.folder, self.chat_template)
        reader = _PlaceholderReader(self.spec_dir, self.documents)
        reader.read_audio = self.audio_rule is not None
        encoder = MediaChatEncoder(chat, self.folder, reader, text_only=self.text_only)
        counts = []
        for conversation in conversations:
            try:
                messages, media = encoder.messages(conversation)
                text = chat.render(messages)
            except (DiagnosticError, ValueError, TypeError, LookupError):
                # A missing file or an unreadable PDF (the data checks report it at its line), or
                # a chat template that cannot place media (validate reports a text-only model):
                # counting is not where these are explained.
                self._estimated_any = True
                counts.append(estimate_tokens(conversation))
                continue
            tokens = len(chat.tokenizer.encode(text, add_special_tokens=False).ids)
            for item in media:  # the placeholder token (counted above) stands for the item's tokens
                tokens += self.cost(item) - 1
            counts.append(tokens)
        return counts

    def cost(self, item: Media) -> int:
        if item.kind == "image" and self.image_tokens is not None:
            return self.image_tokens
        if item.kind == "audio" and self.audio_rule is not None and (seconds := wav_seconds(item.data)) is not None:
            rate, hop, most = self.audio_rule
            frames = -(-min(round(seconds * rate), most) // hop)  # the feature extractor's attention mask
            return (((frames - 1) // 2 + 1) - 2) // 2 + 1  # Qwen2-Audio: the encoder's stride-2 convolution, then pooling
        self._estimated_any = True
        return TOKENS_PER_MEDIA.get(item.kind, TOKENS_PER_MEDIA[None])
