"""From a `Conversation` to training tokens: chat template, loss mask, truncation.

`ChatTokenizer` reads a Hugging Face model folder's `tokenizer.json` with the `tokenizers`
library and renders its chat template with jinja2 (the same sandboxed environment and
helpers transformers uses). It imports neither torch nor transformers, so `validate` and
`plan` use it for exact token counts and training uses it for the real thing: one
encoder, so the counts `plan` shows are the tokens training sees.

The loss mask: the model learns only what the model says. For each model turn the
rendered text is split where the turn starts (the template rendered up to that turn with
the generation prompt) and where it ends (rendered through that turn), and the tokens in
between, the turn's content and its end-of-turn token, are the trained ones.
System and user turns, and the template's scaffolding, only give context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

IGNORE_INDEX = -100
"""Label of a token that is not trained (the value torch's cross-entropy ignores)."""

ROLE_NAMES = {"system": "system", "user": "user", "model": "assistant"}
"""tunespec roles -> the role names chat templates expect."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenised example. `labels[i]` is `input_ids[i]` where token i is trained, else
    IGNORE_INDEX (the model's loss shifts labels itself: position i predicts token i+1)."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    media: tuple[bytes, ...] = ()
    """Multimodal examples: the bytes of each image/audio item, in placeholder order
    (tunespec_local.media); the ids already hold each one's expansion."""
    media_kinds: str = ""
    """One letter per `media` item: "i" image, "a" audio."""

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class Prompt:
    """An evaluation example: the prompt rendered up to the last model turn, and that turn's
    text as the reference answer."""

    input_ids: list[int]
    reference: str
    media: tuple[bytes, ...] = ()
    media_kinds: str = ""


class ChatTokenizer:
    """A model folder's tokenizer and chat template, without transformers."""

    def __init__(self, tokenizer: Any, chat_template: str, special_tokens: dict[str, str | None], name: str = ""):
        self.tokenizer = tokenizer  # tokenizers.Tokenizer
        self.chat_template = chat_template
        self.special_tokens = special_tokens
        self.name = name

    @classmethod
    def from_folder(cls, folder: str | Path, chat_template: str | None = None) -> "ChatTokenizer":
        """Load `tokenizer.json`, the special tokens from `tokenizer_config.json`, and the chat
        template (`chat_template` argument, else `chat_template.jinja`, else the config's)."""
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = _read_json(folder / "tokenizer_config.json")
        template = chat_template or _template_of(folder, config)
        if not template:
            raise ValueError(f"{folder} has no chat template; set `model.chat_template` in the spec")
        special = {k: _token_text(config.get(k)) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
        return cls(Tokenizer.from_file(str(folder / "tokenizer.json")), template, special, name=folder.name)

    @cached_property
    def _template(self):
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ValueError(f"chat template error: {message}")

        def tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False) -> str:
            return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        return env.from_string(self.chat_template)

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt, **self.special_tokens)

    @property
    def eos_token_id(self) -> int | None:
        token = self.special_tokens.get("eos_token")
        return self.tokenizer.token_to_id(token) if token else None

    @property
    def pad_token_id(self) -> int:
        for key in ("pad_token", "eos_token"):
            token = self.special_tokens.get(key)
            if token and self.tokenizer.token_to_id(token) is not None:
                return self.tokenizer.token_to_id(token)
        return 0

    # -- encoding -----------------------------------------------------------------------

    def encode(self, conversation: Any, max_seq_length: int, last_turn_only: bool = False) -> Encoded:
        """Token ids and labels (trained = model-turn tokens; with `last_turn_only`, only the
        last model turn's) of one conversation, truncated to `max_seq_length` tokens."""
        text, spans = self._text_and_spans(conversation, last_turn_only)
        return _labelled(self.tokenizer.encode(text, add_special_tokens=False), spans, max_seq_length)

    def encode_many(self, conversations: Sequence[Any], max_seq_length: int, last_turn_only: bool = False) -> list[Encoded]:
        """`encode` of each conversation, with one `encode_batch` call: the tokenizer works on
        the batch on every core while Python renders the next one's templates."""
        prepared = [self._text_and_spans(c, last_turn_only) for c in conversations]
        encodings = self.tokenizer.encode_batch([text for text, _ in prepared], add_special_tokens=False)
        return [_labelled(e, spans, max_seq_length) for e, (_, spans) in zip(encodings, prepared)]

    def encode_pair(self, conversation: Any, max_seq_length: int) -> Any:
        """A preference pair as two sequences, prompt + preferred and prompt + non-preferred
        response, each truncated to `max_seq_length`, with only its response trained (model
        turns inside a multi-turn prompt are context, as in TRL)."""
        return self.encode_pairs([conversation], max_seq_length)[0]

    def encode_pairs(self, conversations: Sequence[Any], max_seq_length: int) -> list[Any]:
        """`encode_pair` of each conversation, both sides of every pair in one batch."""
        from tunespec_local.training.objectives import EncodedPair

        sides = [view for c in conversations for view in c.pair_views()]
        encoded = self.encode_many(sides, max_seq_length, last_turn_only=True)
        return [EncodedPair(chosen, rejected) for chosen, rejected in zip(encoded[0::2], encoded[1::2])]

    def _text_and_spans(self, conversation: Any, last_turn_only: bool) -> tuple[str, list[tuple[int, int]]]:
        messages = to_messages(conversation)
        text = self.render(messages)
        spans = self.model_spans(messages, text)
        return text, (spans[-1:] if last_turn_only else spans)

    def prompt(self, conversation: Any) -> Prompt:
        """The conversation up to its last model turn, ready for generation."""
        messages = to_messages(conversation)
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        text = self.render(messages[:last], add_generation_prompt=True)
        return Prompt(self.tokenizer.encode(text, add_special_tokens=False).ids, messages[last]["content"])

    def count(self, conversations: Iterable[Any]) -> list[int]:
        texts = [self.render(to_messages(c)) for c in conversations]
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def model_spans(self, messages: list[dict[str, Any]], text: str) -> list[tuple[int, int]]:
        """Character spans of `text` that the model says: each model turn's content and the
        template's end-of-turn marker after it."""
        spans = []
        search_from = 0
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self.render(messages[:i], add_generation_prompt=True)
            through = self.render(messages[: i + 1])
            if text.startswith(through) and through.startswith(before):
                spans.append((len(before), len(through)))
                search_from = len(through)
            else:
                # A template that renders earlier turns differently once later turns exist
                # (some strip reasoning from past turns): fall back to finding the content.
                content = _text_of(message["content"])
                start = text.find(content, search_from)
                if start < 0:
                    raise ValueError("cannot locate a model turn in the rendered chat template")
                end = start + len(content)
                eos = self.special_tokens.get("eos_token")
                if eos and text.startswith(eos, end):
                    end += len(eos)
                spans.append((start, end))
                search_from = end
        return spans


