"""dlib's 68 facial landmarks (iBUG 300-W scheme) of aligned 112x112 faces.

    from occbench.landmarks68 import landmarks68
    points = landmarks68(faces)          # (N, 112, 112, 3) uint8 -> (N, 68, 2) float64

Faces are not detected (a detector often fails on an occluded face, and a box that moves with
the occlusion would move the landmarks too): the predictor starts from one fixed face box in
the 112x112 template frame, :data:`FACE_BOX`, on the face upsampled ``UPSAMPLE`` = 2 times
(dlib reports whole pixels, so this halves the rounding in 112-frame pixels). Used by the
landmark protocol (Fig. 8), by the occlusion forms placed on landmarks (masks, glasses) and
cached with the alignment (:func:`occbench.aligned_cache.cached_landmarks68`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from occbench.dlib_models import SHAPE_68, load
from occbench.template import SIZE

# Fixed face box (left, top, right, bottom), 112-frame pixels with pixel centres at integers.
# Derived with occbench.align.derive_face_box() on 100 LFW photos (the first image of each of 100 people drawn
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

N_POINTS = 68


def check_faces(faces: np.ndarray) -> np.ndarray:
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

    faces = check_faces(faces)
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
