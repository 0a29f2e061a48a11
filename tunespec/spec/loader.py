"""Safe YAML loading that remembers where everything is.

The loader composes YAML into nodes (never constructing Python objects from tags), then
builds plain data itself so that it can:

- record the line and column of every key and value (`positions`, `key_positions`);
- reject duplicate keys, object-building or unknown tags, and alias bombs;
- interpolate `${env:NAME}` / `${env:NAME:-default}` in strings, while keeping a
  `redacted` copy where the reference stays in place of the value (that copy is what
  state, spec.yaml and manifests store, so secrets never reach them).

Specs arrive in pull requests, so a spec file is untrusted input. Loading one never runs
code, never raises, and is bounded in time and memory while it parses (not after): the
limits below are checked as the file is read, scanned, composed and built, and each ends
in a located diagnostic. A real spec is a few KB with a few hundred nodes; the limits are
far above that and far below what would take seconds or hundreds of MB.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from tunespec import secrets
from tunespec.diagnostics import Diagnostic, Location, Severity

Path_ = tuple  # a field path like ("data", "train", 0, "path")

# Standard YAML 1.1 tags that build plain data; anything else (!!python/..., !Ref) is refused.
PLAIN_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}
MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG, TIMESTAMP_TAG, MAP_TAG, SEQ_TAG = (
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")
)

# Limits on one spec file, each checked before the work it bounds (TS120 unless noted):
MAX_FILE_BYTES = 1 << 20  # 1 MiB, from fstat before anything is read
MAX_LINES = 10_000  # checked on the decoded text, before YAML scans it
MAX_LINE_CHARS = 32_768  # ditto
MAX_DOCUMENTS = 100  # `---` documents, empty ones included, counted as they are parsed
MAX_DEPTH = 64  # mappings and lists inside each other, checked as they are composed and
# again as they are built (where aliases can nest them deeper)
MAX_NODES = 20_000  # nodes as composed, and nodes as built, where an alias counts its
# target again each time it is used: more than this through aliases is an alias bomb (TS104)
MAX_EXPANDED_CHARS = 1 << 20  # characters of keys and scalars as built, aliases counted
# each time they are used (TS104): 1 MiB of text, however few bytes the file has
MAX_KEY_CHARS = 1024
MAX_NUMBER_CHARS = 100  # an int/float longer than this is refused unconverted (TS113)
INT_RANGE = (-(2**63), 2**64 - 1)  # integers JSON tooling (orjson, the fingerprint) can hold (TS113)
MAX_REMEMBERED_CHARS = 32 << 20  # spec texts kept for the renderer's source lines (oldest dropped)

# Characters refused anywhere in a spec (TS109): C0/C1 controls except tab, LF and CR
# (NUL included; YAML's NEL, U+2028 and U+2029 would be line breaks editors do not show),
# bidirectional overrides and isolates that make text read differently from what it is
# ("Trojan Source"), a byte order mark after the start, and the noncharacters U+FFFE/FFFF.
REFUSED_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
INTERPOLATION = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
ENV_REFERENCE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.S)


@dataclass
class LoadedDocument:
    file: Path
    index: int
    data: Any
    redacted: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    secret_digest: str = ""
    interpolations: list[tuple[str, str]] = field(default_factory=list, repr=False)
    """(reference as written, value) for every `${env:...}` whose value came from the
    environment (a default that was used is the spec's own text, not a secret)."""

    def location(self, path: Path_, *, key: bool = False) -> Location:
        """Location of `path` (the key itself when `key`), or of its nearest existing parent."""
        probe = tuple(path)
        table = self.key_positions if key else self.positions
        while probe and probe not in table and probe not in self.positions:
            probe = probe[:-1]
        line, col = table.get(probe) or self.positions.get(probe) or self.positions.get((), (1, 1))
        return Location(str(self.file), line, col, _dotted(path) or None)


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Refused(Exception):
    """A limit was passed while reading or composing: parsing this file stops here."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass
class _Alias:
    """An alias as composed: the anchored node it stands for, and where the alias is written
    (the node's own marks are where the anchor is)."""

    node: yaml.Node
    start_mark: Any
    anchor: str


@dataclass
class _Budget:
    """What a file has cost so far, across its documents."""

    nodes_composed: int = 0
    nodes_built: int = 0
    chars_built: int = 0


if yaml.__with_libyaml__:

    class _Events(yaml.composer.Composer, yaml.cyaml.CParser, yaml.resolver.Resolver):
        """libyaml's scanner and parser (in C: reading the text is most of what loading a
        spec costs in pure Python) under PyYAML's composer, which stays in Python so that
        `_Composer` bounds it node by node. No constructor: nothing here builds objects."""

        def __init__(self, text: str):
            yaml.cyaml.CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Events(yaml.composer.Composer, yaml.parser.Parser, yaml.scanner.Scanner, yaml.reader.Reader, yaml.resolver.Resolver):  # type: ignore[no-redef]
        def __init__(self, text: str):
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)


class _Composer(_Events):
    """PyYAML's safe composer, bounded while it composes: nesting depth and node count are
    checked before each node is composed (its recursion would otherwise end in a
    RecursionError, its memory grows with every node), and aliases are kept as `_Alias` so
    the builder can point at the alias that expands too much or refers to itself."""

    def __init__(self, text: str, file: Path, budget: _Budget):
        super().__init__(text)
        self.file = file
        self.budget = budget
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        self.budget.nodes_composed += 1
        if self.budget.nodes_composed > MAX_NODES:
            raise _Refused(_limit(self.file, event.start_mark, f"spec file has more than {MAX_NODES:,} nodes"))
        if isinstance(event, yaml.AliasEvent):
            return _Alias(super().compose_node(parent, index), event.start_mark, event.anchor)
        if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(
                    _limit(self.file, event.start_mark, f"mappings and lists are nested more than {MAX_DEPTH} deep", _DEPTH_HINT)
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _limit(file: Path, mark: Any, what: str, hint: str | None = None) -> Diagnostic:
    loc = Location(str(file), mark.line + 1, mark.column + 1) if mark is not None else Location(str(file), 1, 1)
    return Diagnostic("TS120", what, loc, hint or "a spec is a few KB of plain settings; keep large content in files the spec points to")


_DEPTH_HINT = "a spec nests a few levels deep; flatten this structure"
_SCALARS = yaml.constructor.SafeConstructor()  # its scalar methods keep no state
_NULLS = ("", "~", "null", "Null", "NULL")


class _Builder:
    """Turns one composed YAML document into plain data plus positions, collecting problems.

    It stops at the first limit passed (TS104, TS120) and reports every other problem."""

    def __init__(self, doc: LoadedDocument, env: Mapping[str, str], diagnostics: list[Diagnostic], budget: _Budget | None = None):
        self.doc = doc
        self.env = env
        self.diagnostics = diagnostics
        self.budget = budget or _Budget()
        self.secrets = hashlib.sha256()
        self.aborted = False
        self.building: set[int] = set()  # ids of the mappings and lists being built: an alias to one is recursive
        self.alias: _Alias | None = None  # the outermost alias being expanded, where a limit is reported

    @property
    def nodes_built(self) -> int:
        return self.budget.nodes_built

    def error(self, code: str, message: str, mark: Any, path: Path_, hint: str | None = None, offset: int = 0) -> None:
        loc = Location(str(self.doc.file), mark.line + 1, mark.column + 1 + offset, _dotted(path) or None)
        self.diagnostics.append(Diagnostic(code, message, loc, hint))

    def abort(self, code: str, message: str, mark: Any, path: Path_, hint: str) -> tuple[None, None]:
        """Report a limit, at the alias that led here if there is one, and stop building."""
        self.aborted = True
        self.error(code, message, self.alias.start_mark if self.alias else mark, path, hint)
        return None, None

    def build(self, node: yaml.Node | _Alias, path: Path_) -> tuple[Any, Any]:
        """Return (value, redacted value) for `node`."""
        if self.aborted:
            return None, None
        if isinstance(node, _Alias):
            alias, node = node, node.node
            if id(node) in self.building:
                self.aborted = True
                self.error(
                    "TS104",
                    f"alias *{_clip(alias.anchor)} refers to a mapping or list that contains it (a recursive alias)",
                    alias.start_mark,
                    path,
                    "an alias must not point at a node it is written inside; write the values out",
                )
                return None, None
            if self.alias is None:
                self.alias = alias
                try:
                    return self.build(node, path)
                finally:
                    self.alias = None
        self.budget.nodes_built += 1
        if self.budget.nodes_built > MAX_NODES:
            return self.abort(
                "TS104",
                f"document expands to more than {MAX_NODES:,} nodes (alias bomb?)",
                node.start_mark,
                path,
                "avoid anchors/aliases that expand recursively; write the values out",
            )
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.tag not in PLAIN_TAGS and node.tag != MERGE_TAG:
            self.error(
                "TS103",
                f"YAML tag {_clip(_short_tag(node.tag))!r} is not allowed",
                node.start_mark,
                path,
                "specs hold plain data only: remove the tag (python/object tags would run code)",
            )
            return None, None
        expected = {MAP_TAG: yaml.MappingNode, SEQ_TAG: yaml.SequenceNode}.get(node.tag, yaml.ScalarNode)
        if not isinstance(node, expected):
            self.error(
                "TS103",
                f"YAML tag {_short_tag(node.tag)!r} cannot be used on a {_node_kind(node)}",
                node.start_mark,
                path,
                "remove the tag: a spec needs no tags",
            )
            return None, None
        if isinstance(node, yaml.ScalarNode):
            return self.build_scalar(node, path)
        if len(path) >= MAX_DEPTH:
            return self.abort(
                "TS120",
                f"mappings and lists are nested more than {MAX_DEPTH} deep (through aliases)",
                node.start_mark,
                path,
                _DEPTH_HINT + "; do not nest aliases inside aliases",
            )
        self.building.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.build_mapping(node, path)
            pairs = [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        finally:
            self.building.discard(id(node))

    def build_mapping(self, node: yaml.MappingNode, path: Path_) -> tuple[dict, dict]:
        value: dict[str, Any] = {}
        redacted: dict[str, Any] = {}
        seen: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if self.aborted:
                break
            key_node = key_node.node if isinstance(key_node, _Alias) else key_node
            if key_node.tag == MERGE_TAG and isinstance(key_node, yaml.ScalarNode):  # `<<: *defaults` merges; explicit keys win
                self.merge(value_node, path, value, redacted)
                continue
            if key_node.tag not in PLAIN_TAGS:
                self.error(
                    "TS103",
                    f"YAML tag {_clip(_short_tag(key_node.tag))!r} is not allowed",
                    key_node.start_mark,
                    path,
                    "specs hold plain data only: remove the tag from the key",
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(
                    "TS116",
                    f"mapping keys must be plain strings, not a {_node_kind(key_node)}",
                    key_node.start_mark,
                    path,
                    "write the key as text (quote it if it starts with [, { or ?)",
                )
                continue
            key = key_node.value
            if len(key) > MAX_KEY_CHARS:
                self.error("TS120", f"key of {len(key):,} characters is longer than {MAX_KEY_CHARS:,}", key_node.start_mark, path, "spec keys are short names")
                continue
            if not self.count_chars(len(key), key_node, path):
                break
            if key in seen:
                first = seen[key]
                self.error(
                    "TS102",
                    f"duplicate key {_clip(key)!r} (first defined at line {first.line + 1})",
                    key_node.start_mark,
                    path + (key,),
                    "YAML keeps only the last value silently; remove one of them",
                )
                continue
            seen[key] = key_node.start_mark
            self.doc.key_positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            value[key], redacted[key] = self.build(value_node, path + (key,))
        return value, redacted

    def merge(self, node: yaml.Node | _Alias, path: Path_, value: dict, redacted: dict) -> None:
        alias = node if isinstance(node, _Alias) else None
        node = alias.node if alias else node
        sources = node.value if isinstance(node, yaml.SequenceNode) else [alias or node]
        for source in sources:
            source_alias = source if isinstance(source, _Alias) else None
            source = source_alias.node if source_alias else source
            if not isinstance(source, yaml.MappingNode):
                self.error("TS116", "`<<` merge needs a mapping or a list of mappings", source.start_mark, path)
                continue
            if source.tag != MAP_TAG:
                self.error("TS103", f"YAML tag {_clip(_short_tag(source.tag))!r} is not allowed", source.start_mark, path, "remove the tag: a spec needs no tags")
                continue
            if id(source) in self.building:
                self.aborted = True
                where = source_alias.start_mark if source_alias else source.start_mark
                self.error(
                    "TS104",
                    "`<<` merges a mapping into itself (a recursive alias)",
                    where,
                    path,
                    "merge only mappings defined outside the one being merged into",
                )
                return
            outer = self.alias
            self.alias = outer or source_alias
            self.building.add(id(source))
            try:
                merged, merged_redacted = self.build_mapping(source, path)
            finally:
                self.building.discard(id(source))
                self.alias = outer
            for k, v in merged.items():
                value.setdefault(k, v)
                redacted.setdefault(k, merged_redacted[k])

    def count_chars(self, n: int, node: yaml.Node, path: Path_) -> bool:
        """Count `n` characters of built text; False (and stop) once the limit is passed."""
        self.budget.chars_built += n
        if self.budget.chars_built > MAX_EXPANDED_CHARS:
            self.abort(
                "TS104",
                f"document expands to more than {MAX_EXPANDED_CHARS:,} characters of text (aliases count each time they are used)",
                node.start_mark,
                path,
                "a spec is a few KB; do not repeat large values through aliases, keep large content in files",
            )
            return False
        return True

    def build_scalar(self, node: yaml.ScalarNode, path: Path_) -> tuple[Any, Any]:
        if not self.count_chars(len(node.value), node, path):
            return None, None
        if node.tag != STR_TAG:
            value = self.construct(node, path)
            return value, value
        text = node.value
        if "${" not in text:
            return text, text
        return self.interpolate(text, node, path), text

    def construct(self, node: yaml.ScalarNode, path: Path_) -> Any:
        """An int/float/bool/null/timestamp scalar as plain data, or None with a diagnostic.

        Its tag is the one YAML resolved or the one written (`!!int abc`): either way the
        text is checked before it is converted, and numbers must be finite and fit in 64 bits."""
        tag, text = node.tag, node.value
        kind = _short_tag(tag)
        if tag == MERGE_TAG:
            return text  # `<<` written as a value is only text
        if tag in (INT_TAG, FLOAT_TAG) and len(text) > MAX_NUMBER_CHARS:
            self.error("TS113", f"number of {len(text):,} characters is out of range", node.start_mark, path, _NUMBER_HINT)
            return None
        if tag == NULL_TAG:
            if text in _NULLS:
                return None
            self.error("TS112", f"{_clip(text)!r} is not a null ({kind})", node.start_mark, path, _tag_hint(kind))
            return None
        try:
            value = {
                INT_TAG: _SCALARS.construct_yaml_int,
                FLOAT_TAG: _SCALARS.construct_yaml_float,
                BOOL_TAG: _SCALARS.construct_yaml_bool,
                TIMESTAMP_TAG: _SCALARS.construct_yaml_timestamp,
            }[tag](node)
        except (ValueError, OverflowError) as exc:
            if tag == TIMESTAMP_TAG and _SCALARS.timestamp_regexp.match(text):
                self.error(
                    "TS116",
                    f"{_clip(text)!r} is not a valid date or time: {exc}",
                    node.start_mark,
                    path,
                    f"quote it ('{_clip(text)}') if it is meant as text",
                )
            else:
                self.error("TS112", f"{_clip(text)!r} is not a valid {kind}", node.start_mark, path, _tag_hint(kind))
            return None
        except (KeyError, AttributeError, TypeError):  # `!!bool maybe`, `!!timestamp x`
            self.error("TS112", f"{_clip(text)!r} is not a valid {kind}", node.start_mark, path, _tag_hint(kind))
            return None
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            if not INT_RANGE[0] <= value <= INT_RANGE[1]:
                self.error("TS113", f"{_clip(text)} is out of range: integers in a spec must fit in 64 bits", node.start_mark, path, _NUMBER_HINT)
                return None
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self.error(
                    "TS113",
                    f"{_clip(text)} is out of range: numbers in a spec must be finite",
                    node.start_mark,
                    path,
                    "write a finite number (null where a field allows no value)",
                )
                return None
            return value + 0.0  # -0.0 is 0.0: the same job must have the same fingerprint
        return value.isoformat() if hasattr(value, "isoformat") else value

    def interpolate(self, text: str, node: yaml.ScalarNode, path: Path_) -> str:
        # Columns inside the scalar are exact for plain and single-line quoted scalars.
        quote = 1 if node.style in ("'", '"') else 0

        def replace(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$${":
                return "${"
            body = match.group(1)
            ref = ENV_REFERENCE.match(body) if body is not None else None
            if ref is None:
                self.error(
                    "TS107",
                    f"malformed interpolation {whole!r}",
                    node.start_mark,
                    path,
                    "write ${env:NAME} or ${env:NAME:-default} (use $${ for a literal ${)",
                    offset=quote + match.start(),
                )
                return whole
            name, default = ref.group(1), ref.group(2)
            if name in self.env:
                resolved = self.env[name]
                secrets.remember(whole, resolved)  # from here on, redacted wherever it would leave the process
                self.doc.interpolations.append((whole, resolved))
            elif default is not None:  # text of the spec itself, not a secret
                resolved = default
            else:
                self.error(
                    "TS106",
                    f"environment variable {name} is not set",
                    node.start_mark,
                    path,
                    f"export {name}=... before running, or give a default: ${{env:{name}:-value}}",
                    offset=quote + match.start(),
                )
                return ""
            self.secrets.update(f"{name}\0{resolved}\0".encode())
            return resolved

        return INTERPOLATION.sub(replace, text)


_SOURCES: OrderedDict[str, tuple[int, list[str]]] = OrderedDict()


def source_lines(file: str) -> list[str] | None:
    """The lines of a spec file as the loader read it, or None if it did not read it (or it
    was refused). Diagnostics echo these; nothing else is ever read to show a source line."""
    entry = _SOURCES.get(file)
    return entry[1] if entry else None


def _remember(file: Path, text: str) -> None:
    key = str(file)
    _SOURCES.pop(key, None)
    _SOURCES[key] = (len(text), text.splitlines())
    total = sum(size for size, _ in _SOURCES.values())
    while total > MAX_REMEMBERED_CHARS and len(_SOURCES) > 1:
        total -= _SOURCES.popitem(last=False)[1][0]


def _forget(file: Path) -> None:
    _SOURCES.pop(str(file), None)


def _read(file: Path) -> bytes | Diagnostic:
    """The bytes of a spec file, refusing (before reading) anything that is not a regular
    file or is larger than MAX_FILE_BYTES. Opened without blocking, so a FIFO cannot hang."""
    at = Location(str(file), 1, 1)
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        return Diagnostic("TS100", f"cannot read file: {exc.strerror}", at)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Diagnostic("TS100", "not a regular file", at, "a spec is a plain .yaml file; devices, pipes and sockets are not read")
        if info.st_size > MAX_FILE_BYTES:
            return Diagnostic(
                "TS120",
                f"spec file is {info.st_size:,} bytes; the limit is {MAX_FILE_BYTES:,} (1 MiB)",
                at,
                "a spec is a few KB of settings; keep data and large text in files the spec points to",
            )
        if info.st_size == 0:
            return b""  # (files in /proc say 0 and have content: they are not specs)
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:  # it grew after fstat
            return Diagnostic("TS120", f"spec file is over {MAX_FILE_BYTES:,} bytes (1 MiB)", at, "a spec is a few KB of settings")
        return b"".join(chunks)
    except OSError as exc:
        return Diagnostic("TS100", f"cannot read file: {exc.strerror}", at)
    finally:
        os.close(fd)


_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32-BE"),
    (b"\xff\xfe\x00\x00", "UTF-32-LE"),
    (b"\xfe\xff", "UTF-16-BE"),
    (b"\xff\xfe", "UTF-16-LE"),
)


def _wide_encoding(data: bytes) -> tuple[str, bool] | None:
    """(encoding, has a byte order mark) for UTF-16 or UTF-32 text: by its byte order mark
    or, without one, by where the NUL bytes of mostly-ASCII text fall."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, True
    sample = data[:4096]
    if len(sample) < 4 or b"\x00" not in sample:
        return None

    def zeros(start: int, step: int) -> float:
        part = sample[start::step]
        return part.count(0) / len(part)

    z4 = [zeros(i, 4) for i in range(4)]
    if min(z4[1:]) > 0.9 and z4[0] < 0.5:
        return "UTF-32-LE", False
    if min(z4[:3]) > 0.9 and z4[3] < 0.5:
        return "UTF-32-BE", False
    even, odd = zeros(0, 2), zeros(1, 2)
    if odd > 0.9 and even < 0.5:
        return "UTF-16-LE", False
    if even > 0.9 and odd < 0.5:
        return "UTF-16-BE", False
    return None


def _decode(file: Path, data: bytes) -> str | Diagnostic:
    wide = _wide_encoding(data)
    if wide:
        name, bom = wide
        return Diagnostic(
            "TS100",
            f"file is {name} text{' (it starts with a byte order mark)' if bom else ''}; spec files must be UTF-8",
            Location(str(file), 1, 1),
            f"convert it, e.g. `iconv -f {name[:-3]}{name[-2:]} -t UTF-8 FILE`, without a byte order mark",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        loc = Location(str(file), *_line_col_of_offset(data, exc.start))
        return Diagnostic("TS100", "file is not valid UTF-8", loc, "save the spec as UTF-8")


def _check_text(file: Path, text: str) -> Diagnostic | None:
    """Characters and line lengths, checked on the whole text before YAML sees it."""
    bad = REFUSED_CHARACTERS.search(text)
    if bad:
        char = bad.group()
        others = len(REFUSED_CHARACTERS.findall(text)) - 1
        name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char, "control character")
        more = f" ({others:,} more in this file)" if others else ""
        return Diagnostic(
            "TS109",
            f"character U+{ord(char):04X} ({name}) is not allowed in a spec{more}",
            Location(str(file), *_line_col(text, bad.start())),
            "remove it: a spec is plain text (a NUL or control character often means a binary or UTF-16 file)",
        )
    lines = text.count("\n") + text.count("\r") - text.count("\r\n") + (not text.endswith(("\n", "\r")))
    if lines > MAX_LINES:
        return Diagnostic(
            "TS120",
            f"spec file has more than {MAX_LINES:,} lines",
            Location(str(file), MAX_LINES + 1, 1),
            "a spec is a few hundred lines at most; keep large content in files the spec points to",
        )
    if len(text) > MAX_LINE_CHARS:
        start = 0
        for match in LINE_BREAK.finditer(text):
            if match.start() - start > MAX_LINE_CHARS:
                break
            start = match.end()
        end = next((m.start() for m in LINE_BREAK.finditer(text, start)), len(text))
        if end - start > MAX_LINE_CHARS:
            return Diagnostic(
                "TS120",
                f"line of {end - start:,} characters is longer than {MAX_LINE_CHARS:,}",
                Location(str(file), *_line_col(text, start)),
                "split long text over several lines with a YAML block scalar (| or >), or keep it in a file",
            )
    return None


_CONTROL_NAMES = {"\x00": "NUL", "\x7f": "DELETE", "\x85": "NEXT LINE"}


def load_documents(
    file: str | Path, env: Mapping[str, str] | None = None, text: str | None = None
) -> tuple[list[LoadedDocument], list[Diagnostic]]:
    """Load every YAML document in `file`. Never raises for bad input: problems come back
    as diagnostics, and documents that had problems are left out. Every limit above is
    checked before the work it bounds; the text of a file that passes the reading checks
    is kept for `source_lines`."""
    file = Path(file)
    env = os.environ if env is None else env
    _forget(file)
    if text is None:
        data = _read(file)
        if isinstance(data, Diagnostic):
            return [], [data]
        decoded = _decode(file, data)
        if isinstance(decoded, Diagnostic):
            return [], [decoded]
        text = decoded
    elif len(text) > MAX_FILE_BYTES:
        return [], [Diagnostic("TS120", f"spec is over {MAX_FILE_BYTES:,} characters (1 MiB)", Location(str(file), 1, 1), "a spec is a few KB of settings")]
    text = text.removeprefix("\ufeff")
    problem = _check_text(file, text)
    if problem:
        return [], [problem]
    _remember(file, text)
    if not text.strip():
        return [], [Diagnostic("TS105", "spec file is empty", Location(str(file), 1, 1), "run `tunespec init` for a starter spec")]
    documents: list[LoadedDocument] = []
    diagnostics: list[Diagnostic] = []
    budget = _Budget()
    loader: _Composer | None = None
    try:
        loader = _Composer(text, file, budget)
        index = 0
        while loader.check_node():
            if index >= MAX_DOCUMENTS:
                diagnostics.append(
                    _limit(file, loader.peek_event().start_mark, f"spec file has more than {MAX_DOCUMENTS} documents", "split the specs over several files")
                )
                break
            node = loader.get_node()
            if isinstance(node, _Alias):
                node = node.node
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG and node.value in _NULLS):
                index += 1
                continue  # an empty document between `---` separators
            doc = LoadedDocument(file, index, None, None)
            found: list[Diagnostic] = []
            builder = _Builder(doc, env, found, budget)
            if not isinstance(node, yaml.MappingNode):
                found.append(
                    Diagnostic(
                        "TS108",
                        f"a spec document must be a mapping of keys, not a {_node_kind(node)}",
                        Location(str(file), node.start_mark.line + 1, node.start_mark.column + 1),
                        "start the document with `apiVersion: tunespec.dev/v1`",
                    )
                )
            else:
                doc.data, doc.redacted = builder.build(node, ())
                doc.secret_digest = builder.secrets.hexdigest()
            diagnostics.extend(found)
            if not found:
                documents.append(doc)
            index += 1
    except _Refused as exc:
        diagnostics.append(exc.diagnostic)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(str(file), mark.line + 1 if mark else None, mark.column + 1 if mark else None)
        problem = _clip(exc.problem or exc.context or "invalid YAML", 300)
        if exc.context and exc.context_mark and exc.problem:
            where = exc.context_mark
            problem += f" ({_clip(exc.context, 300)} at line {where.line + 1}, column {where.column + 1})"
        if "maximum nesting depth" in problem:  # libyaml's own bound on flow nesting
            diagnostics.append(_limit(file, mark, f"mappings and lists are nested more than {MAX_DEPTH} deep", _DEPTH_HINT))
        else:
            at_tab = mark is not None and text[mark.index : mark.index + 1] == "\t"
            hint = "indent with spaces, not tabs" if at_tab else _syntax_hint(problem)
            diagnostics.append(Diagnostic("TS101", f"YAML syntax error: {problem}", loc, hint))
    except yaml.reader.ReaderError as exc:  # a character the text checks let through
        loc = Location(str(file), *_line_col(text, exc.position))
        diagnostics.append(Diagnostic("TS109", f"character U+{exc.character:04X} is not allowed in YAML", loc, "remove it"))
    except yaml.YAMLError as exc:
        diagnostics.append(Diagnostic("TS101", f"YAML error: {_clip(str(exc), 300)}", Location(str(file), 1, 1)))
    finally:
        if loader is not None:
            loader.dispose()
    if not documents and not diagnostics:
        diagnostics.append(Diagnostic("TS105", "spec file has no documents", Location(str(file), 1, 1)))
    return documents, diagnostics


# Reading spec files safely, for the pipeline (tunespec.pipeline.find_spec_files / load_specs)

MAX_PROBLEMS_PER_FILE = 50  # one file reports its first 50 problems, and a TS122 count of the rest


def link_outside(path: Path, roots: list[Path]) -> Diagnostic | None:
    """TS100 if `path` (reached through a symbolic link) resolves outside every root: a link
    in a pull request must not make tunespec read, and quote, a file elsewhere."""
    target = path.resolve()
    if any(target.is_relative_to(root.resolve()) for root in roots):
        return None
    return Diagnostic(
        "TS100",
        f"{path} is a symbolic link to {target}, outside {roots[0]}: not read",
        Location(str(path)),
        "a spec reached through a link must stay inside the folder being checked; copy the file in instead",
    )


def has_link_below(file: Path, root: Path) -> bool:
    """Whether any part of `file` below `root` is a symbolic link."""
    part = file
    while part != root and part != part.parent:
        if part.is_symlink():
            return True
        part = part.parent
    return False


def load_failure(file: Path, exc: BaseException) -> Diagnostic:
    """TS121 for a spec file whose loading raised (a bug): the traceback is saved, as TS004's is."""
    import tempfile
    import traceback

    try:
        fd, log = tempfile.mkstemp(prefix="tunespec-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            traceback.print_exception(exc, file=f)
        saved = f"; the traceback is in {log}"
    except OSError:
        saved = ""
    return Diagnostic(
        "TS121",
        f"could not load this spec file: {type(exc).__name__}: {_clip(str(exc), 200)}",
        Location(str(file), 1, 1),
        f"this is a bug in tunespec (the other files were still checked){saved}",
    )


def limit_problems(file: Path, problems: list[Diagnostic]) -> list[Diagnostic]:
    """The first MAX_PROBLEMS_PER_FILE problems of one file, and one TS122 counting the rest
    by code: thousands of problems in one file would take longer to print than to find."""
    if len(problems) <= MAX_PROBLEMS_PER_FILE:
        return problems
    rest = problems[MAX_PROBLEMS_PER_FILE:]
    counts: dict[str, int] = {}
    for d in rest:
        counts[d.code] = counts.get(d.code, 0) + 1
    by_code = ", ".join(f"{n:,} {code}" for code, n in sorted(counts.items()))
    errors = sum(d.is_error for d in rest)
    summary = Diagnostic(
        "TS122",
        f"{len(rest):,} more problems in this file not shown ({by_code})",
        Location(str(file)),
        "fix the problems shown first",
        Severity.ERROR if errors else Severity.WARNING,
    )
    return problems[:MAX_PROBLEMS_PER_FILE] + [summary]


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _node_kind(node: yaml.Node) -> str:
    return {yaml.MappingNode: "mapping", yaml.SequenceNode: "list", yaml.ScalarNode: "single value"}.get(type(node), "node")


def _syntax_hint(problem: str) -> str | None:
    if "tab" in problem or "'\\t'" in problem:
        return "indent with spaces, not tabs (and use a space, not a tab, after `:`)"
    if "anchor" in problem or "alias" in problem:
        return "define each anchor (&name) once, before the aliases (*name) that use it"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted"
    if "could not find expected ':'" in problem:
        return "each line of a mapping needs `key: value`"
    return "check indentation and quoting on this line and the one before"


def _line_col_of_offset(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1) + 1


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset, counting line breaks as YAML does."""
    line, start = 1, 0
    for match in LINE_BREAK.finditer(text, 0, offset):
        line, start = line + 1, match.end()
    return line, offset - start + 1


def _clip(text: str, limit: int = 80) -> str:
    """`text` cut for a message: a hostile value must not make a megabyte diagnostic."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _tag_hint(kind: str) -> str:
    return f"remove the {kind} tag, or write a value of that type"


_NUMBER_HINT = "integers must fit in 64 bits and numbers are at most 100 characters; quote it if it is text"
