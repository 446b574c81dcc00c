"""Landmark protocol (paper Fig. 8): how far occlusion / completion moves 68 facial landmarks.

dlib's 68-point shape predictor (iBUG 300-W scheme) runs on the clean aligned face (the
reference), the occluded face and the completed face. Per image:

- ``nme``  = mean over the 68 points of |p - p_ref|, divided by the reference's outer-eye-corner
  distance (points 36 and 45, 0-based);
- ``nmse`` = mean over the 68 points of |p - p_ref|^2, divided by that distance squared.

    from occbench.protocols.landmarks import evaluate_landmarks
    res = evaluate_landmarks(clean, occluded, completed)   # (N, 112, 112, 3) uint8 each
    res["occluded"]["nme"].mean(), res["completed"]["nme"].mean()

Faces are not detected (a detector often fails on an occluded face, and a box that moves with
the occlusion would move the landmarks too): the predictor starts from one fixed face box in
the 112x112 template frame, :data:`FACE_BOX`, on the face upsampled ``UPSAMPLE`` = 2 times
(dlib reports whole pixels, so this halves the rounding in 112-frame pixels).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from occbench.dlib_models import SHAPE_68, load
from occbench.template import SIZE

# Fixed face box (left, top, right, bottom), 112-frame pixels with pixel centres at integers.
# Derived with derive_face_box() on 100 LFW photos (the first image of each of 100 people drawn
# with numpy.random.default_rng(0).choice(n_people, 100, replace=False) from the sorted folder
# list; 99 usable): dlib's HOG detector box on the photo (upsample 1), its centre mapped into
# the 112 frame by occbench's alignment and its sides scaled by the alignment's scale, averaged.
# Per-photo std of each side: 4-6 px.
# Measured on 59 of those photos against the predictor's points on the photo itself (detected
# box), mapped into the 112 frame, mean NME: this fixed box at upsample 1 / 2 / 4: 0.0295 /
# 0.0283 / 0.0281; the HOG box detected on the aligned face instead: 0.0328 / 0.0313 / 0.0309
# (and the detector missed 3 of the 59 clean aligned faces).
FACE_BOX = (8.86, 24.51, 97.91, 113.14)
UPSAMPLE = 2

OUTER_EYE_CORNERS = (36, 45)
N_POINTS = 68

def _check_faces(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[None]
    if faces.ndim != 4 or faces.shape[1:] != (SIZE, SIZE, 3) or faces.dtype != np.uint8:
        raise ValueError(f"expected (N, {SIZE}, {SIZE}, 3) uint8 faces, got {faces.shape} {faces.dtype}")
    return faces


def landmarks68(faces: np.ndarray, upsample: int = UPSAMPLE,
                box: tuple[float, float, float, float] = FACE_BOX) -> np.ndarray:
    """dlib's 68 landmarks of aligned faces: (N, 112, 112, 3) uint8 -> (N, 68, 2) float64.

    Points are (x, y) in 112-frame pixels (pixel centres at integers). ``upsample`` (default 2)
    enlarges each face bilinearly first; ``box`` (default :data:`FACE_BOX`) is where the
    predictor starts. Deterministic. A single (112, 112, 3) face is taken as a batch of one.
    """
    import dlib

    faces = _check_faces(faces)
    up = int(upsample)
    if up < 1:
        raise ValueError(f"upsample must be >= 1, got {upsample}")
    # PIL's resize maps pixel centres as big = up * small + (up - 1) / 2.
    offset = (up - 1) / 2.0
    rect = dlib.rectangle(*(int(round(v * up + offset)) for v in box))
    predictor = load(SHAPE_68)
    out = np.empty((len(faces), N_POINTS, 2), dtype=np.float64)
    for i, face in enumerate(faces):
        if up > 1:
            img = Image.fromarray(face).resize((SIZE * up, SIZE * up), Image.Resampling.BILINEAR)
            face = np.asarray(img)
        shape = predictor(np.ascontiguousarray(face), rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        out[i] = (pts - offset) / up
    return out


def interocular(points: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance (points 36 and 45) of (N, 68, 2) points -> (N,)."""
    points = np.asarray(points, dtype=np.float64)
    a, b = OUTER_EYE_CORNERS
    return np.linalg.norm(points[:, a] - points[:, b], axis=-1)


