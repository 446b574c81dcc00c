"""Given five-point landmarks for the ROF crops, from the official ROF release.

The ROF images people can get (``leen-coding/Dissertation``, see
:mod:`occbench.data.real_occlusions`) are loose head crops, some tiny and many with the lower
or upper face covered, where a face detector often fails. The official release
(``ekremerakin/RealWorldOccludedFaces``, MIT) holds no images but one pickle per person and
condition, ``ROF/<condition>/<person folder>.pkl``: ``{image id: {"url": ..., "faces": [{"box":
[x, y, width, height], "left_eye": [x, y], "right_eye", "nose", "mouth_left",
"mouth_right"}, ...]}}`` (or the five points under ``"keypoints"``, as MTCNN gives them) in the downloaded image's pixels (MTCNN / RetinaFace, eyes and mouth
corners on the image's left first, as occbench's template). Its ``download.py`` cut each
face's box out of the downloaded image and numbered the crops of a person ``000001.jpg``,
``000002.jpg``, ... in the pickle's order, skipping images that failed to download.

:func:`match_person` recovers which annotated face each crop is: the crops, in number order,
are a subsequence of the annotated faces, and a crop is exactly its box's size unless the box
ran over the image's right or bottom edge (then smaller). A dynamic programme matches every
crop to a face in order, preferring exact sizes; a folder where no order-keeping match exists
gets no landmarks (reported). The landmarks, moved into the crop's pixels, are written to
``ROF/<condition>/landmarks5.tsv``, which :func:`occbench.data.real_occlusions.load_rof`
reads (:mod:`occbench.data.given_landmarks`): alignment then warps those points onto the
template (detector ``given``) instead of detecting a face. ``occbench data rof-landmarks
--official DIR`` writes the three files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.data.base import is_image_file, sub_folders
from occbench.data.given_landmarks import LANDMARKS_FILE, POINTS, write_landmarks
from occbench.errors import DataError

__all__ = ["LANDMARKS_FILE", "OFFICIAL", "Face", "crop_points", "match_condition", "match_person",
           "read_annotations", "write_landmarks"]

OFFICIAL = ("ekremerakin/RealWorldOccludedFaces at commit "
            "c927509a039ad9e74d15705f1af99a6a7ae7d3b7 (its ROF/<condition>/*.pkl)")
_INF = 10 ** 9


@dataclass
class Face:
    """One annotated face: its box (x, y, width, height) and five points (5, 2), both in the
    downloaded image's pixels."""

    box: tuple[int, int, int, int]
    points: np.ndarray


def read_annotations(path: Path) -> list[Face]:
    """The annotated faces of one official pickle, in the order ``download.py`` numbered
    their crops; DataError naming the file for anything else."""
    from occbench.data.safe_pickle import safe_loads

    try:
        obj = safe_loads(Path(path).read_bytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # any unpickling failure: not such a file
        raise DataError(f"{path}: not an ROF annotation pickle ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict of images, got {type(obj).__name__}")
    faces = []
    for image_id, entry in obj.items():
        try:
            for face in entry["faces"]:
                box = tuple(int(v) for v in face["box"])
                marks = face.get("keypoints", face)  # MTCNN's layout, or RetinaFace's
                pts = np.array([[float(v) for v in marks[p]] for p in POINTS], np.float64)
                if len(box) != 4 or pts.shape != (5, 2) or not np.isfinite(pts).all():
                    raise ValueError("a box of 4 numbers and 5 (x, y) points")
                faces.append(Face(box, pts))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError,
                OverflowError) as exc:
            raise DataError(f"{path}: image {image_id!r}: malformed face annotation "
                            f"({exc})") from None
    return faces


def _cost(size: tuple[int, int], box: tuple[int, int, int, int]) -> int:
    """0: the crop is exactly the box; 1: smaller, as a box cut at the right / bottom edge
    of its image; _INF: not this box (also boxes off the image's left / top: download.py's
    slice of those gives no crop)."""
    w, h = size
    x, y, bw, bh = box
    if x < 0 or y < 0:
        return _INF
    if (w, h) == (0, 0):  # an unreadable crop: any box, at a cost (it gets no landmarks)
        return 1
    if w > bw or h > bh or w < 1 or h < 1:
        return _INF
    return 0 if (w, h) == (bw, bh) else 1


def match_person(sizes: list[tuple[int, int]], faces: list[Face]) -> list[int] | None:
    """For crops of ``sizes`` (width, height, in number order), the index of the annotated
    face each one is, increasing; None if no order-keeping match exists. Among matches the
    one with the fewest inexact sizes (then the earliest faces) is taken."""
    n, m = len(sizes), len(faces)
    if n > m:
        return None
    # best[i, j]: least cost of matching the first i crops within the first j faces
    best = np.full((n + 1, m + 1), _INF, dtype=np.int64)
    best[0, :] = 0
    for i in range(1, n + 1):
        for j in range(i, m + 1):
            take = best[i - 1, j - 1] + _cost(sizes[i - 1], faces[j - 1].box)
            best[i, j] = min(best[i, j - 1], take)
    if best[n, m] >= _INF:
        return None
    match, j = [], m
    for i in range(n, 0, -1):  # back from the end: the latest j still optimal -> earliest
        while j > i and best[i, j - 1] == best[i, j]:
            j -= 1
        match.append(j - 1)
        j -= 1
    return match[::-1]


def crop_points(face: Face) -> np.ndarray:
    """The face's five points in its crop's pixels (the crop starts at the box's corner)."""
    return face.points - np.array(face.box[:2], np.float64)


def match_condition(official: Path, folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Landmarks of the crops in ``folder`` (``ROF/<condition>``: person folders of crops),
    matched with the pickles in ``official`` (the release's ``ROF/<condition>``): a dict
    ``<person folder>/<file>`` -> (5, 2) points in the crop's pixels, and counts (images,
    matched images, people, matched people, exact sizes)."""
    from PIL import Image

    points: dict[str, np.ndarray] = {}
    counts = {"images": 0, "matched": 0, "people": 0, "people_matched": 0, "exact": 0,
              "no_pickle": 0}
    for person in sub_folders(folder):
        crops = sorted(p for p in person.iterdir() if is_image_file(p))
        counts["people"] += 1
        counts["images"] += len(crops)
        pkl = Path(official) / f"{person.name}.pkl"
        if not pkl.is_file():
            counts["no_pickle"] += 1
            continue
        faces = read_annotations(pkl)
        sizes = []
        for crop in crops:
            try:
                with Image.open(crop) as im:
                    sizes.append(im.size)
            except OSError:
                sizes.append((0, 0))  # unreadable: keeps its place in the order, no points
        match = match_person(sizes, faces)
        if match is None:
            continue
        counts["people_matched"] += 1
        for crop, size, j in zip(crops, sizes, match, strict=True):
            if size == (0, 0):
                continue  # unreadable: matched for the order, given no points
            points[f"{person.name}/{crop.name}"] = crop_points(faces[j])
            counts["matched"] += 1
            counts["exact"] += _cost(size, faces[j].box) == 0
    return points, counts
