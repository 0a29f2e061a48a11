"""Entry point of the `ray` backend plugin (entry-point group `tunespec`, name `ray`).

Registers the backend and nothing else. Imports only tunespec's public API and this
package's light modules: Ray, torch and the training loop load inside `apply`.
"""

from __future__ import annotations

from tunespec import hookimpl

from tunespec_ray.backend import RayBackend


@hookimpl
def tunespec_backends():
    return [RayBackend()]
