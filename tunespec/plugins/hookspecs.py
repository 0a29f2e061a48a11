"""Every hook tunespec calls, declared in one place and documented by its docstring.

A plugin is a module (or object) with functions named like these hooks and marked with
``@tunespec.hookimpl``. It is found through the ``tunespec`` entry-point group::

    [project.entry-points.tunespec]
    mybackend = "my_package.plugin"

Hooks only *register* things: they must return quickly and must not import heavy
libraries (torch, ray, google.*). Heavy imports belong inside the registered objects'
methods, so that ``tunespec plugins``, ``validate`` and ``plan`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pluggy

if TYPE_CHECKING:
    from tunespec.backend import Backend
    from tunespec.data.formats import DataFormat
    from tunespec.data.sources import DataSource
    from tunespec.models import ModelResolver
    from tunespec.tracking import Tracker

hookspec = pluggy.HookspecMarker("tunespec")
hookimpl = pluggy.HookimplMarker("tunespec")


@hookspec
def tunespec_backends() -> "Sequence[Backend]":
    """Return the backends this plugin provides.

    Each is an instance of a `tunespec.Backend` subclass with a unique ``name`` (the value
    users write in ``backend: {name: ...}``) and a ``config_model``: the pydantic model of
    that backend's own options in the spec's ``backend`` block. The config model becomes
    part of spec validation and of ``tunespec schema``. Its ``requires`` names the modules
    it needs at run time; ``tunespec plugins`` reports them and ``install_hint`` when any
    is missing.
    """


@hookspec
def tunespec_data_sources() -> "Sequence[DataSource]":
    """Return data sources: objects that open a location (a local path, ``gs://...``, or
    another URI scheme) and stream its bytes. A source claims locations through
    ``handles(path)``; the first source that claims a location reads it."""


@hookspec
def tunespec_data_formats() -> "Sequence[DataFormat]":
    """Return data formats: objects that recognise a record (``detect``) and convert it
    into tunespec's conversation model (``to_conversation``), reporting problems as
    diagnostics located by JSON path."""


@hookspec
def tunespec_model_resolvers() -> "Sequence[ModelResolver]":
    """Return model resolvers: objects that turn a spec's ``model.base`` string (a folder,
    a hub id, a GGUF file, ``package:...``) into a `ResolvedModel` a trainer can load.
    The first resolver whose ``handles(ref)`` is true resolves it."""


@hookspec
def tunespec_trackers() -> "Sequence[Tracker]":
    """Return experiment trackers: instances of a `tunespec.tracking.Tracker` subclass with
    a unique ``name`` (what specs write in ``tracking: [{name: ...}]``), a ``config_model``
    for the rest of that entry, and ``send(run, config, sent)``, called once for every
    published run whose spec names the tracker, for every backend. ``send`` imports its
    tracking library; a failure is a warning and the run's manifest records what was not sent.
    """
