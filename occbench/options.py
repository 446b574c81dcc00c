"""Checks of numeric options, shared by the command line and the Python API, and the
``KEY=VALUE,...`` model options of the command line.

Every count (``--limit``, ``--distractors``, ``--batch-size``, ``--workers``, ``--n``,
``--steps``) means the same in every command: a whole number >= 1, ``--limit N`` = the first N
images. Seeds are whole numbers >= 0. Anything else is one clear error, never a silent
reinterpretation (``--limit 0`` once ran the full benchmark, ``--limit -5`` dropped 5 images).
"""

from __future__ import annotations

import argparse

from occbench.errors import ConfigError


def at_least(value, minimum: int, name: str) -> int:
    """``value`` as an int if it is a whole number >= ``minimum``; else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _arg_type(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum} ({what}), "
                                             f"got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum} ({what}), "
                                             f"got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


count = _arg_type(1, "a count")
seed = _arg_type(0, "a seed")


def key_values(text: str) -> dict:
    """``KEY=VALUE,KEY=VALUE`` model options as a dict (``--model-args``, ``--recognizer-args``).

    Values become bool (true/false/yes/no/on/off), int, float or str; ``a/b/c`` with every
    part a number becomes a tuple of numbers (per-channel values; a path stays a string).
    """

    def scalar(v: str):
        if v.lower() in ("true", "yes", "on", "false", "no", "off"):
            return v.lower() in ("true", "yes", "on")
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v

    out: dict = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE...], got {item!r}")
        if key in out:
            raise argparse.ArgumentTypeError(f"{key!r} given twice")
        parts = [scalar(p) for p in value.split("/")] if "/" in value else None
        if parts and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in parts):
            out[key] = tuple(parts)
        else:
            out[key] = scalar(value)
    return out
