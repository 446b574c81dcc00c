"""Mask IoU: how well a completer finds the occluder."""

from __future__ import annotations

import numpy as np


def mask_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-image IoU of ``pred > 0.5`` against the true binary mask (1 where both are empty).

    ``pred``: (N, H, W) predicted mask probabilities; ``true``: (N, H, W) {0, 1}."""
    p = np.asarray(pred) > 0.5
    t = np.asarray(true).astype(bool)
    inter = (p & t).reshape(len(p), -1).sum(1)
    union = (p | t).reshape(len(p), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)
