"""A conversation with media -> token ids, labels and the media themselves.

The model's own processor decides what a media item costs: one image becomes the number of
image tokens the model's vision encoder produces for it (a fixed count for LLaVA, a count
that grows with the image's tiles for Idefics3/SmolVLM, with its pixels for Qwen2-VL), an
audio clip as many audio tokens as its length gives. So the chat template is rendered with
one placeholder per item (`{"type": "image"}` parts, as every multimodal template
expects), the rendered text is cut at the placeholders, each text piece is tokenised and
labelled exactly as text-only data is (the model learns its own turns), and each
placeholder is replaced by the processor's expansion of it for that one item.

An example longer than `data.max_seq_length` is dropped whole, never cut: cutting through
an image's tokens would leave the model an image it cannot decode (Vertex drops such
examples too). The caller counts the dropped ones.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from tunespec_local.encode import IGNORE_INDEX, ROLE_NAMES, ChatTokenizer, Encoded, Prompt
from tunespec_local.media import PROCESSOR_FILES
from tunespec_local.media.load import Media, MediaReader

PLACEHOLDER_ATTRIBUTES = {"image": "image_token", "audio": "audio_token"}
"""The processor attribute naming each kind's placeholder token (e.g. `<image>`)."""


class MediaChatEncoder:
    """`ChatTokenizer`'s encoding (same chat template, same loss mask) for examples with media."""

    def __init__(self, chat: ChatTokenizer, folder: str | Path, reader: MediaReader, text_only: bool = False):
        self.chat = chat
        self.folder = Path(folder)
        self.reader = reader
        self.text_only = text_only
        """A text model reading documents as text: message contents are plain strings (text
        parts joined by newlines, as for text data), and there is no processor."""

    @cached_property
    def processor(self) -> Any:
        return load_processor(self.folder)

    # What evaluation and the loop ask of a tokenizer, answered by the chat tokenizer.
    @property
    def pad_token_id(self) -> int:
        return self.chat.pad_token_id

    @property
    def eos_token_id(self) -> int | None:
        return self.chat.eos_token_id

    def decode(self, ids: Sequence[int]) -> str:
        return self.chat.decode(ids)

    def media_inputs(self) -> Any:
        if self.text_only:
            return None
        from tunespec_local.media.inputs import MediaInputs

        return MediaInputs(str(self.folder))

    def identity(self) -> dict[str, Any]:
        """What besides the tokenizer decides an example's tokens: the processor's settings
        (image size, tiling, audio features) and how documents are read."""
        import hashlib

        files = {}
        for name in (*PROCESSOR_FILES, "video_preprocessor_config.json"):
            path = self.folder / name
            if path.is_file():
                files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        documents = self.reader.documents
        return {"processor": files, "documents": documents.model_dump(mode="json") if documents is not None else None,
                "text_only": self.text_only}

    def placeholder(self, kind: str) -> str:
        token = getattr(self.processor, PLACEHOLDER_ATTRIBUTES[kind], None)
        if not token:
            raise ValueError(f"the model's processor ({type(self.processor).__name__}) takes no {kind} input")
        return token

    # -- what the chat template sees -------------------------------------------------------

    def messages(self, conversation: Any) -> tuple[list[dict[str, Any]], list[Media]]:
        """Chat-template messages whose content is a list of typed parts (a string for a text
        model), and the media in the order their placeholders appear."""
        media: list[Media] = []
        messages = []
        system = self._content(conversation.system, conversation, media)
        if system:
            messages.append({"role": "system", "content": self._as_text(system)})
        for turn in conversation.turns:
            content = self._content(turn.parts, conversation, media)
            messages.append({"role": ROLE_NAMES.get(turn.role, turn.role), "content": self._as_text(content)})
        return messages, media

    def _as_text(self, content: list[dict[str, Any]]) -> Any:
        return "\n".join(p["text"] for p in content if p["type"] == "text") if self.text_only else content

    def _content(self, parts: Sequence[Any], conversation: Any, media: list[Media]) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for part in parts:
            if part.kind == "text":
                content.append({"type": "text", "text": part.text})
            elif part.kind in ("file", "inline"):
                for item in self.reader.content(part, conversation):
                    if isinstance(item, str):  # a document page read as text
                        content.append({"type": "text", "text": item})
                    else:
                        content.append({"type": item.kind})
                        media.append(Media(item.kind, item.data, part.path))
        return content

    # -- encoding --------------------------------------------------------------------------

    def encode(self, conversation: Any, max_seq_length: int) -> Encoded | None:
        """Token ids, labels (model turns trained) and media of one conversation; None when
        it does not fit in `max_seq_length` tokens."""
        messages, media = self.messages(conversation)
        text = self.chat.render(messages)
        spans = self.chat.model_spans(messages, text)
        ids, labels = self._tokens(text, spans, media, conversation)
        if len(ids) > max_seq_length:
            return None
        return Encoded(ids, labels, False, tuple(m.data for m in media), media_kinds(media))

    def encode_many(self, conversations: Sequence[Any], max_seq_length: int) -> list[Encoded | None]:
        return [self.encode(c, max_seq_length) for c in conversations]

    def prompt(self, conversation: Any) -> Prompt:
        """The conversation up to its last model turn (with the media in it), for generation."""
        messages, media = self.messages(conversation)
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        text = self.chat.render(messages[:last], add_generation_prompt=True)
        used = media[: sum(1 for m in messages[:last] if not isinstance(m["content"], str)
                           for p in m["content"] if p["type"] in PLACEHOLDER_ATTRIBUTES)]
        ids, _ = self._tokens(text, [], used, conversation)
        content = messages[last]["content"]
        reference = content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p["type"] == "text")
        return Prompt(ids, reference, tuple(m.data for m in used), media_kinds(used))

    def _tokens(self, text: str, spans: list[tuple[int, int]], media: list[Media], conversation: Any) -> tuple[list[int], list[int]]:
        """Cut `text` at the media placeholders; tokenise the text pieces with their labels
        and put each media item's expansion in its placeholder's place."""
        ids: list[int] = []
        labels: list[int] = []
        start = 0
        for item in media:
            token = self.placeholder(item.kind)
            at = text.find(token, start)
            if at < 0:
                raise ValueError(f"the chat template did not place every {item.kind} of the example (no {token!r} for it)")
            self._add_text(text, start, at, spans, ids, labels)
            expansion = self.expand(item, conversation)
            ids.extend(expansion)
            labels.extend([IGNORE_INDEX] * len(expansion))
            start = at + len(token)
        self._add_text(text, start, len(text), spans, ids, labels)
        return ids, labels

    def _add_text(self, text: str, begin: int, end: int, spans: list[tuple[int, int]], ids: list[int], labels: list[int]) -> None:
        if begin >= end:
            return
        encoding = self.chat.tokenizer.encode(text[begin:end], add_special_tokens=False)
        for token, (offset, _) in zip(encoding.ids, encoding.offsets):
            position = begin + offset
            ids.append(token)
            labels.append(token if any(s <= position < e for s, e in spans) else IGNORE_INDEX)

    def expand(self, item: Media, conversation: Any = None) -> list[int]:
        """The token ids the processor puts in place of one media item's placeholder. Media
        that cannot be decoded is a located error (TS236), not a crash in training."""
        from tunespec import Diagnostic, DiagnosticError, Location

        token = self.placeholder(item.kind)
        try:
            arguments = media_arguments(self.processor, [[item]])
        except DiagnosticError:  # a decoder that cannot be loaded (TS300): this machine's problem, not the file's
            raise
        except Exception as exc:  # PIL / soundfile: any broken file, whatever the library raises
            where = Location(getattr(conversation, "file", None), getattr(conversation, "line", None), None, item.where)
            raise DiagnosticError(Diagnostic("TS236", f"the {item.kind} cannot be decoded: {type(exc).__name__}: {exc}", where,
                                             f"re-export the {item.kind} file, or remove this example")) from exc
        inputs = self.processor(text=[token], **arguments, add_special_tokens=False)
        return [int(i) for i in inputs["input_ids"][0]]  # a list or a tensor, as the processor returns it


