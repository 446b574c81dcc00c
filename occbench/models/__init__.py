"""Completers and recognizers by name (timm's ``create_model`` style), on
:mod:`occbench.registry`.

    from occbench.models import create_completer, create_recognizer
    completer = create_completer("bvmr", arch="small")
    recognizer = create_recognizer("onnx", path="model.onnx", flip=True)

Every model, built-in or not, is a plug-in: it registers a factory (a class or a function
taking keyword options) with ``registry.completers`` / ``registry.recognizers``, usually as a
lazy ``module:attr`` target (see :mod:`occbench.plugin`). Metadata a completer may declare:
``order`` (its row in the tables); a recognizer: ``base`` (the recognizer whose occluded
and clean rows it is compared with, e.g. ``resnet50`` for ``resnet50-occ``).

A model's cache key is :func:`cache_tag`: its name and ``version``, which an adapter derives
from what determines its output (the weight file's SHA-256; the preprocessing options), plus
a hash of the options it was created with.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable

from occbench import registry
from occbench.errors import ConfigError
from occbench.models.base import Completer, Recognizer, l2_normalise


def register_completer(name: str, **meta):
    """Decorator registering a completer factory (a class or a function) under ``name``."""
    return registry.completers.register(name, **meta)


def register_recognizer(name: str, **meta):
    """Decorator registering a recognizer factory (a class or a function) under ``name``."""
    return registry.recognizers.register(name, **meta)


def list_models() -> dict[str, list[str]]:
    """Known names: ``{"completers": [...], "recognizers": [...]}``."""
    return {"completers": registry.completers.names(),
            "recognizers": registry.recognizers.names()}


def _create(reg: registry.Registry, name: str, options: dict, flag: str):
    entry = reg.get(name)
    factory = entry.load()
    _check_options(factory, options, f"{reg.kind} {entry.name!r}", flag)
    model = reg.check_created(entry.name, factory(**options))
    model.options = dict(options)  # part of the cache key (cache_tag)
    return model


def create_completer(name: str, **options) -> Completer:
    """The completer ``name`` created with keyword ``options`` (``--model-args``)."""
    return _create(registry.completers, name, options, "--model-args")


def create_recognizer(name: str, **options) -> Recognizer:
    """The recognizer ``name`` created with keyword ``options`` (``--recognizer-args``)."""
    return _create(registry.recognizers, name, options, "--recognizer-args")


def cache_tag(model: Completer | Recognizer) -> str:
    """``<name>@<version>``, plus ``-o<hash>`` of the creation options when there are any
    (but the model's ``cache_neutral`` ones: devices, batch sizes, worker counts): the folder
    name that keys a model's cached outputs."""
    tag = f"{model.name}@{model.version}"
    neutral = set(getattr(model, "cache_neutral", ()))
    options = {k: v for k, v in (getattr(model, "options", None) or {}).items()
               if k not in neutral}
    if options:
        text = json.dumps(options, sort_keys=True, default=str)
        tag += f"-o{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return tag


def _check_options(factory: Callable, kwargs: dict, what: str, flag: str) -> None:
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
                              f"(e.g. {flag} {missing[0]}=...)") from None
        raise


__all__ = [
    "Completer",
    "Recognizer",
    "cache_tag",
    "create_completer",
    "create_recognizer",
    "l2_normalise",
    "list_models",
    "register_completer",
    "register_recognizer",
]
