"""Peak signal-to-noise ratio, per image.

PSNR = 10 log10(data_range² / MSE), the MSE taken over all pixels and channels of an image.
Defaults: ``data_range=255`` (uint8 images). Identical images give ``inf`` (as scikit-image's
``peak_signal_noise_ratio``); callers averaging PSNR leave those out and say so.
"""

from __future__ import annotations

import numpy as np

from occbench.metrics._input import pair


def psnr(a, b, data_range: float = 255.0) -> np.ndarray:
    """Per-image PSNR in dB of two (N, H, W, C) batches (or one image each): (N,) float64."""
    a, b = pair(a, b)
    if a.dtype == np.uint8 and b.dtype == np.uint8:
        diff = a.astype(np.int32) - b.astype(np.int32)  # exact
    else:
        diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.mean(np.square(diff, dtype=np.float64).reshape(len(a), -1), axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)
