"""Face alignment to the 112x112 five-point template, and cached alignment of whole data sets.

    from occbench.align import align_face, align_dataset
    res = align_face(rgb)                    # AlignResult(face 112x112x3, landmarks5, aligned)
    faces = align_dataset(ds)                # AlignedFaces, cached on disk by file content
    print(faces.summary())

One face: dlib's HOG frontal detector (upsample 0, then 1 if nothing was found); among
several faces the one that is large and near the image centre; dlib's 68-point predictor;
five points (eye centres, nose tip, mouth corners); a least-squares similarity transform
(Umeyama) onto :data:`occbench.template.TEMPLATE_5`; a bilinear warp to 112x112.
Where no face is found, the five points fall back to their mean position in the LFW framing
that every data set here uses (``aligned=False``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from occbench.aligned_cache import AlignedCache, CachedFace, default_cache_path
from occbench.data.base import Dataset
from occbench.dlib_models import MMOD_DETECTOR, SHAPE_68, load
from occbench.errors import ConfigError, DataError
from occbench.faces import ALIGN_VERSION, AlignedFaces
from occbench.imageio import decode_rgb
from occbench.template import SIZE, TEMPLATE_5
from occbench.workers import ignore_interrupt

# Mean five points (x, y) in a 250x250 LFW-framed image, used where no face is detected.
# Derived once: detect_landmarks5 on 2,000 LFW images drawn with
# numpy.random.default_rng(0).choice(13233, 2000, replace=False) from the sorted file list
# (1,995 detected), mean per point, rounded to 0.1 px. Per-point std was 2.4-7.4 px.
# FaceScrub's means are within 3 px of these; CelebA's eyes sit about 11 px higher.
FRAMING_SIZE = 250
FRAMING_5 = np.array(
    [
        [104.4, 113.6],  # left eye centre
        [145.4, 112.8],  # right eye centre
        [125.3, 135.6],  # nose tip
        [107.4, 158.7],  # left mouth corner
        [144.4, 158.0],  # right mouth corner
    ],
    dtype=np.float64,
)

# A detected face counts only if its box centre is within this fraction of the image's shorter
# side from the image centre (75 px at 250x250). On the LFW framing, correctly detected faces
# lie within 60 px; the faces found 95-115 px out were other people beside the labelled one.
MAX_CENTRE_OFFSET = 0.3

# dlib 68-point indices (iBUG scheme): 36-41 and 42-47 are the eyes on the image's left and
# right, 30 the nose tip, 48 and 54 the mouth corners on the image's left and right.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54


@dataclass(frozen=True)
class AlignResult:
    """One aligned face: ``face`` 112x112x3 uint8, ``landmarks5`` (5, 2) float64 (x, y) in the
    source image's pixels, ``aligned`` False where the LFW-framing fallback was used."""

    face: np.ndarray
    landmarks5: np.ndarray
    aligned: bool


# ----------------------------------------------------------------------------- geometry


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama (1991) without reflection. ``src`` and ``dst`` are (N, 2) point sets, N >= 2.
    Returns the 2x3 matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points coincide; no similarity transform")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply_transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    return np.asarray(points, dtype=np.float64) @ m[:, :2].T + m[:, 2]


