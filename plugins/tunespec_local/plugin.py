"""Entry point of the `local` backend (`[project.entry-points.tunespec] local = "tunespec_local.plugin"`).

Registers the backend and the model resolvers. Imports nothing heavy: torch,
transformers and peft load only when a run starts.
"""

from __future__ import annotations

from tunespec import hookimpl

from tunespec_local.backend import LocalBackend
from tunespec_local.models.resolvers import RESOLVERS


@hookimpl
def tunespec_backends():
    return [LocalBackend()]


@hookimpl
def tunespec_model_resolvers():
    return list(RESOLVERS)
