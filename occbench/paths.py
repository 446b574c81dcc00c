"""Where data and caches live.

* data root: ``--data`` if given, else ``$OCCBENCH_DATA``.
* cache root: ``$OCCBENCH_CACHE``, else ``~/.cache/occbench``.
"""

from __future__ import annotations

import os
from pathlib import Path

from occbench.errors import DataError

DATA_ENV = "OCCBENCH_DATA"
CACHE_ENV = "OCCBENCH_CACHE"


def resolve_data_root(arg: str | os.PathLike | None = None) -> Path:
    """The data root from the argument, else ``$OCCBENCH_DATA``; a clear error if neither exists."""
    value = arg if arg not in (None, "") else os.environ.get(DATA_ENV)
    if not value:
        raise DataError(
            f"no data root: pass --data ROOT or set {DATA_ENV}=ROOT "
            "(a folder holding lfw/, facescrub/, celeba/ ...)"
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        source = "--data" if arg not in (None, "") else DATA_ENV
        raise DataError(f"data root {root} (from {source}) is not a folder")
    return root.resolve()


def cache_root() -> Path:
    """Root folder of every on-disk cache (aligned faces, features)."""
    value = os.environ.get(CACHE_ENV)
    root = Path(value).expanduser() if value else Path.home() / ".cache" / "occbench"
    root.mkdir(parents=True, exist_ok=True)
    return root
