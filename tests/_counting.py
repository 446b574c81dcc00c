"""Counting what a model is asked to do, to show what a cache saved: each call's batch size."""

from __future__ import annotations


def count_calls(monkeypatch, owner, method: str) -> list[int]:
    """Patch ``owner.method`` (a class: for every instance; an object: for it alone) to
    record ``len`` of its first argument (the faces of the batch) at each call, then call the
    real method. Returns the list the sizes are appended to."""
    calls: list[int] = []
    real = getattr(owner, method)
    if isinstance(owner, type):
        def counting(self, first, *args, **kwargs):
            calls.append(len(first))
            return real(self, first, *args, **kwargs)
    else:
        def counting(first, *args, **kwargs):
            calls.append(len(first))
            return real(first, *args, **kwargs)
    monkeypatch.setattr(owner, method, counting)
    return calls
