"""tunespec.data: data sources, formats, rules, validation and the data report.

This module is the public data API for backends and plugins:

Conversation model (``tunespec.data.conversation``)
    `Conversation` (system parts, turns, file, line), `Turn` (role ``user``/``model``,
    parts), `Part` (``text`` | ``file`` {mime_type, uri} | ``inline`` {mime_type, size}).
    Every format converts into it; OpenAI ``assistant`` becomes ``model``. Turns and
    parts know their JSON path in the record (``.path``); build them with
    ``Part.of_text(text, where)`` and friends.

Formats (``tunespec.data.formats``)
    `DataFormat` protocol: ``name``, ``detect(record, fields=None) -> bool``,
    ``to_conversation(record, fields) -> Conversation`` raising `DiagnosticError` with
    JSON-path locations. Built-ins: ``gemini``, ``openai``, ``prompt_completion``;
    more through the ``tunespec_data_formats`` hook.

Sources (``tunespec.data.sources``)
    `DataSource` protocol: ``name``, ``handles(path)``, ``list(path)``,
    ``stat(path) -> FileStat | None``, ``open(path) -> binary stream``. Built-ins: local
    files/directories and ``gs://``; more through the ``tunespec_data_sources`` hook.

Rules (``tunespec.data.rules``)
    `DataRules`: one table of limits. ``rules_for(modality)`` gives the defaults; a
    backend returns its own from ``Backend.data_rules(spec)``; ``a.merge(b)`` keeps the
    stricter of each.

Documents (``tunespec.data.documents``)
    PDFs through PDFium: ``page_count(data)``, ``render_pages(data, max_pages, dpi)``
    (PNG bytes), ``extract_text(data, max_pages)``; each raises `UnreadableDocument`
    with a reason. The spec's ``data.documents`` says which the torch backends use.

Tokens (``tunespec.data.tokens``)
    `TokenCounter` protocol: ``exact``, ``name``, ``count(conversations) -> list[int]``.
    `EstimatedTokenCounter` is used when the backend has no tokenizer.

Validation and reading
    ``validate_data(spec, rules, counter, diagnostics, progress, hash_cache=None) ->
    DataReport`` (merges ``rules`` with ``rules_for(modality)``, fills
    ``spec.data_hashes``); ``iter_conversations(spec, split)`` for training (raises
    `DiagnosticError` on a bad record); `HashCache` protocol (``lookup``/``store``).

See docs/data.md for formats, rules, diagnostics and the report.

Report and writers
    `DataReport` (``summary_rows()``), ``write_gemini_jsonl(conversations, fp)``.
"""

from tunespec.data.conversation import Conversation, Part, Turn
from tunespec.data.formats import DataFormat, GeminiFormat, OpenAIFormat, PromptCompletionFormat
from tunespec.data.report import DataFile, DataReport, SplitStats
from tunespec.data.rules import DataRules, MediaLimits, rules_for
from tunespec.data.sources import DataSource, FileStat, GCSSource, LocalSource
from tunespec.data.tokens import EstimatedTokenCounter, TokenCounter, estimate_tokens
from tunespec.data.validate import HashCache, iter_conversations, validate_data
from tunespec.data.writers import write_gemini_jsonl

__all__ = [
    "Conversation",
    "DataFile",
    "DataFormat",
    "DataReport",
    "DataRules",
    "DataSource",
    "EstimatedTokenCounter",
    "FileStat",
    "GCSSource",
    "GeminiFormat",
    "HashCache",
    "LocalSource",
    "MediaLimits",
    "OpenAIFormat",
    "Part",
    "PromptCompletionFormat",
    "SplitStats",
    "TokenCounter",
    "Turn",
    "estimate_tokens",
    "iter_conversations",
    "rules_for",
    "validate_data",
    "write_gemini_jsonl",
]
