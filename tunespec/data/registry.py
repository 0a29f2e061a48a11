"""The data sources and formats in use: built-ins plus whatever plugins registered."""

from __future__ import annotations

from tunespec.data.formats import DataFormat
from tunespec.data.sources import DataSource
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location


def data_sources() -> list[DataSource]:
    from tunespec.plugins.host import plugin_host

    return list(plugin_host().data_sources())


def data_formats() -> list[DataFormat]:
    from tunespec.plugins.host import plugin_host

    return list(plugin_host().data_formats())


def source_for(path: str, sources: list[DataSource], where: Location | None = None) -> DataSource:
    for source in sources:
        if source.handles(path):
            return source
    scheme = path.split("://", 1)[0]
    raise DiagnosticError(
        Diagnostic("TS200", f"no data source reads {scheme}:// locations", where or Location(), "install the plugin that provides it (see `tunespec plugins`)")
    )


def format_named(name: str, formats: list[DataFormat], where: Location | None = None) -> DataFormat:
    for fmt in formats:
        if fmt.name == name:
            return fmt
    raise DiagnosticError(
        Diagnostic(
            "TS204",
            f"unknown data format {name!r}",
            where or Location(),
            f"known formats: auto, {', '.join(f.name for f in formats)}",
        )
    )
