"""Resumable training state: what a checkpoint folder holds, and loading it safely.

Two layouts, chosen by whether the environment shards the model (`TrainEnv.sharded`):

    plain    (one process, DDP)   state.pt: trainable weights, optimizer, schedule, RNG, step;
                                  written by the main worker alone
    sharded  (FSDP)               PyTorch distributed checkpoint (DCP): `.metadata` plus one
                                  `__<rank>_0.distcp` per worker holding that worker's shards of
                                  the trainable weights and optimizer state; state.pt (main
                                  worker) holds the rest: schedule, RNG, step, the optimizer's
                                  non-tensor settings. A checkpoint loads on any number of
                                  workers (DCP reshards).

A checkpoint is a file in a run folder that anyone with write access could replace, so
loading must never run code from it:
  - state.pt is read with `torch.load(weights_only=True)`: tensors and plain containers only;
  - DCP's own reader unpickles `.metadata` with plain `pickle` and loads non-tensor entries
    with `torch.load(weights_only=False)`. tunespec writes tensors only into DCP (everything
    else goes to state.pt), reads `.metadata` with an unpickler that knows only DCP's
    metadata classes, and refuses any non-tensor entry.
A checkpoint that breaks these rules raises `UnsafeCheckpoint` before anything in it runs.
"""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path
from typing import Any

STATE_FILE = "state.pt"
STEP_FILE = "checkpoint.json"
DCP_METADATA = ".metadata"


class UnsafeCheckpoint(ValueError):
    """A checkpoint that would need arbitrary unpickling (tampered) or is damaged."""


# -- saving --------------------------------------------------------------------------------


def save_state(folder: Path, model: Any, optimizer: Any, scheduler: Any, step: int, tokens: int, *, sharded: bool = False,
               is_main: bool = True) -> None:
    """Write a checkpoint of `step` into `folder`. With `sharded`, every worker calls this at
    the same time (it is a collective) and writes its own shard into its own `folder`; the
    environment merges the folders (Ray Train does, when every worker reports one)."""
    import torch

    plain: dict[str, Any] = {}
    if sharded:
        import torch.distributed.checkpoint as dcp

        tensors, plain = _sharded_state(model, optimizer)
        dcp.save(tensors, storage_writer=dcp.FileSystemWriter(str(folder)))
    else:
        plain = {"model": trainable_state(model), "optimizer": optimizer.state_dict()}
    if not is_main:
        return
    state = {
        "step": step,
        "tokens": tokens,
        **plain,
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch.save(state, Path(folder) / STATE_FILE)
    (Path(folder) / STEP_FILE).write_text(json.dumps({"step": step, "sharded": sharded}))


def trainable_state(model: Any) -> dict[str, Any]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def _sharded_options(loading: bool = False) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Frozen weights (a LoRA base) are reloaded from the model folder, never checkpointed;
    # the flat optimizer layout keys every entry by parameter name, so DCP can reshard it.
    # Loading is not strict, because the frozen weights are absent on purpose; a trainable
    # weight missing from the checkpoint still fails, in `dcp.load`, which fills every key
    # of the layout it is given.
    return StateDictOptions(ignore_frozen_params=True, flatten_optimizer_state_dict=True, strict=not loading)


def _sharded_state(model: Any, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors for DCP, the optimizer's non-tensor entries for state.pt). A collective."""
    import torch
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer, options=_sharded_options())
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    tensors.update({f"optim.{k}": v for k, v in optim_state.items() if isinstance(v, torch.Tensor)})
    settings = {k: v for k, v in optim_state.items() if not isinstance(v, torch.Tensor)}
    return tensors, {"optimizer_settings": settings}


# -- loading -------------------------------------------------------------------------------


def restore_state(folder: Path | None, model: Any, optimizer: Any, scheduler: Any, *, sharded: bool = False) -> tuple[int, int]:
    """Load a checkpoint into the freshly built (and wrapped) model, optimizer and schedule;
    returns its step and the tokens trained up to it. (0, 0) without a checkpoint."""
    if folder is None:
        return 0, 0
    import torch

    folder = Path(folder)
    state = _load_plain(folder / STATE_FILE)
    has_shards = (folder / DCP_METADATA).is_file()
    if has_shards != sharded:
        raise ValueError(
            f"checkpoint {folder} was written {'with' if has_shards else 'without'} FSDP sharding and cannot resume a run "
            f"{'without' if has_shards else 'with'} it"
        )
    if sharded:
        _restore_sharded(folder, model, optimizer, state)
    else:
        missing = set(trainable_state(model)) - set(state["model"])
        if missing:
            raise ValueError(f"checkpoint {folder} does not match the model (missing {sorted(missing)[:3]}...)")
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), int(state.get("tokens", 0))


def _load_plain(path: Path) -> dict[str, Any]:
    import torch

    try:
        # weights_only: tensors and plain containers only; unpickling arbitrary objects
        # from a replaced file would run their code.
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise _unsafe(path, exc) from None


