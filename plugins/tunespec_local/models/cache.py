"""Turning a `ResolvedModel` into a Hugging Face folder on disk, once.

A GGUF model is dequantised by transformers on load (about 20 s for a 135M model), so the
result is saved with `save_pretrained` into the model cache, keyed by the GGUF file's
sha256, and every later run loads the folder in well under a second:

    <cache>/models/<sha256 of the gguf>/   config.json, model.safetensors, tokenizer.json, ...

The folder is written under a temporary name and renamed into place, so an interrupted
conversion never leaves a half folder that a later run would trust. The cached folder's
tokenizer.json and chat template also give `validate`/`plan` exact token counts without
importing torch or transformers (see `tunespec_local.tokenizer`).

`cached_folder` is light (stat + hashlib); `materialize` imports transformers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tunespec import ResolvedModel

from tunespec_local.models.resolvers import hub_unreachable

CACHE_ENV = "TUNESPEC_CACHE_DIR"


def cache_root(override: str | None = None) -> Path:
    """`override`, else $TUNESPEC_CACHE_DIR, else $XDG_CACHE_HOME/tunespec (~/.cache/tunespec)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunespec"


def file_sha256(path: Path, cache_dir: Path) -> str:
    """sha256 of a (large) file, remembered by (path, size, mtime) so `validate` pays once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index_file = cache_dir / "models" / "sha256-index.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    index[key] = digest.hexdigest()
    index_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_file.with_name(f".{index_file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, index_file)
    return index[key]


def cached_folder(model: ResolvedModel, cache_dir: Path) -> Path | None:
    """The Hugging Face folder this model loads from, if it exists already (no conversion,
    no download, no heavy import). None: `materialize` has not run yet."""
    if model.kind == "hf_folder":
        return Path(model.location)
    if model.kind == "run":  # another spec's adapter, merged into its base once
        from tunespec_local.models.runs import merged_folder

        folder = merged_folder(model, cache_dir)
        return folder if folder is not None and (folder / "config.json").is_file() else None
    if model.kind == "gguf":
        gguf = Path(model.location) / (model.gguf_file or "")
        folder = cache_dir / "models" / file_sha256(gguf, cache_dir)
        return folder if (folder / "config.json").is_file() else None
    return _hub_snapshot(model, local_only=True)


def materialize(model: ResolvedModel, cache_dir: Path, log=print) -> Path:
    """A Hugging Face folder for `model`: the folder itself, the cached conversion of a
    GGUF file (converting it now if needed), or the hub snapshot (downloading it now)."""
    folder = cached_folder(model, cache_dir)
    if folder is not None:
        return folder
    if model.kind == "gguf":
        return _convert_gguf(model, cache_dir, log)
    if model.kind == "run":
        from tunespec_local.models.runs import merge_run

        return merge_run(model, cache_dir, log)
    return _hub_snapshot(model, local_only=False)  # type: ignore[return-value]


def tokenizer_folder(model: ResolvedModel, cache_dir: Path) -> Path | None:
    """A folder holding the model's tokenizer and chat template, if one exists already: the
    model's own folder, or, for another spec's adapter not merged yet, the adapter folder
    (tunespec saves the tokenizer beside every adapter)."""
    folder = cached_folder(model, cache_dir)
    if folder is None and model.kind == "run" and model.run_id:
        return Path(model.location)
    return folder


def _convert_gguf(model: ResolvedModel, cache_dir: Path, log) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(model.location) / (model.gguf_file or "")
    target = cache_dir / "models" / file_sha256(gguf, cache_dir)
    log(f"converting {gguf.name} to a Hugging Face folder (once; cached in {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with _quiet_gguf_progress():
            tokenizer = AutoTokenizer.from_pretrained(model.location, gguf_file=model.gguf_file)
            hf_model = AutoModelForCausalLM.from_pretrained(model.location, gguf_file=model.gguf_file, dtype=torch.float32)
        # transformers dequantised every tensor on load; the quantizer left attached only
        # refuses to save. The weights are plain float tensors: drop it and save normally.
        hf_model.hf_quantizer = None
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "tunespec-source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": target.name}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first: keep theirs
            if not (target / "config.json").is_file():
                raise
    except Exception as exc:
        from tunespec import Diagnostic, DiagnosticError, Location

        raise DiagnosticError(
            Diagnostic("TS306", f"cannot convert GGUF file {gguf}: {type(exc).__name__}: {exc}", Location(path="model.base"),
                       "transformers converts GGUF files of the architectures it supports (llama, mistral, qwen2, ...); "
                       "use a Hugging Face folder for other models")
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _quiet_gguf_progress():
    """transformers draws its own tqdm bar while dequantising a GGUF file, ignoring its
    progress-bar switch; it would tear through tunespec's display (and fill CI logs), and
    the log line above already says what is happening."""
    import functools

    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)
    if original is not None:
        gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original


def _hub_snapshot(model: ResolvedModel, local_only: bool) -> Path | None:
    """The local snapshot folder of a hub model; downloads it unless `local_only`."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # huggingface_hub comes with transformers; without it there is no hub
        if local_only:
            return None
        raise hub_unreachable(model.location, "huggingface_hub is not installed") from None
    patterns = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]
    try:
        return Path(snapshot_download(model.location, revision=model.revision, allow_patterns=patterns, local_files_only=local_only))
    except LocalEntryNotFoundError as exc:
        if local_only:
            return None
        raise hub_unreachable(model.location, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # network errors, 401/404 (gated or misspelled repo), ...
        if local_only:
            return None
        raise hub_unreachable(model.location, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
