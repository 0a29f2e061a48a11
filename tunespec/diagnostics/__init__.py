"""Diagnostics: every problem anywhere in the pipeline, located and explained.

A `Diagnostic` has a stable code (see `codes.py`), a severity, a message saying what is
wrong, a hint saying how to fix it, and a `Location` (spec file:line:col, or data
file:line, plus the field or JSON path). Pipeline steps collect them in a `Diagnostics`
list; a step that cannot go on raises `DiagnosticError`. The CLI renders them, so no user
error ever ends in a Python traceback.
"""

from tunespec.diagnostics.codes import CODES
from tunespec.diagnostics.model import (
    Diagnostic,
    DiagnosticError,
    Diagnostics,
    Location,
    Severity,
)

__all__ = ["CODES", "Diagnostic", "DiagnosticError", "Diagnostics", "Location", "Severity"]
