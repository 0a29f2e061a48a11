"""The training loop shared by every torch backend (local, Ray).

Public seam::

    from tunespec_local.training import TrainConfig, TrainData, TrainEnv, LocalEnv, train

    result = train(config, data, env)   # -> TrainResult

`TrainConfig` and `TrainData` are plain picklable values (ship them to workers);
`TrainEnv` is the small interface a backend implements (see env.py); `LocalEnv` is the
in-process one. Importing this package does not import torch.
"""

from tunespec_local.training.config import TrainConfig, TrainData
from tunespec_local.training.env import LocalEnv, TorchrunEnv, TrainEnv, default_device, torchrun_world_size
from tunespec_local.training.loop import TrainResult, save_outputs, train
from tunespec_local.training.model import build_model

__all__ = [
    "LocalEnv", "TorchrunEnv", "TrainConfig", "TrainData", "TrainEnv", "TrainResult", "build_model", "default_device", "save_outputs",
    "torchrun_world_size", "train",
]
