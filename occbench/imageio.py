"""Reading images with clear errors, and writing files atomically (temp file, then rename)."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from occbench.errors import DataError


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an ``HxWx3`` uint8 RGB array.

    Raises :class:`DataError` naming the file when it is missing, empty, truncated or not an
    image (PIL otherwise decodes a truncated JPEG silently with grey filler, or fails late).
    """
    return decode_rgb(read_bytes(path), path)


def read_bytes(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of ``path``; :class:`DataError` naming it when it is missing or unreadable."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def decode_rgb(data: bytes, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes; ``path`` only names the source in error messages."""
    if not data:
        raise DataError(f"{path}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # truncated files raise here (LOAD_TRUNCATED_IMAGES is off by default)
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (not in any known image format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    if arr.ndim != 3 or arr.shape[0] < 8 or arr.shape[1] < 8:
        raise DataError(f"{path}: image too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None] | bytes) -> Path:
    """Write ``path`` atomically: to a temp file in the same folder, then ``os.replace``.

    ``write`` is either the bytes to write or a callable that writes to the temp path given.
    A crash leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        if callable(write):
            write(tmp_path)
        else:
            tmp_path.write_bytes(write)
        # mkstemp makes 0600 (and a writer may recreate the file): give the usual file mode
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def write_if_changed(path: str | os.PathLike, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless the file already holds exactly these bytes
    (a regenerated figure that did not change is not rewritten, so version control sees no
    change); True when written."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    atomic_write(path, data)
    return True


def save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Save a matplotlib figure (format from the suffix), reproducibly (no creation date in a
    PDF) and only if its bytes changed."""
    path = Path(path)
    fmt = path.name.rsplit(".", 1)[-1]
    buf = io.BytesIO()
    metadata = {"CreationDate": None} if fmt == "pdf" else None
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    write_if_changed(path, buf.getvalue())
    return path


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """Hold an exclusive lock on ``<path>.lock`` (other processes wait): for read-modify-write
    of a shared file, e.g. two sweeps merging rows into one results table."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 image (HxW or HxWx3) as PNG, atomically."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", optimize=False)
    return atomic_write(path, buf.getvalue())
