"""Five-point landmarks given with a data set, in a file beside its images.

A folder data set (``ROOT/<set>/<identity>/<image>``, e.g. ``folder:NAME`` or each ROF
condition) may hold ``landmarks5.tsv``: one line per image, its path relative to the set's
folder, a tab, and 10 numbers: x y of the left eye, right eye, nose tip, left and right mouth
corner (the image's left first, as occbench's template), in the image's pixels; ``#`` lines
are comments. The reader attaches them to the data set (``Dataset.landmarks5``) and makes
``given`` its detector: alignment warps those points onto the template instead of detecting a
face (HOG for any image the file does not cover). ROF's file is written from the official
release by :mod:`occbench.data.rof_landmarks`; insightface-style lists of five points convert
to it line by line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occbench.data.base import Dataset
from occbench.errors import DataError

LANDMARKS_FILE = "landmarks5.tsv"
POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def write_landmarks(path: Path, points: dict[str, np.ndarray], source: str) -> Path:
    """``points`` as a tab-separated file (``<person folder>/<file>`` and 10 numbers: x y of
    the five points; ``source`` says where they come from, in a comment), written to a
    temporary file and renamed."""
    from occbench.imageio import atomic_write

    lines = [f"# five points (x y: {', '.join(POINTS)}) in each image's pixels",
             f"# from {source}"]
    for key in sorted(points):
        values = " ".join(f"{v:.2f}" for v in np.asarray(points[key]).reshape(-1))
        lines.append(f"{key}\t{values}")
    return atomic_write(path, ("\n".join(lines) + "\n").encode())


def read_landmarks(path: Path) -> dict[str, np.ndarray]:
    """A :func:`write_landmarks` file as ``<person folder>/<file>`` -> (5, 2) points;
    DataError naming the file and line for a malformed line or a name given twice."""
    points: dict[str, np.ndarray] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, rest = line.partition("\t")
        try:
            values = np.array([float(v) for v in rest.split()], np.float64)
        except ValueError:
            values = np.zeros(0)
        if not name or values.size != 10 or not np.isfinite(values).all():
            raise DataError(f"{path}:{n}: expected '<person folder>/<file>' TAB 10 numbers "
                            f"(x y of {len(POINTS)} points), got {line[:80]!r}")
        if name in points:
            raise DataError(f"{path}:{n}: {name} is given twice")
        points[name] = values.reshape(5, 2)
    return points


def attach(ds: Dataset, folder: Path) -> Dataset:
    """Read ``folder/landmarks5.tsv`` if present: its points (for images of ``ds``, keyed
    ``<ds.name>/<line's path>``) become ``ds.landmarks5`` and, if it covers any, ``given``
    its detector, with a note saying how many images it covers. Returns ``ds``."""
    path = Path(folder) / LANDMARKS_FILE
    if not path.is_file():
        return ds
    given = read_landmarks(path)
    keys = {s.key for s in ds.samples}
    ds.landmarks5 = {f"{ds.name}/{k}": v for k, v in given.items() if f"{ds.name}/{k}" in keys}
    if ds.landmarks5:  # a file that covers none of the images leaves detection as it was
        ds.detector = "given"
    unknown = len(given) - len(ds.landmarks5)
    ds.notes.append(f"{LANDMARKS_FILE}: given five points for {len(ds.landmarks5)} of "
                    f"{len(ds.samples)} images (alignment: detector 'given'; the rest HOG)"
                    + (f"; {unknown} lines name no image of the set" if unknown else ""))
    return ds