def warp_face(image: np.ndarray, m: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Warp ``image`` by the 2x3 matrix ``m`` (source pixels -> output pixels) to ``size x size``.

    Bilinear; outside the source is black. Pixel centres are at integer coordinates on both
    sides (the convention of dlib's landmarks and the ArcFace template), so a point at source
    pixel ``p`` lands at output pixel ``m @ p``.
    """
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)
    # PIL samples continuous coordinates whose pixel centres are at i + 0.5.
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    pil = shift @ inv @ unshift
    out = Image.fromarray(np.ascontiguousarray(image)).transform(
        (size, size), Image.Transform.AFFINE, tuple(pil[:2].ravel()), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.uint8)


def framing_landmarks5(height: int, width: int) -> np.ndarray:
    """The fallback five points for an LFW-framed image of ``height x width`` (scaled from 250)."""
    scale = np.array([width, height], dtype=np.float64) / FRAMING_SIZE
    # Scale about pixel-centre coordinates: pixel i of 250 covers [i - 0.5, i + 0.5].
    return (FRAMING_5 + 0.5) * scale - 0.5


# ----------------------------------------------------------------------------- detection

_DETECTOR = None
#: Face detectors: ``hog`` (dlib's HOG frontal detector, the default) and ``cnn`` (dlib's CNN
#: detector, ``mmod_human_face_detector.dat``: slower, finds faces behind masks and
#: sunglasses more often); ``given``: no detection where the data set gives the five points
#: (``Dataset.landmarks5``, e.g. ROF's ``landmarks5.tsv``), HOG for its other images. A
#: detector other than ``hog`` keys its own aligned cache (``given`` with a digest of the
#: points).
DETECTORS = ("hog", "cnn", "given")


def _models(detector: str = "hog"):
    """The face detector (a callable ``(image, upsample) -> rectangles``) and dlib's 68-point
    predictor, loaded once per process."""
    global _DETECTOR
    if detector == "cnn":
        cnn = load(MMOD_DETECTOR)
        return (lambda image, up: [d.rect for d in cnn(image, up)]), load(SHAPE_68)
    if detector != "hog":
        raise ConfigError(f"unknown face detector {detector!r}; known: {', '.join(DETECTORS)}")
    if _DETECTOR is None:
        import dlib

        _DETECTOR = dlib.get_frontal_face_detector()
    return _DETECTOR, load(SHAPE_68)


def _central(rects, height: int, width: int) -> list:
    """The rectangles whose centre lies within ``MAX_CENTRE_OFFSET`` of the image centre."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    limit = MAX_CENTRE_OFFSET * min(height, width)
    return [
        r
        for r in rects
        if np.hypot((r.left() + r.right()) / 2.0 - cx, (r.top() + r.bottom()) / 2.0 - cy) <= limit
    ]


def _pick_face(rects, height: int, width: int):
    """The rectangle that is large and near the centre: max of side length minus centre offset."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0

    def score(r) -> float:
        side = np.sqrt(max(r.width(), 1) * max(r.height(), 1))
        rx, ry = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
        return side - np.hypot(rx - cx, ry - cy)

    return max(rects, key=score)


def detect_landmarks5(image: np.ndarray, detector: str = "hog") -> np.ndarray | None:
    """Five points (x, y) of the framed face in ``image`` (HxWx3 uint8), or None if no face.

    Only faces centred within ``MAX_CENTRE_OFFSET`` of the image centre count (the framing
    centres the labelled person; a face further out is someone else). Detection (``detector``
    of :data:`DETECTORS`) at upsample 0, then at upsample 1 if no such face was found.
    """
    detector, predictor = _models(detector)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    rects = _central(detector(image, 0), h, w)
    if not rects:
        rects = _central(detector(image, 1), h, w)
    if not rects:
        return None
    shape = predictor(image, _pick_face(rects, h, w))
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    return np.stack(
        [
            pts[_LEFT_EYE].mean(0),
            pts[_RIGHT_EYE].mean(0),
            pts[_NOSE_TIP],
            pts[_MOUTH_LEFT],
            pts[_MOUTH_RIGHT],
        ]
    )


def align_face(image: np.ndarray, detector: str = "hog",
               fallback: np.ndarray | None = None) -> AlignResult:
    """Detect (``detector``: ``hog`` or ``cnn``; a data set's ``given`` points skip this
    function), find five landmarks and warp ``image`` (HxWx3 uint8 RGB) onto the template.

    Where no face is detected: ``fallback`` (five points in the image's pixels, a data set's
    own framing) if given, else the LFW-framing points (:func:`framing_landmarks5`), with
    ``aligned=False``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"need an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    pts = detect_landmarks5(image, detector)
    aligned = pts is not None
    if pts is None:
        pts = (framing_landmarks5(image.shape[0], image.shape[1]) if fallback is None
               else np.asarray(fallback, np.float64))
    face = warp_face(image, similarity_transform(pts, TEMPLATE_5))
    return AlignResult(face=face, landmarks5=pts, aligned=aligned)


# ----------------------------------------------------------------------------- data sets


def derive_face_box(photos, detector_upsample: int = 1) -> np.ndarray:
    """Re-derive :data:`occbench.landmarks68.FACE_BOX` from photos (HxWx3 uint8 RGB, LFW framing).

    For each photo where dlib's HOG detector finds a face (the one nearest the five aligned
    points' centre): its box centre is mapped into the 112 frame by occbench's alignment and
    its sides scaled by the alignment's scale. Returns the (n, 4) boxes (left, top, right,
    bottom); their mean is the hard-coded value.
    """
    import dlib

    detector = dlib.get_frontal_face_detector()
    boxes = []
    for photo in photos:
        photo = np.ascontiguousarray(photo, dtype=np.uint8)
        pts = detect_landmarks5(photo)
        rects = detector(photo, detector_upsample)
        if pts is None or len(rects) == 0:
            continue
        centre = pts.mean(0)
        r = min(rects, key=lambda r: np.hypot((r.left() + r.right()) / 2 - centre[0],
                                              (r.top() + r.bottom()) / 2 - centre[1]))
        m = similarity_transform(pts, TEMPLATE_5)
        scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
        c = m[:, :2] @ [(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2] + m[:, 2]
        half = scale * np.array([r.right() - r.left(), r.bottom() - r.top()]) / 2
        boxes.append([c[0] - half[0], c[1] - half[1], c[0] + half[0], c[1] + half[1]])
    return np.array(boxes)


def _init_worker(detector: str = "hog") -> None:
    ignore_interrupt()
    _models(_detecting(detector))


def _points_digest(points: dict) -> str:
    """8 hex digits that change with any given point (they key the aligned cache)."""
    import json

    text = json.dumps({k: np.round(np.asarray(v, np.float64), 2).tolist()
                       for k, v in sorted(points.items())})
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _detecting(detector: str) -> str:
    """The detector that runs for an image without given points."""
    return "hog" if detector == "given" else detector


def pad_image(image: np.ndarray, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with a black border of ``pad`` times its height/width on each side, and the
    (x, y) offset of the original's origin in the padded image."""
    if pad <= 0:
        return image, np.zeros(2)
    h, w = image.shape[:2]
    ph, pw = int(round(pad * h)), int(round(pad * w))
    return np.pad(image, ((ph, ph), (pw, pw), (0, 0))), np.array([pw, ph], dtype=np.float64)


def _align_file(task: tuple) -> tuple[int, str | None, CachedFace | str]:
    """Worker: read, hash, decode, pad and align one file (``task``: index, path, pad,
    detector, given five points or None, the set's fallback framing or None); a reason
    string if unreadable."""
    index, path, pad, detector, given, framing = task
    try:
        data = Path(path).read_bytes()
        sha1 = hashlib.sha1(data).hexdigest()
        image = decode_rgb(data, path)
        if given is not None:  # the data set's own points: no detection, no padding
            face = warp_face(image, similarity_transform(given, TEMPLATE_5))
            return index, sha1, CachedFace(face=face, landmarks5=np.asarray(given, np.float64),
                                           aligned=True)
        padded, offset = pad_image(image, pad)
        res = align_face(padded, _detecting(detector),
                         None if framing is None else np.asarray(framing) + offset)
    except DataError as exc:
        return index, None, str(exc).removeprefix(f"{path}: ")
    except OSError as exc:
        return index, None, f"cannot read ({exc.strerror or exc})"
    return index, sha1, CachedFace(face=res.face, landmarks5=res.landmarks5 - offset,
                                   aligned=res.aligned)


def _hash_file(path: Path) -> tuple[str | None, str | None]:
    """(sha1, None) or (None, reason)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    if not data:
        return None, "empty file"
    return hashlib.sha1(data).hexdigest(), None


def align_dataset(
    ds: Dataset,
    limit: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    cache_path: str | Path | None = None,
    batch: int = 256,
    detector: str | None = None,
) -> AlignedFaces:
    """Align every image of ``ds`` (the first ``limit`` if given), reusing the disk cache.

    ``detector``: ``hog``, ``cnn`` or ``given`` (:data:`DETECTORS`; default the data set's
    own, ``ds.detector``, else ``hog``); another detector than ``hog`` keys its own cache
    version. A set's ``framing5`` replaces the LFW framing where no face is found (and keys
    the cache too).
    ``workers`` processes detect faces (default ``os.cpu_count()``; 1 = in this process);
    ``progress`` shows a tqdm bar on stderr; ``cache_path`` defaults to
    ``<cache_root>/aligned/<ds.name>.sqlite``; new faces are committed every ``batch`` images,
    so an interrupted run resumes. Unreadable files are listed in ``.bad``, not fatal.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    samples = list(ds.samples if limit is None else ds.samples[: max(limit, 0)])
    if ds.faces is not None:  # faces that come aligned: used as they are
        return ds.faces.subset([s.key for s in samples])
    workers = max(1, int(workers or os.cpu_count() or 1))
    reasons: dict[int, str] = {}
    sha1s: list[str | None] = []
    for i, s in enumerate(samples):
        sha1, reason = _hash_file(s.path)
        sha1s.append(sha1)
        if reason is not None:
            reasons[i] = reason

    if cache_path is None:
        cache_path = default_cache_path(ds.name)
    pad = float(getattr(ds, "pad", 0.0) or 0.0)
    detector = detector or getattr(ds, "detector", None) or "hog"
    if detector not in DETECTORS:
        raise ConfigError(f"unknown face detector {detector!r}; known: {', '.join(DETECTORS)}")
    # the set's own points, used only by detector "given"
    given = (getattr(ds, "landmarks5", None) or {}) if detector == "given" else {}
    if detector == "given" and not given:
        raise ConfigError(f"data set {ds.name!r} gives no five-point landmarks, so detector "
                          f"'given' has nothing to use (known detectors: {', '.join(DETECTORS)})")
    version = ALIGN_VERSION if pad == 0 else f"{ALIGN_VERSION}-pad{pad:g}"
    if detector == "given":
        version += f"-given-{_points_digest(given)}"
    elif detector != "hog":
        version += f"-{detector}"
    framing = getattr(ds, "framing5", None)
    if framing is not None:  # the set's own fallback points: they change undetected faces
        framing = np.asarray(framing, np.float64)
        version += f"-framing{_points_digest({'framing': framing})}"
    with AlignedCache(cache_path, version) as cache:
        found = cache.get_many(h for h in sha1s if h is not None)
        results: dict[int, CachedFace] = {
            i: found[h] for i, h in enumerate(sha1s) if h is not None and h in found
        }
        hits = len(results)
        todo = [(i, str(samples[i].path), pad, detector, given.get(samples[i].key), framing)
                for i, h in enumerate(sha1s) if h is not None and h not in found]
        computed = 0
        pending: list[tuple[str, CachedFace]] = []
        bar = tqdm(total=len(todo), desc=f"align {ds.name}", unit="img", file=sys.stderr,
                   disable=not progress or not todo, dynamic_ncols=True)
        try:
            for index, sha1, out in _run(todo, workers, detector):
                bar.update(1)
                if isinstance(out, str):
                    reasons[index] = out
                    continue
                results[index] = out
                computed += 1
                pending.append((sha1, out))
                if len(pending) >= batch:
                    cache.put_many(pending)
                    pending = []
        finally:
            bar.close()
            if pending:
                cache.put_many(pending)

    good = [i for i in range(len(samples)) if i in results]
    images = np.empty((len(good), SIZE, SIZE, 3), dtype=np.uint8)
    landmarks = np.empty((len(good), 5, 2), dtype=np.float64)
    aligned = np.empty(len(good), dtype=bool)
    for row, i in enumerate(good):
        images[row] = results[i].face
        landmarks[row] = results[i].landmarks5
        aligned[row] = results[i].aligned
    return AlignedFaces(
        name=ds.name,
        samples=[samples[i] for i in good],
        images=images,
        aligned=aligned,
        landmarks5=landmarks,
        bad=[(samples[i].key, Path(samples[i].path), reasons[i]) for i in sorted(reasons)],
        hits=hits,
        computed=computed,
        seconds=time.perf_counter() - t0,
        version=version,
        cache_path=Path(cache_path),
    )


def _run(todo: list[tuple], workers: int, detector: str = "hog"):
    """Yield ``_align_file`` results for ``todo``, in a process pool unless it is not worth it."""
    if workers <= 1 or len(todo) < 4 * workers:
        for task in todo:
            yield _align_file(task)
        return
    with Pool(workers, initializer=_init_worker, initargs=(detector,)) as pool:
        yield from pool.imap_unordered(_align_file, todo, chunksize=4)
