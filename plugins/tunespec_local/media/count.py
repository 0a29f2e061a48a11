"""Token counts of multimodal examples for `validate` and `plan`, without torch.

Training counts with the model's processor (encode.py), which imports torch; `validate`
and `plan` must not. So the count here is built from the same parts without it:

    text     the chat template rendered exactly as training renders it, one placeholder
             token per media item, tokenised by the model's own tokenizer (exact)
    images   what the processor puts in each placeholder's place, from its saved settings
             (processor_config.json, and preprocessor_config.json beside it in folders saved
             before transformers 5), by the processor's own arithmetic (exact):
                 LLaVA        a fixed count: (crop / patch)^2, plus its extra tokens
                 Gemma 3      a fixed run: `image_seq_length` image tokens between
                              boi/eoi, with the blank lines the processor adds (tokenised)
                 Qwen2-VL,    from the image's size: `smart_resize` to whole merged patches
                 Qwen2.5-VL   within min/max pixels, one token per merged patch
                 Idefics3,    from the image's size: resized, then split into tiles; the
                 SmolVLM      tiles' and the global view's image tokens with the row/col and
                              fake-image text tokens between them (tokenised)
             The size comes from the image file's header (PIL reads no pixels). Other
             processors, and images PIL cannot open: estimated (Gemini's per-item figures),
             and the report says the counts are estimates.
    audio    from each WAV clip's length (its header), resampled as training resamples it (exact):
                 Qwen2-Audio  log-mel frames of `hop_length` samples, over the encoder's two
                              stride-2 steps
                 OmniASR      the raw waveform through its subsampling convolutions
                              (`conv_kernel` / `conv_stride`)
             Other audio formats (their length is not in a header read cheaply) and other
             processors: estimated
    PDFs     read as text (`data.documents.pages_as: text`): the pages' text, extracted as
             training extracts it (exact); as images: pages counted, each an image

Each media part is read only where its content changes the count (a PDF's pages, an
image's size for the processors that resize by it, a WAV clip's length).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from tunespec import DiagnosticError
from tunespec.data.tokens import TOKENS_PER_MEDIA, estimate_tokens
from tunespec_local.encode import load_tokenizer, tokenizer_identity
from tunespec_local.media.load import PDF, Media, MediaReader


def processor_settings(folder: str | Path) -> dict[str, Any]:
    """The processor's saved settings, as transformers finds them: processor_config.json,
    whose `image_processor` / `feature_extractor` entries transformers 5 nests in it; in a
    folder saved before (most on the Hub) those are preprocessor_config.json beside it, which
    may also be where `processor_class` is (else tokenizer_config.json). {} without any."""
    folder = Path(folder)
    settings = _read_json(folder / "processor_config.json")
    legacy = _read_json(folder / "preprocessor_config.json")
    if legacy:
        settings.setdefault("feature_extractor" if "feature_extractor_type" in legacy else "image_processor", legacy)
    if not settings.get("processor_class"):
        settings["processor_class"] = legacy.get("processor_class") or _read_json(folder / "tokenizer_config.json").get("processor_class")
    return settings if any(settings.values()) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


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


def qwen2_vl_image_tokens(height: int, width: int, images: dict[str, Any]) -> int:
    """Image tokens (`<|image_pad|>`) the Qwen2-VL / Qwen2.5-VL processor puts in an image's
    placeholder, from its image processor's settings (`images`). Follows transformers'
    Qwen2VLImageProcessor: `resize` (smart_resize to a multiple of patch_size * merge_size,
    within size's shortest_edge/longest_edge pixels, which `min_pixels`/`max_pixels` replace as
    in its __init__), `patchify` (the grid), and Qwen2VLProcessor.replace_image_token
    (grid / merge_size^2). The vision start/end tokens around it are the chat template's."""
    size = images.get("size") or {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}
    min_pixels = images["min_pixels"] if images.get("min_pixels") is not None else size["shortest_edge"]
    max_pixels = images["max_pixels"] if images.get("max_pixels") is not None else size["longest_edge"]
    patch, merge = int(images.get("patch_size") or 14), int(images.get("merge_size") or 2)
    if images.get("do_resize", True):
        height, width = _smart_resize(height, width, patch * merge, min_pixels, max_pixels)
    return (height // patch) * (width // patch) // merge**2


def _smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize, line for line."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def idefics3_image_text(height: int, width: int, images: dict[str, Any], image_seq_len: int, tokens: dict[str, str]) -> str:
    """The text the Idefics3 (SmolVLM) processor puts in an image's placeholder: each tile's
    run of `image_seq_len` image tokens after `<fake_token_around_image><row_r_col_c>`, a
    newline after each row, then the global view's. Follows the image processor's
    `_preprocess` as it runs (transformers' Idefics3ImageProcessor: `resize` to size's
    longest_edge, `resize_for_vision_encoder` to whole tiles, `split_images`), not its
    `get_number_of_image_patches` shortcut, and Idefics3Processor.replace_image_token."""
    tile = int((images.get("max_image_size") or {"longest_edge": 364})["longest_edge"])
    if images.get("do_resize", True):
        size = images.get("size") or {"longest_edge": 4 * 364}
        if size.get("longest_edge"):
            height, width = _idefics3_resize(height, width, int(size["longest_edge"]))
        else:
            height, width = int(size["height"]), int(size["width"])
    rows = cols = 0
    if images.get("do_image_splitting", True):
        aspect_ratio = width / height  # resize_for_vision_encoder
        if width >= height:
            width = math.ceil(width / tile) * tile
            height = int(width / aspect_ratio)
            height = math.ceil(height / tile) * tile
        else:
            height = math.ceil(height / tile) * tile
            width = int(height * aspect_ratio)
            width = math.ceil(width / tile) * tile
        if height > tile or width > tile:  # split_images
            rows, cols = (height - tile) // tile + 1, (width - tile) // tile + 1
    fake, image, global_image = tokens["fake_image_token"], tokens["image_token"], tokens["global_image_token"]
    text = ""
    for row in range(rows):
        text += "".join(f"{fake}<row_{row + 1}_col_{col + 1}>" + image * image_seq_len for col in range(cols)) + "\n"
    return text + ("\n" if rows else "") + f"{fake}{global_image}" + image * image_seq_len + fake


def _idefics3_resize(height: int, width: int, longest_edge: int) -> tuple[int, int]:
    """transformers' Idefics3 get_resize_output_image_size: the longest edge to
    `longest_edge` (the other even, at least 1), then within MAX_IMAGE_SIZE (4096)."""
    aspect_ratio = width / height  # _resize_output_size_rescale_to_max_len
    if width >= height:
        width = longest_edge
        height = int(width / aspect_ratio)
        if height % 2 != 0:
            height += 1
    else:
        height = longest_edge
        width = int(height * aspect_ratio)
        if width % 2 != 0:
            width += 1
    height, width = max(height, 1), max(width, 1)
    aspect_ratio = width / height  # _resize_output_size_scale_below_upper_bound
    if width >= height and width > 4096:
        width = 4096
        height = int(width / aspect_ratio)
    elif height > width and height > 4096:
        height = 4096
        width = int(height * aspect_ratio)
    return max(height, 1), max(width, 1)


def gemma3_image_text(image_seq_length: int, tokens: dict[str, str]) -> str:
    """The text the Gemma 3 processor puts in an image's placeholder (`<start_of_image>`):
    its `full_image_sequence`, `image_seq_length` image tokens between boi and eoi, with a
    blank line either side (Gemma3Processor.__init__ and replace_image_token). Pan-and-scan
    crops would add more, but the processor turns pan-and-scan off (its images_kwargs
    defaults outrank the image processor's settings) unless a call asks for it, and
    training's does not."""
    return f"\n\n{tokens['boi_token']}" + tokens["image_token"] * image_seq_length + f"{tokens['eoi_token']}\n\n"


@dataclass(frozen=True)
class ImageRule:
    """How one processor family turns an image into tokens: `expansion(height, width)` is
    the number of tokens in its placeholder's place, or the text the processor puts there
    (tokenised by the counter); `sized`: whether that depends on the image's size."""

    family: str
    expansion: Callable[[int, int], int | str]
    sized: bool


def image_rule(settings: dict[str, Any], tokenizer_config: dict[str, Any]) -> ImageRule | None:
    """The exact image cost of the processor whose saved settings these are, else None."""
    kind = settings.get("processor_class")
    images = settings.get("image_processor") or {}

    def token(name: str, default: str) -> str:  # a tokenizer attribute the processor reads (getattr(tokenizer, name, default))
        extra = tokenizer_config.get("extra_special_tokens")
        value = tokenizer_config.get(name) or (extra.get(name) if isinstance(extra, dict) else None) or default
        return value.get("content", default) if isinstance(value, dict) else value

    if kind == "LlavaProcessor" and (fixed := fixed_image_tokens(settings)) is not None:
        return ImageRule("llava", lambda height, width: fixed, sized=False)
    if kind in ("Qwen2VLProcessor", "Qwen2_5_VLProcessor"):
        return ImageRule("qwen2_vl", partial(qwen2_vl_image_tokens, images=images), sized=True)
    if kind in ("Idefics3Processor", "SmolVLMProcessor"):
        # Idefics3Processor names its tokens itself; SmolVLMProcessor asks the tokenizer first.
        smol = kind == "SmolVLMProcessor"
        tokens = {name: token(name, default) if smol else default for name, default in
                  (("fake_image_token", "<fake_token_around_image>"), ("image_token", "<image>"), ("global_image_token", "<global-img>"))}
        return ImageRule("idefics3", partial(idefics3_image_text, images=images, image_seq_len=int(settings.get("image_seq_len") or 169),
                                             tokens=tokens), sized=True)
    if kind == "Gemma3Processor":
        tokens = {name: token(name, default) for name, default in
                  (("boi_token", "<start_of_image>"), ("eoi_token", "<end_of_image>"), ("image_token", "<image_soft_token>"))}
        text = gemma3_image_text(int(settings.get("image_seq_length") or 256), tokens)
        return ImageRule("gemma3", lambda height, width: text, sized=False)
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """An image's (height, width) from its file's header (PIL opens lazily: no pixel is
    decoded), None where PIL cannot open it."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # untrusted bytes: PIL raises UnidentifiedImageError, OSError, ValueError, DecompressionBombError...
        return None
    return (height, width) if height > 0 and width > 0 else None


@dataclass(frozen=True)
class AudioRule:
    """How many tokens a clip costs, for the processors whose cost follows from its length
    alone (samples after resampling to `rate`, as `encode.decode_audio` resamples)."""

    family: str
    rate: int
    hop: int = 0  # Qwen2-Audio: samples per log-mel frame...
    most: int = 0  # ...and the longest clip its feature extractor reads
    kernels: tuple[int, ...] = ()  # OmniASR: the convolutions that subsample the raw waveform
    strides: tuple[int, ...] = ()

    def tokens(self, samples: int) -> int:
        if self.family == "qwen2_audio":
            frames = -(-min(samples, self.most) // self.hop)  # the feature extractor's attention mask
            return (((frames - 1) // 2 + 1) - 2) // 2 + 1  # the encoder's stride-2 convolution, then pooling
        # OmniASR: transformers' OmniASRProcessor._get_num_audio_tokens (each convolution, no padding)
        for kernel, stride in zip(self.kernels, self.strides):
            samples = (samples - kernel) // stride + 1
        return samples


def audio_frames_rule(config: dict[str, Any]) -> AudioRule | None:
    """The audio rule of a Qwen2-Audio or OmniASR processor, from its saved settings; None
    for other processors (their clips are estimated)."""
    features = config.get("feature_extractor") or {}
    rate = int(features.get("sampling_rate") or 16000)
    if config.get("processor_class") == "Qwen2AudioProcessor" and features.get("hop_length"):
        most = int(features.get("n_samples") or rate * int(features.get("chunk_length", 30)))
        return AudioRule("qwen2_audio", rate, hop=int(features["hop_length"]), most=most)
    if config.get("processor_class") == "OmniASRProcessor":
        # The processor's own defaults where the settings leave them out (OmniASRProcessor.__init__).
        kernels = tuple(config.get("conv_kernel") or (10, 3, 3, 3, 3, 2, 2))
        strides = tuple(config.get("conv_stride") or (5, 2, 2, 2, 2, 2, 2))
        if len(kernels) == len(strides) and all(isinstance(n, int) and n > 0 for n in kernels + strides):
            return AudioRule("omniasr", rate, kernels=kernels, strides=strides)
    return None


def wav_samples(data: bytes, rate: int) -> int | None:
    """How many samples a WAV clip has once resampled to `rate` (as `encode.decode_audio`
    resamples it), from its header (stdlib `wave`); None for anything else."""
    import io
    import wave

    from tunespec_local.media.encode import resampled_length

    try:
        with wave.open(io.BytesIO(data)) as clip:
            frames, source_rate = clip.getnframes(), clip.getframerate()
    except Exception:  # untrusted bytes: `wave` raises wave.Error, EOFError, RuntimeError... on broken files
        return None
    if frames <= 0 or source_rate <= 0:
        return None
    return resampled_length(frames, source_rate, rate)


class _PlaceholderReader(MediaReader):
    """A MediaReader that reads only what changes a count: a PDF's pages (their text, or
    how many) and, where `read_audio` / `read_images`, an audio clip's bytes (for its
    length) / an image's (for its size)."""

    read_audio = False
    read_images = False

    def content(self, part: Any, conversation: Any) -> list[Any]:
        from tunespec.data.rules import media_kind

        kind = media_kind(part.mime_type or "")
        if part.mime_type in (PDF, "text/plain") or (kind == "audio" and self.read_audio) or (kind == "image" and self.read_images):
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
        self.settings = {} if text_only else processor_settings(folder)
        self.tokenizer_config = {} if text_only else _read_json(self.folder / "tokenizer_config.json")
        self.image_rule = image_rule(self.settings, self.tokenizer_config)
        self.audio_rule = audio_frames_rule(self.settings)
        self._exact = text_only or (modality in ("image", "document") and self.image_rule is not None) or (
            modality == "audio" and self.audio_rule is not None)
        self._estimated_any = False
        self._text_tokens: dict[str, int] = {}
        what = "PDF text" if text_only else ("media at the processor's own cost" if self._exact else "media estimated")
        self.name = f"{name} ({what})"

    @property
    def exact(self) -> bool:
        """Exact for this processor, until an item had to be estimated (e.g. an MP3 clip, an
        image PIL cannot open)."""
        return self._exact and not self._estimated_any

    @property
    def cache_key(self) -> str:
        """Names every count: the tokenizer files' versions, the template, how documents are
        read, and all the processor settings and tokenizer attributes the rules read."""
        import hashlib

        identity = repr((tokenizer_identity(self.folder)[1], self.chat_template, self.text_only,
                         json.dumps(self.settings, sort_keys=True, default=str), json.dumps(self.tokenizer_config, sort_keys=True, default=str),
                         self.image_rule.family if self.image_rule else None, self.audio_rule,
                         self.documents.model_dump(mode="json") if self.documents is not None else None)).encode()
        return "media-tokenizer:" + hashlib.sha256(identity).hexdigest()[:32]

    def count(self, conversations: list[Any]) -> list[int]:
        from tunespec_local.media.encode import MediaChatEncoder

        chat = load_tokenizer(self.folder, self.chat_template)
        reader = _PlaceholderReader(self.spec_dir, self.documents)
        reader.read_audio = self.audio_rule is not None
        reader.read_images = self.image_rule is not None and self.image_rule.sized
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
                tokens += self.cost(item, chat) - 1
            counts.append(tokens)
        return counts

    def cost(self, item: Media, chat: Any) -> int:
        """The tokens training puts in one item's placeholder's place."""
        if item.kind == "image" and (rule := self.image_rule) is not None:
            size = image_size(item.data) if rule.sized else (0, 0)
            try:
                expansion = rule.expansion(*size) if size is not None else None
            except (ArithmeticError, LookupError, TypeError, ValueError):  # settings the processor would refuse too
                expansion = None
            if isinstance(expansion, str):  # text the processor tokenises: as many tokens as the tokenizer makes of it
                if expansion not in self._text_tokens:
                    self._text_tokens[expansion] = len(chat.tokenizer.encode(expansion, add_special_tokens=False).ids)
                return self._text_tokens[expansion]
            if expansion is not None:
                return expansion
        if item.kind == "audio" and self.audio_rule is not None and (samples := wav_samples(item.data, self.audio_rule.rate)) is not None:
            return self.audio_rule.tokens(samples)
        self._estimated_any = True
        return TOKENS_PER_MEDIA.get(item.kind, TOKENS_PER_MEDIA[None])
