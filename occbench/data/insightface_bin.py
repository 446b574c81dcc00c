"""insightface ``.bin`` verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``,
``calfw.bin``, ``cplfw.bin``, ...) as occbench data sets.

A ``.bin`` file is a pickle of ``(bins, issame_list)``: ``bins`` holds 2N encoded images
(JPEG/PNG bytes) of faces already aligned to 112x112 with the ArcFace template, pair i being
``(bins[2i], bins[2i+1])``, and ``issame_list`` N booleans. ``load_dataset("bin:PATH")`` (or
``occbench run --verification-set PATH``) reads one: the faces are used as they are (no
detection), keyed ``<stem>/<i:06d>.png``; each image is its own identity (the file names no
people); the pairs' folds are insightface's contiguous 10-fold split (``KFold(10,
shuffle=False)``: the first N mod 10 folds one pair longer).

The pickle is read with an unpickler that builds only lists, tuples, bytes, booleans,
numbers and numpy arrays: a file that asks for anything else is refused, never executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occbench.data.pairs import Pair
from occbench.data.safe_pickle import safe_loads
from occbench.errors import DataError
from occbench.metrics.verification import contiguous_folds
from occbench.template import SIZE


def read_bin(path: Path) -> tuple[list[bytes], list[bool]]:
    """``(bins, issame)`` of a ``.bin`` file, checked; :class:`DataError` naming the file and
    the problem otherwise."""
    from occbench.imageio import read_bytes

    path = Path(path)
    raw = read_bytes(path, ".bin file")
    try:
        obj = safe_loads(raw, encoding="bytes")
    except Exception as exc:  # any unpickling failure: the file is not such a pickle
        raise DataError(f"{path}: not an insightface .bin pickle ({exc})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataError(f"{path}: expected a pickled (bins, issame_list) pair, got "
                        f"{type(obj).__name__}" + (f" of {len(obj)}" if hasattr(obj, "__len__")
                                                   else ""))
    bins, issame = obj
    try:
        bins, issame = list(bins), [bool(x) for x in issame]
    except TypeError:
        raise DataError(f"{path}: bins and issame_list must be sequences") from None
    if len(bins) % 2:
        raise DataError(f"{path}: {len(bins)} images, an odd number (pairs need 2 each)")
    if len(bins) != 2 * len(issame):
        raise DataError(f"{path}: {len(bins)} images for {len(issame)} pairs "
                        f"(expected {2 * len(issame)})")
    if not issame:
        raise DataError(f"{path}: no pairs")
    return [bytes(np.asarray(b).tobytes()) if isinstance(b, np.ndarray) else bytes(b)
            for b in bins], issame


def decode_faces(bins: list[bytes], path: Path) -> np.ndarray:
    """(2N, 112, 112, 3) uint8 RGB faces; DataError naming the image at fault."""
    from occbench.imageio import decode_rgb

    out = np.empty((len(bins), SIZE, SIZE, 3), np.uint8)
    for i, b in enumerate(bins):
        rgb = decode_rgb(b, f"{path}: image {i}")
        if rgb.shape[:2] != (SIZE, SIZE):
            raise DataError(f"{path}: image {i} is {rgb.shape[1]}x{rgb.shape[0]}, not "
                            f"{SIZE}x{SIZE} (faces must come aligned to the ArcFace template)")
        out[i] = rgb
    return out


def load_bin(data_root: Path | None, path: str | Path):
    """The ``.bin`` file ``path`` as a Dataset with aligned faces and verification pairs
    (``data_root`` is not used: the path stands alone)."""
    from occbench.data.memory import memory_dataset

    path = Path(path).expanduser()
    bins, issame = read_bin(path)
    faces = decode_faces(bins, path)
    name = path.stem
    identities = [f"{name}_{i:06d}" for i in range(len(faces))]
    folds = contiguous_folds(len(issame))
    # memory_dataset keys <name>/<identity>/<i>.png, sorted: pair i = images 2i, 2i+1
    keys = [f"{name}/{who}/{i:05d}.png" for i, who in enumerate(identities)]
    pairs = [Pair(keys[2 * i], keys[2 * i + 1], same, int(folds[i]))
             for i, same in enumerate(issame)]
    ds = memory_dataset(name, faces, identities, pairs)
    ds.root = path
    return ds
