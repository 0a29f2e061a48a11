"""tunespec's own data plugin: the built-in sources and formats, registered through the
same hooks a third-party plugin uses (the plugin host loads this module first)."""

from __future__ import annotations

from tunespec.data.formats import BUILTIN_FORMATS
from tunespec.data.preference import PREFERENCE_FORMATS
from tunespec.data.sources import BUILTIN_SOURCES
from tunespec.plugins.hookspecs import hookimpl


@hookimpl
def tunespec_data_sources():
    return BUILTIN_SOURCES


@hookimpl
def tunespec_data_formats():
    # Preference formats first: a Gemini pair also has the `contents` a Gemini conversation has.
    return [*PREFERENCE_FORMATS, *BUILTIN_FORMATS]
