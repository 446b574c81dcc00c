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
* metadata are the keyword arguments the axis defines (a completer's ``order`` in the tables,
  a recognizer's ``base``: the recognizer a ``-occ`` variant is compared with; see
  :data:`AXES`).

The registry checks what it is given, and every mistake is a :class:`ConfigError` naming the
registry, the name and the problem:

* at registration: a name (or alias) registered twice (pass ``replace=True`` to replace an
  entry on purpose), a metadata key the axis does not define or a value of the wrong type, a
  lazy target that is not ``"module:attr"``, and an object target of the wrong kind;
* when a lazy target is resolved (:meth:`Entry.load`): a module or attribute that does not
  exist, and a target of the wrong kind;
* when a factory creates an object (:meth:`Registry.create`, :meth:`Registry.check_created`):
  an object without the methods and attributes its axis uses.

"The right kind" is duck-typed, so a plug-in need not derive from occbench's base classes:
a completer or recognizer target is a class with ``complete`` / ``embed`` or any other
callable (a factory function, a ``functools.partial``) whose *objects* have the methods and
attributes of :class:`~occbench.models.base.Completer` / ``Recognizer`` that occbench reads;
a protocol is a class with ``prepare``, ``needs`` and ``evaluate`` (or a factory of such
objects); a data-set loader and a trainable model's task factory are callables; an
occlusion form is an *instance* with the attributes of :class:`~occbench.occlusion.Form`.

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
import inspect
import re
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from occbench.errors import ConfigError

PLUGIN_GROUP = "occbench.plugins"
# Imported when the installed distribution has no entry points (a checkout used without
# `pip install -e .`): the same plug-in modules pyproject.toml declares.
_FALLBACK_PLUGINS = ("occbench.plugin", "baselines.plugin")

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_LAZY = re.compile(rf"{_DOTTED}:{_DOTTED}")


@dataclass(frozen=True)
class Axis:
    """What the targets of one registry are (duck-typed: nothing needs a base class).

    ``factory``: True, the target is called to create objects (a class or a function);
    False, the target is the object itself; None, any target (a registry of anything).
    ``methods``: callables the objects must have (a class target is checked for them when
    registered or resolved, a function's objects when created); ``attributes``: what else the
    objects must have (checked on creation, or on the object target itself). ``meta``: the
    metadata keys the axis defines and their types. ``expected``: the kind in words, for
    messages.
    """

    expected: str
    factory: bool | None = True
    methods: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    meta: dict[str, type | tuple[type, ...]] = field(default_factory=dict)


_NUMBER = (int, float)

#: The six axes: what each registry accepts.
AXES = {
    "completers": Axis(
        "a completer class or factory whose objects have complete(occluded, clean) -> "
        "(completed, mask) and name, version, outputs_clean, cache_outputs "
        "(occbench.models.Completer has them all)",
        methods=("complete",),
        attributes=("name", "version", "outputs_clean", "cache_outputs"),
        meta={"order": _NUMBER}),
    "recognizers": Axis(
        "a recognizer class or factory whose objects have embed(faces) -> (N, dim) and "
        "name, version, dim, batch_size (occbench.models.Recognizer has them all)",
        methods=("embed",),
        attributes=("name", "version", "dim", "batch_size"),
        meta={"base": str}),
    "datasets": Axis("a loader function: loader(data_root) -> Dataset",
                     meta={"scheme": bool}),
    "protocols": Axis(
        "a protocol class (or factory) taking the run config, whose objects have "
        "prepare(ctx), needs(ctx) and evaluate(ctx, cond)",
        methods=("prepare", "needs", "evaluate"),
        meta={"default": int}),
    "forms": Axis(
        "an occlusion form instance (of an occbench.occlusion.Form subclass) with draw(size, "
        "position, rng, landmarks) and name, aliases, size_range, size_label, eval_sizes, "
        "train_range, positions, train, needs_landmarks, export_name, title",
        factory=False,
        methods=("draw",),
        attributes=("name", "aliases", "size_range", "size_label", "eval_sizes", "train_range",
                    "positions", "train", "needs_landmarks", "export_name", "title"),
        meta={"order": _NUMBER}),
    "trainable": Axis("a task factory: make_task(name, data_root, limit=None)",
                      meta={"folder": str}),
}