def media_kinds(media: Sequence[Media]) -> str:
    """The kinds of an example's media as one letter each ("i" image, "a" audio)."""
    return "".join(m.kind[0] for m in media)


def load_processor(folder: str | Path) -> Any:
    """The model folder's processor (chat template, tokenizer, image processor or audio
    feature extractor), once per process."""
    key = str(Path(folder).resolve())
    if key not in _PROCESSORS:
        from transformers import AutoProcessor

        try:
            _PROCESSORS[key] = AutoProcessor.from_pretrained(key)
        except (OSError, ImportError, ValueError):
            images_only = images_only_processor_class(key)
            if images_only is None:
                raise
            _PROCESSORS[key] = images_only.from_pretrained(key)
    return _PROCESSORS[key]


_PROCESSORS: dict[str, Any] = {}


def images_only_processor_class(folder: str | Path) -> Any:
    """The folder's processor class without its video processor, for the families that have
    one (Qwen2-VL, Qwen2.5-VL, SmolVLM...), or None for the others. transformers 5 builds a
    video processor only with torchvision, which tunespec does not install (no CPU build of it
    matches the pinned torch); tuning reads images and text, which the image processor and
    tokenizer handle alone, so the processor is built from those, with the same saved settings."""
    import inspect

    import transformers

    from tunespec_local.media.count import processor_settings

    cls = getattr(transformers, str(processor_settings(folder).get("processor_class")), None)
    if cls is None or "video_processor" not in inspect.signature(cls.__init__).parameters:
        return None
    # The saved settings this processor takes (SmolVLM's image_seq_len...), as `from_pretrained`
    # lists them: off the code of `__init__`, which ImagesOnly's does not name.
    code = cls.__init__.__code__
    settings = [name for name in code.co_varnames[1 : code.co_argcount] if name != "video_processor"]

    class ImagesOnly(cls):  # type: ignore[misc, valid-type]
        def __init__(self, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
            cls.__init__(self, image_processor, tokenizer, None, **kwargs)

        @staticmethod
        def validate_init_kwargs(processor_config: dict[str, Any], valid_kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            return cls.validate_init_kwargs(processor_config, settings)

    # transformers reads which parts to load off the __init__ signature: leave the video part out.
    signature = inspect.signature(cls.__init__)
    ImagesOnly.__init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "video_processor"])
    ImagesOnly.__name__ = ImagesOnly.__qualname__ = cls.__name__
    return ImagesOnly


