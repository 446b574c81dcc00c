"""Landmark protocol (paper Fig. 8): how far occlusion / completion moves 68 facial landmarks.

dlib's 68-point shape predictor (:mod:`occbench.landmarks68`) runs on the clean aligned face
(the reference), the occluded face and the completed face; per image the errors of
:mod:`occbench.metrics.landmarks` (``nme``, ``nmse``: point distances over the reference's
outer-eye-corner distance).

    from occbench.protocols.landmarks import evaluate_landmarks
    res = evaluate_landmarks(clean, occluded, completed)   # (N, 112, 112, 3) uint8 each
    res["occluded"]["nme"].mean(), res["completed"]["nme"].mean()
"""

from __future__ import annotations

import numpy as np

from occbench.landmarks68 import UPSAMPLE, check_faces, landmarks68
from occbench.metrics.landmarks import landmark_errors
from occbench.protocols.base import Headline, Protocol


def evaluate_landmarks(clean: np.ndarray, occluded: np.ndarray, completed: np.ndarray | None = None,
                       upsample: int = UPSAMPLE) -> dict[str, dict[str, np.ndarray]]:
    """The Fig. 8 comparison for one batch of faces (each (N, 112, 112, 3) uint8, same order).

    Returns ``{"occluded": {"nme", "nmse"}, "completed": {"nme", "nmse"}}`` of per-image (N,)
    arrays against the landmarks of ``clean``; ``"completed"`` only when ``completed`` is given.
    """
    clean = check_faces(clean)
    ref = landmarks68(clean, upsample)
    out = {}
    for name, faces in (("occluded", occluded), ("completed", completed)):
        if faces is None:
            continue
        faces = check_faces(faces)
        if len(faces) != len(clean):
            raise ValueError(f"{name}: {len(faces)} faces for {len(clean)} clean ones")
        out[name] = landmark_errors(ref, landmarks68(faces, upsample))
    return out


# ----------------------------------------------------------------------------- plug-in


class Landmarks(Protocol):
    """Paper Fig. 8 rows: NME / NMSE of the completed face's 68 landmarks against the clean
    face's, on ``config.landmark_images`` faces of the verification pairs (a seeded sample)."""

    name = "landmarks"
    on_clean = False
    headlines = (Headline("nme", "landmark NME", digits=4, higher_is_better=False,
                          order=40),)

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
        from occbench.metrics.bootstrap import mean_ci

        errors = landmark_errors(self.faces.landmarks68, landmarks68(ctx.completed(self.faces, cond)))
        rows, ds = [], ctx.dataset(self.config.pairs_set).name
        for metric, values in errors.items():
            mean, lo, hi = mean_ci(values, seed=self.config.seed)
            rows.append(ctx.row(self.name, ds, cond, metric, mean, len(values), lo, hi))
        return rows