def landmark_errors(reference_pts: np.ndarray, other_pts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image errors of ``other_pts`` against ``reference_pts`` (both (N, 68, 2)).

    Returns ``{"nme": (N,), "nmse": (N,)}``: mean point distance / iod and mean squared point
    distance / iod^2, iod being the reference's outer-eye-corner distance. A reference with
    iod 0 gives inf (or nan where the points agree too).
    """
    ref = np.asarray(reference_pts, dtype=np.float64)
    other = np.asarray(other_pts, dtype=np.float64)
    if ref.shape != other.shape or ref.ndim != 3 or ref.shape[2] != 2 or ref.shape[1] <= max(OUTER_EYE_CORNERS):
        raise ValueError(f"need two (N, 68, 2) point arrays, got {ref.shape} and {other.shape}")
    iod = interocular(ref)
    sq = ((other - ref) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        nme = np.sqrt(sq).mean(1) / iod
        nmse = sq.mean(1) / iod**2
    return {"nme": nme, "nmse": nmse}


def evaluate_landmarks(clean: np.ndarray, occluded: np.ndarray, completed: np.ndarray | None = None,
                       upsample: int = UPSAMPLE) -> dict[str, dict[str, np.ndarray]]:
    """The Fig. 8 comparison for one batch of faces (each (N, 112, 112, 3) uint8, same order).

    Returns ``{"occluded": {"nme", "nmse"}, "completed": {"nme", "nmse"}}`` of per-image (N,)
    arrays against the landmarks of ``clean``; ``"completed"`` only when ``completed`` is given.
    """
    clean = _check_faces(clean)
    ref = landmarks68(clean, upsample)
    out = {}
    for name, faces in (("occluded", occluded), ("completed", completed)):
        if faces is None:
            continue
        faces = _check_faces(faces)
        if len(faces) != len(clean):
            raise ValueError(f"{name}: {len(faces)} faces for {len(clean)} clean ones")
        out[name] = landmark_errors(ref, landmarks68(faces, upsample))
    return out


def derive_face_box(photos, detector_upsample: int = 1) -> np.ndarray:
    """Re-derive :data:`FACE_BOX` from photos (HxWx3 uint8 RGB, LFW framing).

    For each photo where dlib's HOG detector finds a face (the one nearest the five aligned
    points' centre): its box centre is mapped into the 112 frame by occbench's alignment and
    its sides scaled by the alignment's scale. Returns the (n, 4) boxes (left, top, right,
    bottom); their mean is the hard-coded value.
    """
    import dlib

    from occbench.align import detect_landmarks5, similarity_transform
    from occbench.template import TEMPLATE_5

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


# ----------------------------------------------------------------------------- plug-in


class Landmarks:
    """Paper Fig. 8 rows: NME / NMSE of the completed face's 68 landmarks against the clean
    face's, on ``config.landmark_images`` faces of the verification pairs (a seeded sample)."""

    name = "landmarks"
    on_clean = False

    def __init__(self, config):
        self.config = config

    def prepare(self, ctx) -> None:
        from occbench.protocols.verification import pair_faces

        faces = pair_faces(ctx)[1]
        keys = faces.keys
        n = min(self.config.landmark_images, len(keys))
        pick = np.sort(np.random.default_rng(self.config.seed).choice(len(keys), n, replace=False))
        self.faces = faces.subset([keys[i] for i in pick])

    def needs(self, ctx):
        return []  # the completed faces come from the completer's own cache, on rank 0

    def evaluate(self, ctx, cond):
        from occbench.results import mean_ci

        errors = landmark_errors(self.faces.landmarks68, landmarks68(ctx.completed(self.faces, cond)))
        rows, ds = [], ctx.dataset(self.config.pairs_set).name
        for metric, values in errors.items():
            mean, lo, hi = mean_ci(values, seed=self.config.seed)
            rows.append(ctx.row(self.name, ds, cond, metric, mean, len(values), lo, hi))
        return rows
