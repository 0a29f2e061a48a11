"""Entry point of the `vertex` backend (``[project.entry-points.tunespec] vertex = ...``).

Registering costs only pydantic models and tunespec's own API: google.cloud.* is imported
inside `apply`, `status` and `cancel`, so `tunespec validate`/`plan` stay fast.
"""

from tunespec import hookimpl

from tunespec_vertex.backend import VertexBackend


@hookimpl
def tunespec_backends():
    return [VertexBackend()]
