"""Model registry: completers and recognizers by name (timm's ``create_model`` style).

    from occbench.models import create_completer, create_recognizer
    completer = create_completer("occluded")
    recognizer = create_recognizer("dlib")

Built-ins register themselves on import. Third-party packages add theirs through the
entry-point group ``occbench.models``: each entry point names a callable (or module) that,
when loaded/called, registers its models with :func:`register_completer` /
:func:`register_recognizer`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points

from occbench.errors import ConfigError
from occbench.models.base import Completer, Recognizer, l2_normalise

COMPLETERS: dict[str, Callable[..., Completer]] = {}
RECOGNIZERS: dict[str, Callable[..., Recognizer]] = {}

# Modules whose import registers the built-in adapters.
_BUILTIN_MODULES = (
    "occbench.models.completers",
    "occbench.models.dlib_recognizer",
    "occbench.models.onnx_recognizer",
    "baselines.resnet50.adapter",
    "baselines.bvmr.adapter",
    "baselines.c2fdan.adapter",
)
_loaded = False


def register_completer(name: str):
    """Decorator registering a completer factory (a class or a function) under ``name``."""

    def deco(factory):
        COMPLETERS[name] = factory
        return factory

    return deco


def register_recognizer(name: str):
    """Decorator registering a recognizer factory (a class or a function) under ``name``."""

    def deco(factory):
        RECOGNIZERS[name] = factory
        return factory

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    for ep in entry_points(group="occbench.models"):
        obj = ep.load()
        if callable(obj):
            obj()


def list_models() -> dict[str, list[str]]:
    """Known names: ``{"completers": [...], "recognizers": [...]}``."""
    _load_all()
    return {"completers": sorted(COMPLETERS), "recognizers": sorted(RECOGNIZERS)}


def create_completer(name: str, **kwargs) -> Completer:
    _load_all()
    if name not in COMPLETERS:
        raise ConfigError(f"unknown model {name!r}; known completers: {', '.join(sorted(COMPLETERS))}")
    return COMPLETERS[name](**kwargs)


def create_recognizer(name: str, **kwargs) -> Recognizer:
    _load_all()
    if name not in RECOGNIZERS:
        raise ConfigError(
            f"unknown recognizer {name!r}; known recognizers: {', '.join(sorted(RECOGNIZERS))}"
        )
    factory = RECOGNIZERS[name]
    _check_options(factory, kwargs, f"recognizer {name!r}")
    return factory(**kwargs)


def _check_options(factory: Callable, kwargs: dict, what: str) -> None:
    """Unknown or missing keyword options of ``factory`` as one ConfigError naming them."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check against: let the call decide
        return
    try:
        sig.bind(**kwargs)
    except TypeError:
        params = sig.parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        named = [p for p in params.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        known = ", ".join(p.name for p in named) or "none"
        unknown = [] if accepts_any else [k for k in kwargs if k not in params]
        if unknown:
            raise ConfigError(f"{what} has no option {unknown[0]!r} (its options: {known})") from None
        missing = [p.name for p in named if p.default is p.empty and p.name not in kwargs]
        if missing:
            raise ConfigError(f"{what} needs the option {missing[0]!r} "
                              f"(e.g. --recognizer-args {missing[0]}=...)") from None
        raise


__all__ = [
    "COMPLETERS",
    "RECOGNIZERS",
    "Completer",
    "Recognizer",
    "create_completer",
    "create_recognizer",
    "l2_normalise",
    "list_models",
    "register_completer",
    "register_recognizer",
]
