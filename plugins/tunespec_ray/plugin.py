"""Entry point of the `ray` backend plugin (entry-point group `tunespec`, name `ray`).

Registers the backend, and the local backend's model resolvers when the `local` plugin is
disabled: the Ray workers run the local backend's loop on the same kinds of model
references, so `backend: {name: ray}` keeps working with `TUNESPEC_DISABLE_PLUGINS=local`
(e.g. on a CI runner that must never train locally). Imports only tunespec's public API
and light modules: Ray, torch and the training loop load inside `apply`.
"""

from __future__ import annotations

import os

from tunespec import hookimpl

from tunespec_ray.backend import RayBackend


@hookimpl
def tunespec_backends():
    return [RayBackend()]


@hookimpl
def tunespec_model_resolvers():
    disabled = {name.strip() for name in os.environ.get("TUNESPEC_DISABLE_PLUGINS", "").split(",")}
    if "local" not in disabled:
        return []  # the local plugin registers them itself
    from tunespec_local.models.resolvers import RESOLVERS

    return list(RESOLVERS)