def _restore_sharded(folder: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """DCP load into this worker's shards (a collective), then hand them to model and optimizer."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    check_metadata(folder)
    tensors, _ = _sharded_state(model, optimizer)  # the layout to fill; materialises optimizer state
    try:
        dcp.load(tensors, storage_reader=safe_reader(folder), planner=tensor_only_planner())
    except Exception as exc:  # DCP wraps every rank's failure in a CheckpointException
        refused = _refusal(exc)
        if refused is not None:
            raise _unsafe(folder / DCP_METADATA, refused) from None
        raise
    model_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    optim_state = {k.removeprefix("optim."): v for k, v in tensors.items() if k.startswith("optim.")}
    optim_state.update(state.get("optimizer_settings", {}))
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state,
                   options=_sharded_options(loading=True))


def check_metadata(folder: Path) -> None:
    """Refuse a DCP `.metadata` that is not what tunespec writes, before DCP opens it (see
    `read_metadata`). DCP reads it again through `safe_reader`, with the same check; this
    one comes first because DCP reports a failed read as text, losing what the failure was."""
    path = Path(folder) / DCP_METADATA
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise _unsafe(path, exc) from None
    with stream:
        read_metadata(stream, path)


def read_metadata(stream: Any, path: Path) -> Any:
    """DCP's `Metadata` from `stream`: read through the allow-list unpickler, it must be a
    metadata record naming tensors only; anything else raises `UnsafeCheckpoint` for `path`."""
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata

    try:
        metadata = _MetadataUnpickler(stream).load()
    except Exception as exc:  # untrusted bytes: any failure to parse them is a damaged file
        raise _unsafe(path, exc) from None
    if not isinstance(metadata, Metadata) or not isinstance(metadata.state_dict_metadata, dict):
        raise _unsafe(path, ValueError(f"not a checkpoint metadata record but {type(metadata).__name__}"))
    non_tensors = sorted(k for k, v in metadata.state_dict_metadata.items() if isinstance(v, BytesStorageMetadata))
    if non_tensors:
        raise _unsafe(path, ValueError(f"entry {non_tensors[0]!r} is not a tensor; tunespec never writes such entries"))
    return metadata


def _refusal(exc: BaseException) -> BaseException | None:
    """The unsafe-content error inside what DCP raised (it collects each rank's failure)."""
    if isinstance(exc, (UnsafeCheckpoint, pickle.UnpicklingError, EOFError)):
        return exc
    failures = getattr(exc, "failures", None) or {}
    for failure in failures.values():
        inner = failure[0] if isinstance(failure, tuple) else failure
        found = _refusal(inner) if isinstance(inner, BaseException) else None
        if found is not None:
            return found
    return _refusal(exc.__cause__) if exc.__cause__ is not None else None


def _unsafe(path: Path, exc: BaseException) -> UnsafeCheckpoint:
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return UnsafeCheckpoint(
        f"checkpoint {path} cannot be loaded safely ({first}): it holds something other than "
        "tensors and plain values, or it is damaged. Nothing in it was run. `tunespec apply` again starts a new run"
    )


# -- DCP, tensors only ------------------------------------------------------------------------

# What DCP's `.metadata` pickle legitimately refers to: its own metadata records, torch's
# Size/dtype/layout, and a path. Anything else (os.system, builtins.eval, ...) is refused.
_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata", "MetadataIndex", "TensorProperties", "ChunkStorageMetadata", "TensorStorageMetadata",
        "BytesStorageMetadata", "StorageMeta", "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath", "Path"},
    "collections": {"OrderedDict"},
}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import torch

        if name in _METADATA_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from the checkpoint metadata")


def safe_reader(folder: Path) -> Any:
    """DCP's file reader with `.metadata` unpickled through an allow-list (see module docstring)."""
    return _safe_reader_class()(str(folder))


def tensor_only_planner() -> Any:
    """DCP's load planner, refusing the non-tensor ("bytes") entries it would fully unpickle."""
    return _tensor_only_planner_class()()


@functools.lru_cache(maxsize=None)
def _safe_reader_class() -> type:
    # Defined on first use: importing this module must not import torch.
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeFileSystemReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            path = self._get_metadata_path(kwargs.get("rank"))
            with self.fs.create_stream(path, "rb") as stream:
                metadata = read_metadata(stream, Path(path))
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeFileSystemReader


@functools.lru_cache(maxsize=None)
def _tensor_only_planner_class() -> type:
    from torch.distributed.checkpoint import DefaultLoadPlanner

    class TensorOnlyLoadPlanner(DefaultLoadPlanner):
        def load_bytes(self, read_item: Any, value: Any) -> None:
            raise UnsafeCheckpoint(
                f"entry {read_item.dest_index.fqn!r} is not a tensor: tunespec never writes such entries, so the "
                "checkpoint was changed after it was written"
            )

    return TensorOnlyLoadPlanner
