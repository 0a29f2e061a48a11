"""Data rules: every limit data validation enforces, in one table.

`rules_for(modality)` gives tunespec's defaults for a modality (what a typical multimodal
tuning service accepts). A backend returns its own table from ``Backend.data_rules(spec)``
and the pipeline combines the two with `DataRules.merge`: the stricter value of every
limit wins. Backends never scatter limit checks through their code; they state limits here
and `tunespec.data.checks` applies them to every example.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MediaKind = Literal["image", "audio", "document", "video"]
LongExamples = Literal["truncated", "dropped", "kept"]
MB = 1024 * 1024


class MediaLimits(BaseModel):
    """Limits for one kind of media (file or inline parts of these MIME types)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mime_types: list[str] = Field(description="MIME types accepted for this kind, e.g. `image/png`.")
    max_per_example: int | None = Field(default=None, ge=0, description="Most parts of this kind in one example; None: no limit.")
    max_bytes: int | None = Field(default=None, ge=0, description="Largest file (or decoded inline data) of this kind, in bytes; None: no limit.")


class DataRules(BaseModel):
    """The limits one backend (or tunespec's defaults for a modality) puts on data."""

    model_config = ConfigDict(extra="forbid")

    media: dict[MediaKind, MediaLimits] = Field(
        default_factory=dict,
        description="Media kinds allowed besides text and their limits. A kind not listed is not allowed.",
    )
    max_parts_per_example: int | None = Field(default=None, ge=1, description="Most parts (text and media) in one example.")
    max_examples: dict[Literal["train", "validation"], int] = Field(
        default_factory=dict, description="Most examples per split, e.g. `{validation: 5000}`."
    )
    max_tokens_per_example: int | None = Field(
        default=None, ge=1, description="Hard token limit per example (input + output); longer examples are errors, not just truncated."
    )
    long_examples: LongExamples | None = Field(
        default=None,
        description="What training does with an example longer than `data.max_seq_length` (TS215 says it): `truncated` "
        "(cut to its first `max_seq_length` tokens), `dropped` (left out whole and counted: media tokens are never cut), "
        "`kept` (the backend does not apply `max_seq_length`; only `max_tokens_per_example` bounds an example). "
        "tunespec's table for a modality says `truncated` for text and `dropped` for media; merged, `kept` wins over "
        "`dropped`, `dropped` over `truncated`.",
    )
    max_file_bytes: int | None = Field(default=None, ge=1, description="Largest data file (as stored) a split may use.")
    max_record_bytes: int = Field(
        default=32 * MB, ge=1024, description="Longest JSON line (one record) read; longer lines are reported and skipped unparsed."
    )
    allowed_roles: list[Literal["system", "user", "model"]] = Field(
        default_factory=lambda: ["system", "user", "model"], description="Roles an example may use (`system` = a system instruction)."
    )
    require_alternation: bool = Field(default=True, description="User and model turns must alternate.")
    require_first_user: bool = Field(default=True, description="The first turn must be the user's.")
    require_last_model: bool = Field(default=True, description="The last turn must be the model's (the target the model learns).")
    allow_inline_data: bool = Field(default=True, description="Media may be inlined as base64 (`inlineData`) instead of referenced.")
    allow_function_calls: bool | None = Field(
        default=None,
        description="Function-calling parts (`functionCall` in model turns, `functionResponse` in user turns): True where the "
        "backend's model tunes on them, False where it refuses them, None (no opinion). Accepted only when one table says "
        "True and none says False.",
    )
    file_uri_schemes: list[str] = Field(
        default_factory=lambda: ["gs", "https", "http", "file", "local"],
        description="Where referenced files may live: URI schemes, plus `local` for paths relative to the data file or spec.",
    )
    check_file_references: bool = Field(default=True, description="Check that referenced files exist (and their size) through the data sources.")
    max_pdf_pages: int | None = Field(
        default=None,
        ge=1,
        description="Most pages a PDF may have (TS234); None: no limit. tunespec's table takes it from the spec's "
        "`data.documents.max_pages` for `document` data, unless the backend reads PDFs natively (`pdf_native`).",
    )
    pdf_native: bool = Field(
        default=False,
        description="The backend's model reads PDF files itself (Vertex): `data.documents` does not apply, so the "
        "merged table has no `max_pdf_pages` from the spec (the backend checks its own page limit). PDFs are still "
        "opened and counted: one that cannot be read is an error (TS235) everywhere.",
    )
    objective: Literal["sft", "preference"] | None = Field(
        default=None,
        description="What every example must be: `sft` conversations, or `preference` pairs (a prompt, a preferred and a "
        "non-preferred response). Set from the spec's `method.objective`; None accepts both.",
    )

    def merge(self, other: "DataRules | None") -> "DataRules":
        """Both tables at once: the stricter value of each limit wins."""
        if other is None:
            return self
        media = {}
        for kind in self.media.keys() & other.media.keys():
            a, b = self.media[kind], other.media[kind]
            media[kind] = MediaLimits(
                mime_types=[m for m in a.mime_types if m in b.mime_types],
                max_per_example=_min(a.max_per_example, b.max_per_example),
                max_bytes=_min(a.max_bytes, b.max_bytes),
            )
        pdf_native = self.pdf_native or other.pdf_native
        examples = dict(self.max_examples)
        for split, n in other.max_examples.items():
            examples[split] = min(n, examples.get(split, n))
        return DataRules(
            media=media,
            max_parts_per_example=_min(self.max_parts_per_example, other.max_parts_per_example),
            max_examples=examples,
            max_tokens_per_example=_min(self.max_tokens_per_example, other.max_tokens_per_example),
            long_examples=_first(_LONG_EXAMPLES, self.long_examples, other.long_examples),
            max_file_bytes=_min(self.max_file_bytes, other.max_file_bytes),
            max_record_bytes=min(self.max_record_bytes, other.max_record_bytes),
            allowed_roles=[r for r in self.allowed_roles if r in other.allowed_roles],
            require_alternation=self.require_alternation or other.require_alternation,
            require_first_user=self.require_first_user or other.require_first_user,
            require_last_model=self.require_last_model or other.require_last_model,
            allow_inline_data=self.allow_inline_data and other.allow_inline_data,
            allow_function_calls=_tri_and(self.allow_function_calls, other.allow_function_calls),
            file_uri_schemes=[s for s in self.file_uri_schemes if s in other.file_uri_schemes],
            check_file_references=self.check_file_references or other.check_file_references,
            max_pdf_pages=None if pdf_native else _min(self.max_pdf_pages, other.max_pdf_pages),
            pdf_native=pdf_native,
            objective=self.objective or other.objective,
        )

    def kind_of(self, mime_type: str) -> MediaKind | None:
        """The media kind whose allowed MIME types include `mime_type`, if any."""
        for kind, limits in self.media.items():
            if mime_type in limits.mime_types:
                return kind
        return None


