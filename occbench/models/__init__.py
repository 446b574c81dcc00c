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
    return RECOGNIZERS[name](**kwargs)


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
