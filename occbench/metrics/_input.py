"""Shared input checks of the image metrics."""

from __future__ import annotations

import numpy as np

from occbench.errors import ConfigError


def as_image_batch(a, name: str) -> np.ndarray:
    """(N, H, W, C) or (H, W, C) images as a numpy array (torch tensors accepted)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ConfigError(f"{name}: expected images of shape (N, H, W, C), got {a.shape}")
    return a


def pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_image_batch(a, "first images"), as_image_batch(b, "second images")
    if a.shape != b.shape:
        raise ConfigError(f"image batches differ in shape: {a.shape} vs {b.shape}")
    return a, b