def _tri_and(a: bool | None, b: bool | None) -> bool | None:
    """False from either wins; else True from either; else no opinion."""
    if a is False or b is False:
        return False
    return True if (a or b) else None


_LONG_EXAMPLES = ("kept", "dropped", "truncated")


def _first(order: tuple[str, ...], a: str | None, b: str | None):  # type: ignore[no-untyped-def]
    """Whichever of `a` and `b` comes first in `order` (None when both are None)."""
    return min((v for v in (a, b) if v is not None), key=order.index, default=None)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


IMAGE = MediaLimits(mime_types=["image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"], max_per_example=30, max_bytes=20 * MB)
AUDIO = MediaLimits(
    mime_types=["audio/wav", "audio/x-wav", "audio/mp3", "audio/mpeg", "audio/flac", "audio/aac", "audio/ogg", "audio/webm", "audio/aiff"],
    max_per_example=1,
    max_bytes=100 * MB,
)
DOCUMENT = MediaLimits(mime_types=["application/pdf", "text/plain"], max_per_example=4, max_bytes=20 * MB)
VIDEO = MediaLimits(
    mime_types=["video/mp4", "video/mpeg", "video/quicktime", "video/webm", "video/x-flv", "video/wmv", "video/3gpp"],
    max_per_example=10,
    max_bytes=100 * MB,
)

# Which media each modality admits. `image` data may still hold text-only examples.
_MODALITY_MEDIA: dict[str, dict[str, MediaLimits]] = {
    "text": {},
    "image": {"image": IMAGE},
    "audio": {"audio": AUDIO},
    "document": {"document": DOCUMENT},
    "video": {"video": VIDEO},
}


def rules_for(modality: str, objective: str | None = None, max_pdf_pages: int | None = None) -> DataRules:
    """tunespec's default rules for a `data.modality` (text, image, audio, document, video),
    a `method.objective` (sft: conversations, preference: pairs) and, for documents, the
    spec's `data.documents.max_pages` (None: PDFs of any length)."""
    return DataRules(
        media=dict(_MODALITY_MEDIA.get(modality, {})),
        objective=objective,
        max_pdf_pages=max_pdf_pages if modality == "document" else None,
        # The torch backends cut text, and drop an example with media whole (never cut through them).
        long_examples="truncated" if modality == "text" else "dropped",
    )


def media_kind(mime_type: str) -> MediaKind | None:
    """The kind a MIME type belongs to by its family, whatever the rules allow."""
    if mime_type.startswith("image/"):
        return "image"
    if mime_type.startswith("audio/"):
        return "audio"
    if mime_type.startswith("video/"):
        return "video"
    if mime_type in ("application/pdf", "text/plain"):
        return "document"
    return None
