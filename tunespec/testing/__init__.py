"""Helpers for testing tunespec and its plugins. Importing this package is cheap: helpers
import torch/transformers only when called, and the conformance kit (which imports
pytest) only when one of its names is first used."""

from typing import Any

from tunespec.testing.tiny_model import CHAT_TEMPLATE, make_tiny_model, train_tiny_tokenizer, write_tiny_gguf

# Conformance kit names, imported on first use (tunespec.testing.conformance imports pytest).
_KIT = {"BackendConformance", "ConformanceCase", "InvalidCase", "DELETE", "SECRET_ENV", "TRAIN_RECORDS", "train_texts"}
_CLI = {"CliResult", "run_cli"}

__all__ = ["CHAT_TEMPLATE", "make_tiny_model", "train_tiny_tokenizer", "write_tiny_gguf", *sorted(_KIT), *sorted(_CLI)]


def __getattr__(name: str) -> Any:
    if name in _KIT:
        from tunespec.testing import conformance

        return getattr(conformance, name)
    if name in _CLI:
        from tunespec.testing import cli

        return getattr(cli, name)
    raise AttributeError(f"module 'tunespec.testing' has no attribute {name!r}")
