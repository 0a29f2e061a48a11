"""tunespec: a tuning-spec compiler.

This module is the public API that plugins (built-in and third-party) import. It stays
light: importing it never imports torch, ray or google.*, and it imports nothing at all
until a name is used (so the CLI can take Ctrl-C from its first line, and `tunespec
--version` costs nothing).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the CLI's first milliseconds)

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "Backend": "tunespec.backend",
    "FieldMapping": "tunespec.backend",
    "Plan": "tunespec.backend",
    "RunContext": "tunespec.backend",
    "RunResult": "tunespec.backend",
    "Diagnostic": "tunespec.diagnostics",
    "DiagnosticError": "tunespec.diagnostics",
    "Diagnostics": "tunespec.diagnostics",
    "Location": "tunespec.diagnostics",
    "Severity": "tunespec.diagnostics",
    "ModelResolver": "tunespec.models",
    "ResolvedModel": "tunespec.models",
    "resolve_model": "tunespec.models",
    "hookimpl": "tunespec.plugins.hookspecs",
    "plugin_host": "tunespec.plugins.host",
    "Progress": "tunespec.progress",
    "RunRecord": "tunespec.state",
    "TuningJob": "tunespec.spec.model",
    "ResolvedSpec": "tunespec.spec.resolve",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tunespec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from typing import Any

    from tunespec.backend import Backend, FieldMapping, Plan, RunContext, RunResult
    from tunespec.diagnostics import Diagnostic, DiagnosticError, Diagnostics, Location, Severity
    from tunespec.models import ModelResolver, ResolvedModel, resolve_model
    from tunespec.plugins.hookspecs import hookimpl
    from tunespec.plugins.host import plugin_host
    from tunespec.progress import Progress
    from tunespec.state import RunRecord
    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec
