"""`model.base: run:<spec>`: another spec's result as the base model of this one.

tunespec resolves the reference (`tunespec.chains`) to a published, succeeded run; this
module turns that run into a Hugging Face folder, reading it only through the artifact
contract (manifest.json, `adapter/` or `model/`):

- a full run published `model/`: that folder is the base model, as it is;
- a peft run published `adapter/`: the adapter is merged into the base model it was
  trained on (named by peft in `adapter/adapter_config.json`) and the merged model saved,
  once, to `<cache>/models/run-<run id>/` (temp folder + rename). A run is never changed
  once published, so its id names the merged weights for good. If that base folder is
  gone (a cleared cache) and the upstream itself built on a run (`outputs.upstream` in
  its manifest), that run is merged again first, so chains rebuild themselves.

A preference run built on a supervised run therefore starts from the supervised model,
and "the base with adapters disabled", its DPO reference, is exactly that model: what
Google and TRL recommend (preference tuning on top of supervised tuning).

A run that published neither (a managed backend's tuned model, which lives in the
service) cannot be a local base model: TS301 says so.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunespec import Diagnostic, DiagnosticError, Location, ResolvedModel, ResolvedSpec

RUN_CACHE_PREFIX = "run-"


def resolve_run(spec: ResolvedSpec) -> ResolvedModel:
    """The `ResolvedModel` for a spec whose `model.base` is `run:<spec>` (linked by the pipeline)."""
    from tunespec.chains import PendingUpstream, UpstreamRun

    ref = spec.job.model.base
    upstream = spec.upstream
    if isinstance(upstream, PendingUpstream):
        return ResolvedModel(ref=ref, kind="run", location=ref)
    if not isinstance(upstream, UpstreamRun):
        raise DiagnosticError(Diagnostic("TS125", f"`{ref}` was not resolved to a run", spec.locate("model.base"),
                                         "run `tunespec plan` or `apply`, which resolve run: references through the state database"))
    path = upstream.output_path
    if path is None:
        if upstream.tuned_model:
            raise DiagnosticError(Diagnostic(
                "TS301", f"run:{upstream.spec_name} ran on {upstream.backend}: its tuned model ({upstream.tuned_model}) lives in that service "
                "and cannot be trained on this machine", spec.locate("model.base"),
                f"build on it with the same backend ({upstream.backend}), or run {upstream.spec_name} locally"))
        raise DiagnosticError(Diagnostic("TS306", f"run {upstream.run_id} of {upstream.spec_name} published no adapter/ or model/ on this machine",
                                         spec.locate("model.base"), f"apply {upstream.spec_name} with a backend that publishes them (local, ray)"))
    if upstream.output == "model":
        return ResolvedModel(ref=ref, kind="hf_folder", location=str(path))
    return ResolvedModel(ref=ref, kind="run", location=str(path), run_id=upstream.run_id)


def merged_folder(model: ResolvedModel, cache_dir: Path) -> Path | None:
    """Where the merged model of a `run` model lives (whether it exists yet or not)."""
    return cache_dir / "models" / f"{RUN_CACHE_PREFIX}{model.run_id}" if model.run_id else None


def merge_run(model: ResolvedModel, cache_dir: Path, log: Any = print) -> Path:
    """The upstream run's adapter merged into its base, saved once in the cache."""
    target = merged_folder(model, cache_dir)
    if target is None:
        raise DiagnosticError(Diagnostic("TS125", f"{model.ref}: the run it builds on does not exist yet", Location(path="model.base")))
    if (target / "config.json").is_file():
        return target
    adapter = Path(model.location)
    base = base_of_adapter(adapter, cache_dir, log)
    log(f"merging the adapter of {model.ref} (run {model.run_id}) into its base model (once; cached in {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _merge(adapter, base, tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process merged the same run first: keep theirs
            if not (target / "config.json").is_file():
                raise
    except DiagnosticError:
        raise
    except Exception as exc:
        raise DiagnosticError(Diagnostic("TS306", f"cannot merge the adapter of {model.ref} into {base}: {type(exc).__name__}: {exc}",
                                         Location(path="model.base"), "check the upstream run with `tunespec verify`")) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _merge(adapter: Path, base: Path | str, out: Path) -> None:
    import torch
    from peft import PeftModel

    from tunespec_local.training.loop import TOKENIZER_FILES
    from tunespec_local.training.model import model_class_of

    merged = PeftModel.from_pretrained(model_class_of(base).from_pretrained(base, dtype=torch.float32), adapter).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(out)
    for name in TOKENIZER_FILES:  # the adapter carries the tokenizer and chat template it was trained with
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, out / name)
    (out / "tunespec-source.json").write_text(json.dumps({"adapter": str(adapter), "base": str(base)}))


def base_of_adapter(adapter: Path, cache_dir: Path, log: Any = print) -> Path | str:
    """The model an adapter was trained on: the folder (or hub id) peft recorded in
    adapter_config.json; if that folder is gone and the adapter's run built on another
    run, that run merged again (chains rebuild themselves after a cleared cache)."""
    from tunespec import secrets
    from tunespec.artifacts import read_manifest
    from tunespec_local.models.resolvers import HUB_ID

    try:
        recorded = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as exc:
        raise DiagnosticError(Diagnostic("TS306", f"{adapter}/adapter_config.json does not name the adapter's base model ({exc})",
                                         Location(path="model.base"), "the adapter was not written by peft's save_pretrained")) from None
    recorded, _ = secrets.expand(str(recorded))
    if (Path(recorded) / "config.json").is_file():
        return Path(recorded)
    manifest = read_manifest(adapter.parent)
    upstream = (manifest.outputs.get("upstream") if manifest is not None else None) or {}
    if upstream.get("run_id") and upstream.get("run_dir") and (Path(upstream["run_dir"]) / "adapter").is_dir():
        earlier = ResolvedModel(ref=f"run:{upstream.get('spec')}", kind="run", location=str(Path(upstream["run_dir"]) / "adapter"), run_id=upstream["run_id"])
        return merge_run(earlier, cache_dir, log)
    if HUB_ID.match(recorded) and not Path(recorded).is_absolute():
        return recorded
    raise DiagnosticError(Diagnostic("TS306", f"the base model the adapter in {adapter} was trained on ({recorded}) is not on this machine",
                                     Location(path="model.base"), "apply the upstream spec again here, so its base model is materialised"))
