"""Where data and caches live.

* data root: ``--data`` if given, else ``$OCCBENCH_DATA``.
* cache root: ``$OCCBENCH_CACHE``, else ``~/.cache/occbench``.
"""

from __future__ import annotations

import os
import tempfile
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


_CACHE_HINT = f"set {CACHE_ENV} to a writable folder"


def cache_root() -> Path:
    """Root folder of every on-disk cache (aligned faces, features), created if missing."""
    value = os.environ.get(CACHE_ENV)
    root = Path(value).expanduser() if value else Path.home() / ".cache" / "occbench"
    if root.is_dir():
        return root
    return _make_folder(root, "cache folder", _CACHE_HINT)


def _make_folder(path: Path, what: str, hint: str) -> Path:
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file, not a folder; {hint}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{what} {path} cannot be created ({exc.strerror or exc}); {hint}") from None
    return path


def _write_probe(path: Path) -> OSError | None:
    """None if a file can be created in ``path``, else the error."""
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return exc
    return None


def writable_folder(path: str | os.PathLike, what: str, hint: str) -> Path:
    """``path`` as a folder this process can write to, created if missing; otherwise one
    :class:`DataError` naming it (a file, not creatable, not writable), raised *before* any
    work so that nothing computed is lost when the results are written at the end."""
    path = _make_folder(Path(path).expanduser(), what, hint)
    exc = _write_probe(path)
    if exc is not None:
        raise DataError(f"{what} {path} is not writable ({exc.strerror or exc}); {hint}")
    return path


def check_cache(root: str | os.PathLike | None = None) -> Path:
    """The cache folder (default :func:`cache_root`), checked before any work: writable, and
    no file or folder in it read-only (a filled cache someone made read-only would otherwise
    fail half-way, when the first new row is written)."""
    root = _make_folder(Path(root if root is not None else cache_root()).expanduser(),
                        "cache folder", _CACHE_HINT)
    hint = f"make it writable, or {_CACHE_HINT} (an empty one recomputes everything)"
    exc = _write_probe(root)
    if exc is not None:
        raise DataError(f"cache folder {root} is read-only ({exc.strerror or exc}); {hint}")
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink() and not os.access(path, os.W_OK):
                raise DataError(f"cache folder {root} is read-only ({path} cannot be "
                                f"written); {hint}")
    return root