def media_arguments(processor: Any, media: Sequence[Sequence[Media]]) -> dict[str, Any]:
    """The processor's media keyword arguments for a batch: `images` (one list per example,
    decoded to RGB) and/or `audio` (waveforms at the feature extractor's sampling rate)."""
    images = [[decode_image(m.data) for m in example if m.kind == "image"] for example in media]
    clips = [decode_audio(m.data, sampling_rate(processor)) for example in media for m in example if m.kind == "audio"]
    arguments: dict[str, Any] = {}
    if any(images):
        arguments["images"] = images
    if clips:
        arguments["audio"] = clips
        arguments["sampling_rate"] = sampling_rate(processor)
    return arguments


def decode_image(data: bytes) -> Any:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def sampling_rate(processor: Any) -> int:
    """The rate the processor's audio feature extractor reads waveforms at."""
    features = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
    return int(getattr(features, "sampling_rate", 16000))


def decode_audio(data: bytes, rate: int) -> Any:
    """A mono float32 waveform at `rate` Hz (soundfile reads WAV, FLAC, OGG, MP3...): the
    channels of a stereo clip averaged, another rate resampled."""
    import io

    import numpy as np

    soundfile = audio_library()
    try:
        wave, source_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as exc:  # its message names the BytesIO object; keep libsndfile's reason
        raise ValueError(exc.error_string) from exc
    if not len(wave):
        raise ValueError("the clip has no samples")
    wave = wave.mean(axis=1)
    if source_rate != rate:  # linear resampling: enough for speech features
        n = resampled_length(len(wave), source_rate, rate)
        wave = np.interp(np.linspace(0, len(wave) - 1, n), np.arange(len(wave)), wave).astype(np.float32)
    return wave


def resampled_length(samples: int, source_rate: int, rate: int) -> int:
    """How many samples a clip of `samples` at `source_rate` has once `decode_audio` resamples
    it to `rate` (what `plan` counts a clip's tokens from, without decoding it)."""
    return samples if source_rate == rate else max(1, round(samples * rate / source_rate))


def audio_library() -> Any:
    """The `soundfile` module. When it is not installed, or its libsndfile cannot be loaded,
    that is TS300 naming the package and how to install it: no data line is at fault (a
    decoding error of the bytes themselves is TS236, at the clip's line)."""
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: soundfile's "sndfile library not found"
        from tunespec import Diagnostic, DiagnosticError, Location
        from tunespec_local.media import AUDIO_INSTALL_HINT

        if isinstance(exc, ImportError):
            what, hint = "the soundfile package, which is not installed", AUDIO_INSTALL_HINT
        else:  # installed, but the libsndfile it found cannot be loaded
            what = "the soundfile package's libsndfile library, which cannot be loaded"
            hint = "`pip install --force-reinstall soundfile` (its wheels bundle libsndfile), or install the system's libsndfile (e.g. `apt install libsndfile1`)"
        raise DiagnosticError(Diagnostic("TS300", f"decoding audio needs {what} ({type(exc).__name__}: {exc})", Location(subject="soundfile"), hint)) from exc
    return soundfile
