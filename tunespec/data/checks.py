"""Conversation and modality rules, applied to every example whatever its format.

`inspect_conversation` returns the problems of one example as path-located diagnostics
(the caller adds file and line). It is on the hot path of validation, so it walks the
example once, allocates nothing for a good one, and gathers on the way what the token
estimator needs. (Plain text examples usually do not get here: see `tunespec.data.quick`.)

Media parts must be what they claim (`tunespec.data.sniff`): inline data must be strict
base64 (TS227), a referenced local file a regular file (TS225), and the first bytes of
either must match the declared MIME type (TS226: an error for another family of file,
text, or no known format; a warning for another type of the same family). A PDF whose
bytes are here (a local file, inline data) is opened (`tunespec.data.documents`): one that
cannot be read is an error (TS235), one longer than `DataRules.max_pdf_pages` too (TS234).
Remote references (``gs://``, ``https://``) are not fetched: only their existence and size
are checked, through the data sources.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from tunespec.data.conversation import FUNCTION_KINDS, Conversation, Part
from tunespec.data.rules import DataRules, media_kind
from tunespec.data.sources import DataSource, FileStat
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location, Severity

_NO_PROBLEMS: list[Diagnostic] = []
HEAD_CACHE = 256  # first bytes of the last files read (8 KiB each): a file used by nearby examples is read once
PDF_CACHE = 4096  # page counts (or why unreadable) of the last PDFs opened: a PDF used by many examples is opened once
PDF_READ_LIMIT = 64 * 1024 * 1024  # a PDF larger than this is not opened (the data rules allow 20 MB)
PDF = "application/pdf"


class FileReferences:
    """Answers "does this referenced file exist, and how big is it?" through the data
    sources, remembering recent answers so a file used by many examples is checked once.

    Local references are tried relative to the data file's folder, then the spec's. A
    store that cannot be reached (no credentials, no client library) is reported once,
    as a warning, and its references are left unchecked rather than all called missing.
    """

    UNCHECKED = FileStat("", -1)

    def __init__(self, sources: list[DataSource], spec_dir: Path, cache_size: int = 100_000):
        self.sources = sources
        self.spec_dir = spec_dir
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], FileStat | None] = OrderedDict()
        self._heads: OrderedDict[tuple, tuple[bytes | None, str | None]] = OrderedDict()
        self._pdf_pages: OrderedDict[tuple, int | str | None] = OrderedDict()
        self._unreachable: set[str] = set()

    def head(self, stat: FileStat) -> tuple[bytes | None, str | None] | None:
        """The first bytes of a referenced local file, ``(head, None)``, or ``(None, why
        it cannot be read)`` (not a regular file, no permission); None for a file that is
        not local (never fetched). The last `HEAD_CACHE` answers are remembered."""
        path = _local_path(stat.path)
        if path is None:
            return None
        key = (path, stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns)
        if key in self._heads:
            self._heads.move_to_end(key)
            return self._heads[key]
        from tunespec.data.sniff import read_local_head

        found = self._heads[key] = read_local_head(path)
        if len(self._heads) > HEAD_CACHE:
            self._heads.popitem(last=False)
        return found

    def pdf_pages(self, stat: FileStat) -> int | str | None:
        """Pages of a referenced local PDF, or why it cannot be read (a sentence); None
        when it is not local or too large to open. The last `PDF_CACHE` answers are
        remembered, by path, size and modification time."""
        path = _local_path(stat.path)
        if path is None or stat.size > PDF_READ_LIMIT:
            return None
        key = (path, stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns)
        if key in self._pdf_pages:
            self._pdf_pages.move_to_end(key)
            return self._pdf_pages[key]
        from tunespec.data.sniff import read_local_head

        data, why = read_local_head(path, max(stat.size, 0) + 1)  # the whole file: at most 20 MB under the rules
        found = self._pdf_pages[key] = f"the file {why}" if data is None else count_pdf_pages(data)
        if len(self._pdf_pages) > PDF_CACHE:
            self._pdf_pages.popitem(last=False)
        return found

    def stat(self, uri: str, data_file: str | None) -> FileStat | Diagnostic | None:
        """The file's stat; None if missing; `UNCHECKED` if its store cannot be reached,
        or, the first time that happens, the Diagnostic saying why."""
        key = (uri, data_file or "")
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        scheme = scheme_of(uri)
        if scheme in self._unreachable:
            return self.UNCHECKED
        try:
            result = self._stat(uri, data_file)
        except DiagnosticError as exc:
            self._unreachable.add(scheme)
            return exc.diagnostics[0]
        self._cache[key] = result
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    def _stat(self, uri: str, data_file: str | None) -> FileStat | None:
        candidates = reference_candidates(uri, data_file, self.spec_dir)
        for candidate in candidates:
            source = next((s for s in self.sources if s.handles(candidate)), None)
            if source is not None:
                found = source.stat(candidate)
                if found is not None:
                    return found
        for candidate in candidates:
            # Sources list no folders; a referenced folder is reported as what it is
            # (`head` says "a directory"), not as missing.
            path = _local_path(candidate)
            if path is not None and os.path.isdir(path):
                return FileStat(candidate, 0)
        return None


def count_pdf_pages(data: bytes) -> int | str:
    """Pages of the PDF `data`, or why it cannot be read."""
    from tunespec.data.documents import UnreadableDocument, page_count

    try:
        return page_count(data)
    except UnreadableDocument as exc:
        return str(exc)


def reference_candidates(uri: str, data_file: str | None, spec_dir: Path) -> list[str]:
    """Where a media part's `uri` may be, in the order to try: a URI or absolute path as it
    is; a relative path beside the data file (inside its gs:// folder for remote data),
    then in the spec's folder. Validation checks these; the torch backends read them."""
    if "://" in uri or Path(uri).is_absolute():
        return [uri]
    if data_file and data_file.startswith("gs://"):
        beside_data = data_file.rsplit("/", 1)[0] + "/" + uri
    elif data_file and "://" not in data_file:
        beside_data = str(Path(data_file).parent / uri)
    else:  # no data file to be beside (or one on another scheme): the path as written
        beside_data = uri
    return [beside_data, str(spec_dir / uri)]


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else "local"


def _local_path(uri: str) -> str | None:
    """The path of a local file reference (a path or ``file://``), None for other schemes."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def inspect_conversation(conv: Conversation, rules: DataRules, files: FileReferences | None) -> tuple[list[Diagnostic], int, int]:
    """Rule problems, plus what the token estimator needs from the same walk over the
    parts: characters of text and number of media parts (so validation without a
    tokenizer visits each part once)."""
    problems: list[Diagnostic] | None = None

    def add(code: str, message: str, path: str, hint: str | None = None, severity: Severity = Severity.ERROR) -> None:
        nonlocal problems
        if problems is None:
            problems = []
        problems.append(Diagnostic(code, message, Location(path=path), hint, severity))

    turns = conv.turns
    system = conv.system
    if system and "system" not in rules.allowed_roles:
        add("TS210", "system instructions are not supported here", system[0].path, "fold the system text into the first user turn")
    # One pass over turns and parts: roles, alternation, empty parts, media.
    allowed = rules.allowed_roles
    previous = None
    has_model = False
    n_parts = len(system)
    media_counts: dict[str, int] = {}
    chars, n_media = _check_parts(system, conv, rules, files, media_counts, add)
    for turn in turns:
        role = turn.role
        if role == "model":
            has_model = True
        if role not in allowed:
            add("TS210", f"role {role!r} is not allowed here", turn.path)
        if previous is None:
            if rules.require_first_user and role != "user":
                add("TS207", f"first turn is {role!r}; examples start with the user", turn.path, "start with a user turn")
        elif role == previous and rules.require_alternation:
            add("TS207", f"two {role} turns in a row", turn.path, "merge consecutive turns of the same role, or add the missing turn between them")
        previous = role
        parts = turn.parts
        if not parts:
            add("TS209", f"{role} turn has no content", turn.path, "remove the empty turn or give it text")
        for part in parts:
            if part.kind in FUNCTION_KINDS:
                _check_function_part(part, role, rules, add)
        n_parts += len(parts)
        turn_chars, turn_media = _check_parts(parts, conv, rules, files, media_counts, add)
        chars += turn_chars
        n_media += turn_media
    if not has_model:
        add("TS206", "example has no model turn: nothing to learn", "$", "add the answer the model should give as the last turn")
    if turns and rules.require_last_model and previous != "model":
        add("TS208", f"last turn is {previous!r}, not the model's", turns[-1].path, "end each example with the model's answer")
    if conv.rejected is not None or rules.objective == "preference":
        _check_pair(conv, rules, files, add)
    if rules.max_parts_per_example is not None and n_parts > rules.max_parts_per_example:
        add("TS212", f"{n_parts} parts in one example, over the limit of {rules.max_parts_per_example}", "$", "split the example")
    if media_counts:
        for kind, n in media_counts.items():
            limit = rules.media[kind].max_per_example  # type: ignore[index]
            if limit is not None and n > limit:
                add("TS212", f"{n} {kind} parts in one example, over the limit of {limit}", "$", f"use at most {limit} {kind} file(s) per example")
    return (problems if problems is not None else _NO_PROBLEMS), chars, n_media


PAIR_FORMATS = "gemini_preference (`contents` + `completions`), openai_preference (`input` + `preferred_output` + `non_preferred_output`) or prompt_chosen_rejected (`prompt`, `chosen`, `rejected`)"


def _check_pair(conv: Conversation, rules: DataRules, files: FileReferences | None, add: Callable[..., None]) -> None:
    """The rules of preference pairs, whatever their format: the spec's objective takes
    pairs, and the non-preferred response is a real, different model response."""
    rejected = conv.rejected
    if rejected is None:
        add("TS233", "this example is a conversation, not a preference pair: `method.objective: preference` learns from pairs", "$",
            f"write pairs as {PAIR_FORMATS} (docs/data.md), or set `method.objective: sft`")
        return
    if rules.objective == "sft":
        add("TS233", "this example is a preference pair, but `method.objective` is `sft`", "$",
            "set `method.objective: preference` to learn from pairs, or give conversations for supervised tuning")
    if not rejected.parts:
        add("TS209", "the non-preferred response has no content", rejected.path, "give it the text of the worse answer")
        return
    _check_parts(rejected.parts, conv, rules, files, {}, add)
    chosen = conv.turns[-1] if conv.turns else None
    if chosen is not None and _response_key(chosen) == _response_key(rejected):
        add("TS231", "the preferred and non-preferred responses are the same", rejected.path,
            "a pair must compare two different answers to the prompt; fix or remove it")


def _response_key(turn) -> tuple:
    """What a response says, for comparing two (text trimmed, media by reference)."""
    return tuple((p.text or "").strip() if p.kind == "text" else (p.kind, p.mime_type, p.uri, p.data) for p in turn.parts)


def _check_parts(
    parts: list[Part], conv: Conversation, rules: DataRules, files: FileReferences | None, media_counts: dict[str, int], add: Callable[..., None]
) -> tuple[int, int]:
    """Empty texts and media rules for the parts of one turn (or the system instruction);
    returns the characters of text and the number of media parts, for the estimator."""
    chars = n_media = 0
    for part in parts:
        if part.kind == "text":
            text = part.text
            if not text or text.isspace():
                add("TS209", "empty text part", part.path, "remove the part or give it text")
            if text:
                chars += len(text)
        elif part.kind in FUNCTION_KINDS:
            chars += len(part.value_text)  # the call's JSON is what the model reads and writes
        else:
            n_media += 1
            _check_media(part, conv, rules, files, media_counts, add)
    return chars, n_media


FUNCTION_ROLES = {"function_call": ("model", "functionCall"), "function_response": ("user", "functionResponse")}


def _check_function_part(part: Part, role: str, rules: DataRules, add: Callable[..., None]) -> None:
    """Function-calling parts: only where the backend's model tunes on them, a call in a
    model turn (what the model learns to emit) and a response in a user turn."""
    wanted, key = FUNCTION_ROLES[part.kind]
    if rules.allow_function_calls is not True:
        add("TS203", f"`{key}` parts are not accepted for this backend and model", part.path,
            "function-calling tuning is for the models whose catalog entry allows it (e.g. Gemini on the vertex backend); "
            "remove function-calling examples for this model")
    elif role != wanted:
        add("TS210", f"`{key}` in a {role} turn; it belongs in a {wanted} turn", part.path,
            "the model's turn calls the function (functionCall); the next user turn returns its result (functionResponse)")


def _check_media(
    part: Part, conv: Conversation, rules: DataRules, files: FileReferences | None, counts: dict[str, int], add: Callable[..., None]
) -> None:
    mime = part.mime_type or ""
    kind = rules.kind_of(mime)
    if kind is None:
        allowed = sorted(m for limits in rules.media.values() for m in limits.mime_types)
        family = media_kind(mime)
        hint = f"allowed here: {', '.join(allowed)}" if allowed else "this data is text-only: set `data.modality` to the media kind (image, audio, document, video)"
        if family is not None and family not in rules.media and allowed:
            hint += f"; for {family} data set `data.modality: {family}`"
        add("TS211", f"MIME type {mime!r} is not allowed for this modality", part.path, hint)
        return
    counts[kind] = counts.get(kind, 0) + 1
    limit = rules.media[kind].max_bytes
    if part.kind == "inline":
        if not rules.allow_inline_data:
            add("TS222", "inline data is not accepted here", part.path, "upload the file (e.g. to gs://) and reference it with fileData")
        elif limit is not None and (part.size or 0) > limit:
            add("TS213", f"inline {kind} is {_mb(part.size or 0)}, over the {_mb(limit)} limit", part.path, "shrink or re-encode the file")
        else:
            from tunespec.data.sniff import SNIFF_BYTES, decode_base64

            head, bad = decode_base64(part.data or "")
            if bad is not None:
                add("TS227", f"inline {kind} data is not valid base64: {bad}", part.path, "encode the file's bytes with standard base64 (e.g. `base64 -w0 FILE`)")
            elif not _check_bytes(head or b"", mime, (part.size or 0) <= SNIFF_BYTES, f"inline {kind} data", part.path, add):
                if mime == PDF and (part.size or 0) <= PDF_READ_LIMIT:
                    import binascii

                    _check_pdf(count_pdf_pages(binascii.a2b_base64(part.data or "")), "inline PDF", part.path, rules, add)
        return
    uri = part.uri or ""
    scheme = scheme_of(uri)
    if scheme not in rules.file_uri_schemes:
        add("TS223", f"file reference {uri!r} uses {scheme!r}, not accepted here", part.path, f"accepted: {', '.join(rules.file_uri_schemes)}")
        return
    if files is None or not rules.check_file_references or scheme in ("http", "https"):
        return  # web links are not fetched during validation
    stat = files.stat(uri, conv.file)
    if stat is FileReferences.UNCHECKED:
        return
    if isinstance(stat, Diagnostic):
        add(stat.code, f"referenced files on {scheme}:// not checked: {stat.message}", part.path, stat.hint, Severity.WARNING)
        return
    if stat is None:
        add("TS214", f"referenced file {uri!r} does not exist", part.path, "check the path (local paths are relative to the data file or the spec) or upload the file")
        return
    found = files.head(stat)  # local files only: remote ones are not fetched
    if found is not None and found[1] is not None:
        add("TS225", f"referenced file {uri!r} {found[1]}", part.path, "reference a regular file (an image, audio, video or document file)")
    elif limit is not None and stat.size > limit:
        add("TS213", f"{kind} file {uri!r} is {_mb(stat.size)}, over the {_mb(limit)} limit", part.path, "shrink or re-encode the file")
    elif found is not None:
        from tunespec.data.sniff import SNIFF_BYTES

        if not _check_bytes(found[0] or b"", mime, stat.size <= SNIFF_BYTES, f"referenced file {uri!r}", part.path, add) and mime == PDF:
            _check_pdf(files.pdf_pages(stat), f"referenced file {uri!r}", part.path, rules, add)


def _check_pdf(pages: int | str | None, what: str, path: str, rules: DataRules, add: Callable[..., None]) -> None:
    """TS235 for a PDF that cannot be read, TS234 for one with more pages than allowed."""
    if isinstance(pages, str):
        add("TS235", f"{what} cannot be read as a PDF: {pages}", path,
            "open it in a PDF viewer and save or print it to a new PDF (without a password), or remove the example")
    elif pages is not None and rules.max_pdf_pages is not None and pages > rules.max_pdf_pages:
        limit = rules.max_pdf_pages
        add("TS234", f"{what} has {pages:,} pages, over the limit of {limit:,} (`data.documents.max_pages`)", path,
            f"raise `data.documents.max_pages` to {pages:,} (each page becomes an image or its text: pages cost sequence "
            f"length), or split the PDF into parts of at most {limit:,} pages")


def _check_bytes(head: bytes, mime: str, complete: bool, what: str, path: str, add: Callable[..., None]) -> bool:
    """TS226 when the first bytes of a media part are not of its declared MIME type; True
    when that is an error (the bytes are not what the part says)."""
    from tunespec.data.sniff import media_problem

    problem = media_problem(head, mime, complete)
    if problem is None:
        return False
    is_error, found, found_mime = problem
    if not is_error:
        add("TS226", f"{what} is {found}, declared as {mime}", path, f"declare `mimeType: {found_mime}`", Severity.WARNING)
    elif found.startswith("no known"):
        add("TS226", f"{what} is not {mime}: its bytes match {found}", path, "check the file: its bytes must be of the declared type")
    elif found.startswith("not "):
        add("TS226", f"{what} is {found}", path, "a text/plain document must be UTF-8 text")
    else:
        hint = f"declare `mimeType: {found_mime}` if the file is right" if found_mime else "check the file: its bytes must be of the declared type"
        add("TS226", f"{what} is {found}, not {mime}", path, hint)
    return is_error


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"