def _text_of(content: Any) -> str:
    """A message's text: the string itself, or the text parts of a multimodal content list."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _labelled(encoding: Any, spans: list[tuple[int, int]], max_seq_length: int) -> Encoded:
    """An encoding's ids with labels: the token itself inside a model span, else ignored."""
    ids = encoding.ids
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE_INDEX
        for token, (begin, _) in zip(ids, encoding.offsets)
    ]
    return Encoded(ids[:max_seq_length], labels[:max_seq_length], len(ids) > max_seq_length)


_LOADED: dict[tuple, ChatTokenizer] = {}


def load_tokenizer(folder: str | Path, chat_template: str | None = None) -> ChatTokenizer:
    """`ChatTokenizer.from_folder`, once per process for each folder, template and version
    of tokenizer.json (validating 500 specs of one model loads it once, not 500 times)."""
    key = (*tokenizer_identity(folder), chat_template)
    if key not in _LOADED:
        _LOADED[key] = ChatTokenizer.from_folder(folder, chat_template)
    return _LOADED[key]


def tokenizer_identity(folder: str | Path) -> tuple:
    """What names one version of a folder's tokenizer files, from their stat (no reading)."""
    folder = Path(folder).resolve()
    stats = []
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        try:
            st = (folder / name).stat()
            stats.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((name, None, None))
    return (str(folder), tuple(stats))


class ChatTokenCounter:
    """`tunespec.data.TokenCounter` with the model's own tokenizer and chat template.

    The tokenizer loads on the first `count`: when every data file's counts are already in
    the state database (`cache_key` names them), validation never loads it."""

    exact = True

    def __init__(self, folder: str | Path, chat_template: str | None, name: str):
        self.folder = Path(folder)
        self.chat_template = chat_template
        self.name = name

    @property
    def cache_key(self) -> str:
        import hashlib

        identity = repr((tokenizer_identity(self.folder)[1], self.chat_template)).encode()
        return "chat-tokenizer:" + hashlib.sha256(identity).hexdigest()[:32]

    def count(self, conversations: list[Any]) -> list[int]:
        return load_tokenizer(self.folder, self.chat_template).count(conversations)


def to_messages(conversation: Any) -> list[dict[str, str]]:
    """A tunespec `Conversation` as chat-template messages (`role`, `content`). Text parts of
    a turn are joined with newlines; the local backend trains text models only."""
    messages = []
    system = "\n".join(p.text for p in conversation.system if p.text is not None)
    if system:
        messages.append({"role": "system", "content": system})
    for turn in conversation.turns:
        content = "\n".join(p.text for p in turn.parts if p.text is not None)
        messages.append({"role": ROLE_NAMES.get(turn.role, turn.role), "content": content})
    return messages


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def chat_template_of(folder: str | Path) -> str | None:
    """The chat template a model folder ships, if any (tokenizer.json is not read)."""
    folder = Path(folder)
    return _template_of(folder, _read_json(folder / "tokenizer_config.json"))


def _template_of(folder: Path, config: dict[str, Any]) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template") or _read_json(folder / "chat_template.json").get("chat_template")
    if isinstance(template, list):  # named templates: use "default"
        named = {t.get("name"): t.get("template") for t in template}
        template = named.get("default") or next(iter(named.values()), None)
    return template


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value
