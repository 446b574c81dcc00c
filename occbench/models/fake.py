"""``fake``: a recognizer for wiring tests, not for numbers (lm-eval's dummy model).

It embeds a face as a fixed random projection (seeded) of its 8x8-pooled pixels, centred and
L2-normalised: deterministic, thousands of faces a second, and sensitive to what occlusion
and completion do to the pixels, so the runner, caches, protocols and reports can be tested
end to end in milliseconds. Its accuracy on real faces means nothing.
"""

from __future__ import annotations

import numpy as np

from occbench.models.base import Recognizer, l2_normalise

_POOL = 8  # 112 / 8 = 14 cells a side


class FakeRecognizer(Recognizer):
    """``create_recognizer("fake", dim=64, seed=0)``."""

    name = "fake"
    batch_size = 512

    def __init__(self, dim: int = 64, seed: int = 0):
        self.dim = int(dim)
        cells = (112 // _POOL) ** 2 * 3
        self.projection = np.random.default_rng(seed).standard_normal((cells, self.dim)).astype(
            np.float32)
        self.version = f"proj{cells}x{self.dim}-s{int(seed)}"

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3) or faces.dtype != np.uint8:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {faces.shape} "
                             f"{faces.dtype}")
        n, k = len(faces), 112 // _POOL
        pooled = faces.reshape(n, k, _POOL, k, _POOL, 3).mean(axis=(2, 4), dtype=np.float32)
        x = pooled.reshape(n, k * k * 3) / 255.0
        x -= x.mean(axis=1, keepdims=True)
        return l2_normalise(x @ self.projection)
