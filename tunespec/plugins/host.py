"""The plugin host: a thin pluggy manager that finds plugins and answers what they registered.

Plugins come from the ``tunespec`` entry-point group (built-in backends included) plus
tunespec's own data plugin. A plugin that fails to import is recorded, shown by
``tunespec plugins``, and never breaks other commands. Plugins can be disabled by name
with ``TUNESPEC_DISABLE_PLUGINS=name,name``, and extra plugin modules loaded by import path
with ``TUNESPEC_PLUGINS=my_pkg.plugin`` (for developing a plugin before packaging it).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import cache
from importlib.machinery import PathFinder
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import pluggy

from tunespec.plugins import hookspecs

if TYPE_CHECKING:
    from tunespec.backend import Backend

ENTRY_POINT_GROUP = "tunespec"
DISABLE_ENV = "TUNESPEC_DISABLE_PLUGINS"
# Extra plugin modules by import path, for developing a plugin before packaging it.
LOAD_ENV = "TUNESPEC_PLUGINS"
BUILTIN_MODULES = {"tunespec.data": "tunespec.data.builtin"}


@dataclass
class PluginInfo:
    """What `tunespec plugins` shows for one plugin."""

    name: str
    module: str
    version: str | None = None
    status: str = "ok"  # ok | unavailable | broken | disabled
    error: str | None = None
    registers: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    install_hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


class PluginHost:
    def __init__(
        self,
        entry_points_: list[EntryPoint] | None = None,
        disabled: set[str] | None = None,
        extra_plugins: dict[str, Any] | None = None,
    ):
        """entry_points_: override discovery (tests); extra_plugins: name -> plugin object or
        module registered after the discovered ones (tests and the conformance kit)."""
        self.pm = pluggy.PluginManager("tunespec")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        if disabled is None:
            disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        for name, module in BUILTIN_MODULES.items():
            self._load(name, module, version=None, disabled=disabled, loader=lambda m=module: importlib.import_module(m))
        eps = entry_points_ if entry_points_ is not None else list(entry_points(group=ENTRY_POINT_GROUP))
        for ep in eps:
            version = ep.dist.version if ep.dist is not None else None
            self._load(ep.name, ep.value, version=version, disabled=disabled, loader=ep.load)
        for module in filter(None, (m.strip() for m in os.environ.get(LOAD_ENV, "").split(","))):
            self._load(module, module, version=distribution_version(module), disabled=disabled, loader=lambda m=module: importlib.import_module(m))
        for name, plugin in (extra_plugins or {}).items():
            module = getattr(plugin, "__name__", type(plugin).__name__)
            self._load(name, module, version=None, disabled=disabled, loader=lambda p=plugin: p)

    def _load(self, name: str, module: str, version: str | None, disabled: set[str], loader: Any) -> None:
        info = PluginInfo(name=name, module=module, version=version)
        self.plugins.append(info)
        if name in disabled:
            info.status = "disabled"
            return
        try:
            plugin = loader()
            if self.pm.is_registered(plugin):  # named twice (entry point and TUNESPEC_PLUGINS): one plugin
                self.plugins.remove(info)
                return
            self.pm.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not break tunespec
            info.status = "broken"
            info.error = f"{type(exc).__name__}: {exc}"
            return
        info.registers = self._registrations(name)
        for backend in self._call(name, "tunespec_backends"):
            missing = missing_requirements(backend)
            if missing:
                info.status = "unavailable"
                info.missing.extend(missing)
                info.install_hint = backend.install_hint or None

    def _call(self, plugin_name: str, hook: str) -> list[Any]:
        plugin = self.pm.get_plugin(plugin_name)
        impl = getattr(plugin, hook, None)
        if impl is None:
            return []
        return list(impl() or [])

    def _registrations(self, plugin_name: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for hook, kind in (
            ("tunespec_backends", "backends"),
            ("tunespec_data_sources", "data sources"),
            ("tunespec_data_formats", "data formats"),
            ("tunespec_model_resolvers", "model resolvers"),
        ):
            names = [getattr(obj, "name", type(obj).__name__) for obj in self._call(plugin_name, hook)]
            if names:
                out[kind] = names
        return out

    # What plugins registered, flattened over all plugins (pluggy returns one list per plugin;
    # pluggy calls the most recently registered first, so reverse to keep built-ins first).
    def _collect(self, hook: str) -> list[Any]:
        results = getattr(self.pm.hook, hook)()
        return [obj for group in reversed(results) for obj in (group or [])]

    @cache
    def backends(self) -> dict[str, "Backend"]:
        return {b.name: b for b in self._collect("tunespec_backends")}

    @cache
    def data_sources(self) -> list[Any]:
        return self._collect("tunespec_data_sources")

    @cache
    def data_formats(self) -> list[Any]:
        return self._collect("tunespec_data_formats")

    @cache
    def model_resolvers(self) -> list[Any]:
        return self._collect("tunespec_model_resolvers")


def distribution_version(module: str) -> str | None:
    """The version of the installed distribution that provides `module` (a plugin loaded
    by import path), or None for a module that no installed distribution provides."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    for dist in packages_distributions().get(module.split(".")[0], []):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def missing_requirements(backend: "Backend") -> list[str]:
    """The modules in `backend.requires` that are not installed (checked without importing)."""
    return [m for m in backend.requires if not _importable(m)]


def _importable(module: str) -> bool:
    """True if `module` can be imported, checked without importing it (fast). Submodules
    are looked up in their parent's folders: `find_spec("ray.train")` would import `ray`."""
    top, *rest = module.split(".")
    try:
        spec = find_spec(top)
        for depth in range(1, len(rest) + 1):
            if spec is None or not spec.submodule_search_locations:
                return False
            name = ".".join([top, *rest[:depth]])
            spec = PathFinder.find_spec(name, list(spec.submodule_search_locations))
        return spec is not None
    except (ImportError, ValueError):
        return False


_host: PluginHost | None = None


def plugin_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_plugin_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (tests register extra plugins this way)."""
    global _host
    _host = host
