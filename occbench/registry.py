"""One registry for every axis occbench can be extended along.

    from occbench import registry
    registry.recognizers.names()              # ['clean-oracle', 'dlib', ...]
    factory = registry.recognizers.load("dlib")
    registry.forms.get("square").name         # 'rect' (an alias)

Six registries, one per axis: :data:`completers`, :data:`recognizers`, :data:`datasets`,
:data:`protocols`, :data:`forms` (occlusion forms) and :data:`trainable` (models that
``occbench train`` can train). An entry has a name, aliases, a *target* and metadata:

* the target is the object itself, or a lazy ``"module:attr"`` string imported on first use,
  so listing names or reading metadata never imports torch or a model's weights;
* metadata are free keyword arguments the axis defines (e.g. a completer's ``order`` in the
  tables, a recognizer's ``base``: the recognizer a ``-occ`` variant is compared with).

Plug-ins: every entry point of the group ``occbench.plugins`` names a module (imported) or a
callable (called) that registers its entries. occbench's own models, data sets, protocols and
forms declare themselves exactly that way (``[project.entry-points."occbench.plugins"]`` in
``pyproject.toml``), so no core module holds a list of them. The plug-ins load once, the
first time any registry is read; code (a test, a notebook) may also register directly::

    @registry.recognizers.register("mine", base="dlib")
    def mine(**options): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from occbench.errors import ConfigError

PLUGIN_GROUP = "occbench.plugins"
# Imported when the installed distribution has no entry points (a checkout used without
# `pip install -e .`): the same plug-in modules pyproject.toml declares.
_FALLBACK_PLUGINS = ("occbench.plugin", "baselines.plugin")


@dataclass
class Entry:
    """One registered name: ``target`` (an object or a lazy ``module:attr``) and metadata."""

    name: str
    target: Any
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The target object (imported on first use)."""
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            if not attr:
                raise ConfigError(f"{self.name}: lazy target {self.target!r} is not 'module:attr'")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self.target = obj
        return self.target


class Registry:
    """Names (and aliases) of one axis -> :class:`Entry`. ``kind`` names the axis in errors
    ("unknown recognizer 'x'; known: ...")."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, target: Any = None, *, aliases: tuple[str, ...] = (),
                 **meta) -> Any:
        """Register ``target`` under ``name``; without a target, a decorator.

        Registering a name again replaces it (a plug-in may override a built-in); an alias
        that names another entry is an error.
        """
        if target is None:
            def deco(obj):
                self.register(name, obj, aliases=aliases, **meta)
                return obj
            return deco
        for alias in aliases:
            owner = self._aliases.get(alias)
            if (owner is not None and owner != name) or (alias in self._entries and alias != name):
                raise ConfigError(f"{self.kind} alias {alias!r} of {name!r} already names "
                                  f"{owner or alias!r}")
        old = self._entries.get(name)
        if old is not None:
            for alias in old.aliases:
                self._aliases.pop(alias, None)
        self._entries[name] = Entry(name, target, tuple(aliases), dict(meta))
        for alias in aliases:
            self._aliases[alias] = name
        return target

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (tests that register a temporary entry)."""
        entry = self._entries.pop(name, None)
        for alias in entry.aliases if entry else ():
            self._aliases.pop(alias, None)

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` or of its alias; ConfigError listing the known."""
        load_plugins()
        key = str(name).strip()
        if key in self._entries:
            return key
        if key in self._aliases:
            return self._aliases[key]
        low = key.lower()
        for n in self._entries:  # names are case-insensitive when unambiguous
            if n.lower() == low:
                return n
        if low in self._aliases:
            return self._aliases[low]
        raise ConfigError(f"unknown {self.kind} {name!r}; known {self.plural}: "
                          f"{', '.join(self.describe_names())}")

    def get(self, name: str) -> Entry:
        return self._entries[self.canonical(name)]

    def load(self, name: str) -> Any:
        """The target of ``name`` (imported on first use)."""
        return self.get(name).load()

    def meta(self, name: str, key: str, default: Any = None) -> Any:
        """Metadata ``key`` of ``name``; ``default`` for an unregistered name."""
        load_plugins()
        try:
            return self.get(name).meta.get(key, default)
        except ConfigError:
            return default

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def describe_names(self) -> list[str]:
        """Names with their aliases, for messages: ``rect (rectangle, square)``."""
        load_plugins()
        return [n + (f" ({', '.join(e.aliases)})" if e.aliases else "")
                for n, e in sorted(self._entries.items())]

    def entries(self) -> Iterator[Entry]:
        load_plugins()
        return iter([self._entries[n] for n in sorted(self._entries)])

    def __contains__(self, name: str) -> bool:
        try:
            self.canonical(name)
        except ConfigError:
            return False
        return True


completers = Registry("completer")
recognizers = Registry("recognizer")
datasets = Registry("data set")
protocols = Registry("protocol")
forms = Registry("occlusion form")
trainable = Registry("trainable model")

_loaded = False


def load_plugins() -> None:
    """Import every ``occbench.plugins`` entry point once (built-ins included)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    found = list(entry_points(group=PLUGIN_GROUP))
    if not found:
        for module in _FALLBACK_PLUGINS:
            importlib.import_module(module)
        return
    for ep in sorted(found, key=lambda e: (e.value.split(".")[0] != "occbench", e.name)):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken third-party plug-in: name it, keep the rest
            raise ConfigError(f"plug-in {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if callable(obj):
            obj()


