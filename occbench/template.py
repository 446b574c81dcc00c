"""The 112x112 five-point face template and the regions occlusions are placed on.

The five points (left eye centre, right eye centre, nose tip, left and right mouth corner,
"left" meaning the image's left) are the standard ArcFace/insightface 112x112 template,
in (x, y) pixel coordinates. Every region below is derived from them, so alignment,
occlusion placement and discriminator crops share one geometry.
"""

from __future__ import annotations

import numpy as np

SIZE = 112

TEMPLATE_5 = np.array(
    [
        [38.2946, 51.6963],  # left eye centre
        [73.5318, 51.5014],  # right eye centre
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float64,
)

LEFT_EYE = TEMPLATE_5[0]
RIGHT_EYE = TEMPLATE_5[1]
NOSE = TEMPLATE_5[2]
MOUTH = (TEMPLATE_5[3] + TEMPLATE_5[4]) / 2.0

# The face itself, as an axis-aligned ellipse around the landmarks: centre between the eyes
# and the mouth, half-width reaching just past the eyes' outer corners, half-height from the
# brows to the chin. Used to place `outside` occlusions off the face.
FACE_CENTRE = np.array([56.0, 68.0])
FACE_HALF_AXES = np.array([36.0, 46.0])


def crop_box(centre, size: int = 28) -> tuple[int, int, int, int]:
    """A ``size x size`` box (x0, y0, x1, y1) centred on ``centre``, kept inside the image."""
    cx, cy = (int(round(float(c))) for c in centre)
    x0 = min(max(cx - size // 2, 0), SIZE - size)
    y0 = min(max(cy - size // 2, 0), SIZE - size)
    return x0, y0, x0 + size, y0 + size
