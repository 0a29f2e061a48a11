"""tunespec: a tuning-spec compiler.

This module is the public API that plugins (built-in and third-party) import. It stays
light: importing it never imports torch, ray or google.*.
"""

from tunespec.backend import Backend, FieldMapping, Plan, RunContext, RunResult
from tunespec.diagnostics import Diagnostic, DiagnosticError, Diagnostics, Location, Severity
from tunespec.models import ModelResolver, ResolvedModel, resolve_model
from tunespec.plugins.hookspecs import hookimpl
from tunespec.plugins.host import plugin_host
from tunespec.progress import Progress
from tunespec.spec.model import TuningJob
from tunespec.spec.resolve import ResolvedSpec

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "Diagnostic",
    "DiagnosticError",
    "Diagnostics",
    "FieldMapping",
    "Location",
    "ModelResolver",
    "Plan",
    "Progress",
    "ResolvedModel",
    "ResolvedSpec",
    "RunContext",
    "RunResult",
    "Severity",
    "TuningJob",
    "__version__",
    "hookimpl",
    "plugin_host",
    "resolve_model",
]
