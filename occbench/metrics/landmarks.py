"""Landmark errors (paper Fig. 8): how far one set of 68 points lies from a reference set.

- ``nme``  = mean over the 68 points of |p - p_ref|, divided by the reference's outer-eye-corner
  distance (points 36 and 45, 0-based);
- ``nmse`` = mean over the 68 points of |p - p_ref|^2, divided by that distance squared.
"""

from __future__ import annotations

import numpy as np

OUTER_EYE_CORNERS = (36, 45)


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
