"""Classical inpainting as weight-free reference completers: OpenCV's ``cv2.inpaint``.

Two completers, both **non-blind** (given the true occlusion mask, which no blind completer
gets; their rows say ``(non-blind)``), so every trained completer has a classical floor:

* ``inpaint-telea``: Telea's fast marching method (A. Telea, "An image inpainting technique
  based on the fast marching method", J. Graphics Tools 2004);
* ``inpaint-ns``: the Navier-Stokes method (Bertalmio, Bertozzi, Sapiro, CVPR 2001).

Option ``radius`` (pixels, default 3): the neighbourhood each inpainted pixel is drawn from.
Pixels outside the mask are returned unchanged.
"""

from __future__ import annotations

import numpy as np

from occbench.errors import ConfigError
from occbench.models.base import Completer
from occbench.options import at_least

METHODS = {"telea": "INPAINT_TELEA", "ns": "INPAINT_NS"}


class OpenCVInpaint(Completer):
    """``cv2.inpaint`` of each face inside the true occlusion mask."""

    blind = False
    predicts_mask = False  # the returned mask is the one it was given

    def __init__(self, method: str = "telea", radius: int = 3):
        import cv2

        if method not in METHODS:
            raise ConfigError(f"opencv inpainting: method must be one of "
                              f"{', '.join(METHODS)}, got {method!r}")
        self.method = method
        self.name = f"inpaint-{method}"
        self.radius = at_least(radius, 1, f"completer {self.name}: radius")
        self._flag = getattr(cv2, METHODS[method])
        # the library's version fixes the output (with the options, which key the cache too)
        self.version = f"cv{cv2.__version__}"

    def complete(self, occluded, clean=None, mask=None):
        import cv2

        if mask is None:
            raise ConfigError(f"completer {self.name} is non-blind: it needs the true "
                              "occlusion mask")
        occluded = np.asarray(occluded, dtype=np.uint8)
        holes = (np.asarray(mask) > 0.5).astype(np.uint8)
        out = occluded.copy()
        for i in range(len(occluded)):
            if holes[i].any():
                out[i] = cv2.inpaint(np.ascontiguousarray(occluded[i]), holes[i], self.radius,
                                     self._flag)
        return out, holes.astype(np.float32)


def telea(radius: int = 3) -> OpenCVInpaint:
    """Telea's fast-marching inpainting (non-blind)."""
    return OpenCVInpaint("telea", radius)


def navier_stokes(radius: int = 3) -> OpenCVInpaint:
    """Navier-Stokes inpainting (non-blind)."""
    return OpenCVInpaint("ns", radius)
