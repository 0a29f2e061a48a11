"""Safe YAML loading that remembers where everything is.

The loader composes YAML into nodes (never constructing Python objects from tags), then
builds plain data itself so that it can:

- record the line and column of every key and value (`positions`, `key_positions`);
- reject duplicate keys, object-building or unknown tags, and alias bombs;
- interpolate `${env:NAME}` / `${env:NAME:-default}` in strings, while keeping a
  `redacted` copy where the reference stays in place of the value (that copy is what
  state, spec.yaml and manifests store, so secrets never reach them).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from tunespec import secrets
from tunespec.diagnostics import Diagnostic, Diagnostics, Location

Path_ = tuple  # a field path like ("data", "train", 0, "path")

# Standard YAML 1.1 tags that build plain data; anything else (!!python/..., !Ref) is refused.
PLAIN_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}
MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_NODES = 20_000  # a spec has hundreds of nodes; more through aliases is an alias bomb
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


class _Builder:
    """Turns one composed YAML document into plain data plus positions, collecting problems."""

    def __init__(self, doc: LoadedDocument, env: Mapping[str, str], diagnostics: list[Diagnostic]):
        self.doc = doc
        self.env = env
        self.diagnostics = diagnostics
        self.nodes_built = 0
        self.secrets = hashlib.sha256()
        self.aborted = False

    def error(self, code: str, message: str, mark: Any, path: Path_, hint: str | None = None, offset: int = 0) -> None:
        loc = Location(str(self.doc.file), mark.line + 1, mark.column + 1 + offset, _dotted(path) or None)
        self.diagnostics.append(Diagnostic(code, message, loc, hint))

    def build(self, node: yaml.Node, path: Path_) -> tuple[Any, Any]:
        """Return (value, redacted value) for `node`."""
        if self.aborted:
            return None, None
        self.nodes_built += 1
        if self.nodes_built > MAX_NODES:
            self.aborted = True
            self.error(
                "TS104",
                f"document expands to more than {MAX_NODES} nodes (alias bomb?)",
                node.start_mark,
                path,
                "avoid anchors/aliases that expand recursively; write the values out",
            )
            return None, None
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.tag not in PLAIN_TAGS and node.tag != MERGE_TAG:
            self.error(
                "TS103",
                f"YAML tag {_short_tag(node.tag)!r} is not allowed",
                node.start_mark,
                path,
                "specs hold plain data only: remove the tag (python/object tags would run code)",
            )
            return None, None
        if isinstance(node, yaml.MappingNode):
            return self.build_mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            pairs = [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        return self.build_scalar(node, path)

    def build_mapping(self, node: yaml.MappingNode, path: Path_) -> tuple[dict, dict]:
        value: dict[str, Any] = {}
        redacted: dict[str, Any] = {}
        seen: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *defaults` merges; explicit keys win
                self.merge(value_node, path, value, redacted)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error("TS116", "mapping keys must be plain strings", key_node.start_mark, path)
                continue
            key = key_node.value
            if key in seen:
                first = seen[key]
                self.error(
                    "TS102",
                    f"duplicate key {key!r} (first defined at line {first.line + 1})",
                    key_node.start_mark,
                    path + (key,),
                    "YAML keeps only the last value silently; remove one of them",
                )
                continue
            seen[key] = key_node.start_mark
            self.doc.key_positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            value[key], redacted[key] = self.build(value_node, path + (key,))
        return value, redacted

    def merge(self, node: yaml.Node, path: Path_, value: dict, redacted: dict) -> None:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.error("TS116", "`<<` merge needs a mapping or a list of mappings", source.start_mark, path)
                continue
            merged, merged_redacted = self.build_mapping(source, path)
            for k, v in merged.items():
                value.setdefault(k, v)
                redacted.setdefault(k, merged_redacted[k])

    def build_scalar(self, node: yaml.ScalarNode, path: Path_) -> tuple[Any, Any]:
        if node.tag != "tag:yaml.org,2002:str":
            return _construct_plain(node), _construct_plain(node)
        text = node.value
        if "${" not in text:
            return text, text
        return self.interpolate(text, node, path), text

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


def _construct_plain(node: yaml.ScalarNode) -> Any:
    """Construct an int/float/bool/null/timestamp scalar with the safe constructor."""
    value = yaml.SafeLoader("").construct_object(node)
    return value.isoformat() if hasattr(value, "isoformat") else value


def load_documents(
    file: str | Path, env: Mapping[str, str] | None = None, text: str | None = None
) -> tuple[list[LoadedDocument], list[Diagnostic]]:
    """Load every YAML document in `file`. Never raises for bad input: problems come back
    as diagnostics, and documents that had problems are left out."""
    file = Path(file)
    env = os.environ if env is None else env
    diagnostics: list[Diagnostic] = []
    if text is None:
        try:
            text = file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            loc = Location(str(file), *_line_col_of_offset(file.read_bytes(), exc.start))
            return [], [Diagnostic("TS100", "file is not valid UTF-8", loc, "save the spec as UTF-8")]
        except OSError as exc:
            return [], [Diagnostic("TS100", f"cannot read file: {exc.strerror}", Location(str(file)))]
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return [], [Diagnostic("TS105", "spec file is empty", Location(str(file), 1, 1), "run `tunespec init` for a starter spec")]
    documents: list[LoadedDocument] = []
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
                index += 1
                continue  # an empty document between `---` separators
            doc = LoadedDocument(file, index, None, None)
            found: list[Diagnostic] = []
            builder = _Builder(doc, env, found)
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
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(str(file), mark.line + 1 if mark else None, mark.column + 1 if mark else None)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem:
            where = exc.context_mark
            problem += f" ({exc.context} at line {where.line + 1}, column {where.column + 1})"
        diagnostics.append(Diagnostic("TS101", f"YAML syntax error: {problem}", loc, _syntax_hint(problem)))
    except yaml.YAMLError as exc:
        diagnostics.append(Diagnostic("TS101", f"YAML error: {exc}", Location(str(file))))
    finally:
        loader.dispose()
    if not documents and not diagnostics:
        diagnostics.append(Diagnostic("TS105", "spec file has no documents", Location(str(file), 1, 1)))
    return documents, diagnostics


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _node_kind(node: yaml.Node) -> str:
    return {yaml.SequenceNode: "list", yaml.ScalarNode: "single value"}.get(type(node), "node")


def _syntax_hint(problem: str) -> str | None:
    if "tab" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted"
    if "could not find expected ':'" in problem:
        return "each line of a mapping needs `key: value`"
    return "check indentation and quoting on this line and the one before"


def _line_col_of_offset(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1) + 1