def _describe(obj: Any) -> str:
    """A short name of a target for messages: ``mod.Class``, ``mod.func``, or its repr."""
    if isinstance(obj, str):
        return repr(obj)
    qual = getattr(obj, "__qualname__", None)
    if qual and (inspect.isclass(obj) or inspect.isroutine(obj)):
        return f"{getattr(obj, '__module__', '?')}.{qual}"
    return f"{reprlib.repr(obj)} ({type(obj).__name__})"


def _type_names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


@dataclass
class Entry:
    """One registered name: ``target`` (an object or a lazy ``module:attr``) and metadata."""

    name: str
    target: Any
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    registry: Registry | None = field(default=None, repr=False, compare=False)

    def _where(self) -> str:
        return self.registry._where(self.name) if self.registry else f"{self.name!r}"

    def load(self) -> Any:
        """The target object: a lazy ``module:attr`` is imported on first use and checked to
        be of its registry's kind (ConfigError naming the registry, the name and the
        problem)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attr = self.target.partition(":")
        if not attr:
            raise ConfigError(f"{self._where()}: lazy target {self.target!r} is not "
                              "'module:attr'")
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # only the target's own module (or a package above it) missing is a naming
            # mistake; a module that fails to import one of its dependencies keeps its error
            if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
                raise
            raise ConfigError(f"{self._where()}: cannot resolve {self.target!r}: "
                              f"no module named {exc.name!r}") from None
        for i, part in enumerate(attr.split(".")):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                have = ".".join([module, *attr.split(".")[:i]])
                raise ConfigError(f"{self._where()}: cannot resolve {self.target!r}: "
                                  f"{have} has no attribute {part!r}") from None
        if self.registry is not None:
            self.registry.check_target(self.name, obj, lazy=self.target)
        self.target = obj
        return obj


class Registry:
    """Names (and aliases) of one axis -> :class:`Entry`. ``kind`` names the axis in errors
    ("unknown recognizer 'x'; known: ..."); ``axis`` says what its targets are and which
    metadata keys it defines (none by default); ``label`` names the registry in errors
    (default ``registry.<plural>``)."""

    def __init__(self, kind: str, plural: str | None = None, *, axis: Axis | None = None,
                 label: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.axis = axis or Axis(f"a {kind}", factory=None)
        self.label = label or f"registry.{self.plural.replace(' ', '')}"
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    # ---- checks ---------------------------------------------------------------------------
    def _where(self, name: str) -> str:
        return f"{self.label}: {self.kind} {name!r}"

    def _check_meta(self, name: str, meta: dict) -> None:
        allowed = self.axis.meta
        for key, value in meta.items():
            if key not in allowed:
                keys = ", ".join(sorted(allowed)) or "none"
                raise ConfigError(f"{self._where(name)}: unknown metadata key {key!r} "
                                  f"(a {self.kind}'s metadata: {keys})")
            if not isinstance(value, allowed[key]):
                raise ConfigError(f"{self._where(name)}: metadata {key!r} must be "
                                  f"{_type_names(allowed[key])}, not "
                                  f"{type(value).__name__} ({value!r})")

    def _missing(self, obj: Any, names: tuple[str, ...], methods: bool) -> list[str]:
        if methods:
            return [f"{m}()" for m in names if not callable(getattr(obj, m, None))]
        return [a for a in names if not hasattr(obj, a)]

    def check_target(self, name: str, target: Any, lazy: str | None = None) -> None:
        """ConfigError unless ``target`` (an object, not a lazy string) is of this registry's
        kind: a factory (a class with the axis' methods, or another callable whose objects
        :meth:`check_created` checks), or an object with the methods and attributes."""
        axis = self.axis
        if axis.factory is None:
            return
        what = _describe(target) + (f" (from {lazy!r})" if lazy else "")
        problem = None
        if axis.factory:
            if not callable(target):
                problem = "is not callable"
            elif inspect.isclass(target):
                missing = self._missing(target, axis.methods, methods=True)
                if missing:
                    problem = f"lacks {', '.join(missing)}"
        elif inspect.isclass(target):
            problem = "is a class, not an instance (register an object of it)"
        else:
            missing = (self._missing(target, axis.methods, methods=True)
                       + self._missing(target, axis.attributes, methods=False))
            if missing:
                problem = f"lacks {', '.join(missing)}"
        if problem:
            raise ConfigError(f"{self._where(name)}: target {what} {problem}; "
                              f"expected {axis.expected}")

    def check_created(self, name: str, obj: Any) -> Any:
        """``obj``, created by the factory of ``name``, if it has the methods and attributes of
        this registry's kind; else ConfigError naming what it lacks."""
        name = self.canonical(name)
        missing = (self._missing(obj, self.axis.methods, methods=True)
                   + self._missing(obj, self.axis.attributes, methods=False))
        if missing:
            factory = self._entries[name].target
            raise ConfigError(f"{self._where(name)}: {_describe(factory)} created "
                              f"{_describe(obj)}, which lacks {', '.join(missing)}; "
                              f"expected {self.axis.expected}")
        return obj

    # ---- registering ----------------------------------------------------------------------
    def register(self, name: str, target: Any = None, *, aliases: tuple[str, ...] = (),
                 replace: bool = False, **meta) -> Any:
        """Register ``target`` under ``name``; without a target, a decorator.

        ConfigError (naming this registry, the name and the problem) for a name or alias
        already registered (``replace=True`` replaces an entry of that name on purpose, e.g.
        a plug-in overriding a built-in), a metadata key this axis does not define or a value
        of the wrong type, a lazy target that is not ``"module:attr"``, and an object target
        of the wrong kind (a lazy one is checked when :meth:`Entry.load` resolves it).
        """
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ConfigError(f"{self.label}: a {self.kind} name must be a non-empty string "
                              f"without surrounding spaces, not {name!r}")
        if isinstance(aliases, str) or not all(isinstance(a, str) and a.strip() == a and a
                                               for a in aliases):
            raise ConfigError(f"{self._where(name)}: aliases must be a tuple of names, "
                              f"not {aliases!r}")
        self._check_meta(name, meta)
        if target is None:
            def deco(obj):
                self.register(name, obj, aliases=aliases, replace=replace, **meta)
                return obj
            return deco
        if isinstance(target, str):
            if not _LAZY.fullmatch(target):
                raise ConfigError(f"{self._where(name)}: lazy target {target!r} is not "
                                  "'module:attr' (e.g. 'mypkg.models:Mine')")
        else:
            self.check_target(name, target)
        old = self._entries.get(name)
        if old is not None and not replace:
            raise ConfigError(f"{self._where(name)} is already registered (target "
                              f"{_describe(old.target)}); choose another name, or pass "
                              "replace=True to replace it")
        if name in self._aliases:
            raise ConfigError(f"{self._where(name)}: the name is already an alias of "
                              f"{self._aliases[name]!r}")
        for alias in aliases:
            owner = self._aliases.get(alias)
            if (owner is not None and owner != name) or (alias in self._entries and alias != name):
                raise ConfigError(f"{self._where(name)}: alias {alias!r} already names "
                                  f"{owner or alias!r}")
        if old is not None:
            for alias in old.aliases:
                self._aliases.pop(alias, None)
        self._entries[name] = Entry(name, target, tuple(aliases), dict(meta), self)
        for alias in aliases:
            self._aliases[alias] = name
        return target

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (tests that register a temporary entry)."""
        entry = self._entries.pop(name, None)
        for alias in entry.aliases if entry else ():
            self._aliases.pop(alias, None)

    # ---- reading --------------------------------------------------------------------------
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
        """The target of ``name`` (imported on first use, and checked)."""
        return self.get(name).load()

    def create(self, name: str, *args, **kwargs) -> Any:
        """Call the factory of ``name`` and return its object, checked by
        :meth:`check_created`."""
        entry = self.get(name)
        factory = entry.load()
        if self.axis.factory is False:
            raise ConfigError(f"{self._where(entry.name)}: registered objects are not "
                              "created (use load)")
        return self.check_created(entry.name, factory(*args, **kwargs))

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


completers = Registry("completer", axis=AXES["completers"])
recognizers = Registry("recognizer", axis=AXES["recognizers"])
datasets = Registry("data set", axis=AXES["datasets"], label="registry.datasets")
protocols = Registry("protocol", axis=AXES["protocols"])
forms = Registry("occlusion form", axis=AXES["forms"], label="registry.forms")
trainable = Registry("trainable model", axis=AXES["trainable"], label="registry.trainable")
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


