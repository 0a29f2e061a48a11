"""Helpers for testing tunespec and its plugins. Importing this package is cheap: helpers
import torch/transformers only when called."""

from tunespec.testing.tiny_model import CHAT_TEMPLATE, make_tiny_model, train_tiny_tokenizer

__all__ = ["CHAT_TEMPLATE", "make_tiny_model", "train_tiny_tokenizer"]
