"""Input checks shared by the image metrics.

A batch is ``(N, H, W, 3)`` (one image ``(H, W, 3)`` is taken as a batch of one), a numpy
array or a torch tensor, uint8 or another integer or float dtype holding values in
``[0, data_range]``. Anything else is a :class:`~occbench.errors.ConfigError` naming the
metric and what was wrong.
"""

from __future__ import annotations

import numpy as np
import torch

from occbench.errors import ConfigError

Images = np.ndarray | torch.Tensor


def _is_tensor(a) -> bool:
    return isinstance(a, torch.Tensor)


def _check_dtype(a: Images, metric: str, which: str) -> None:
    if _is_tensor(a):
        ok = a.dtype.is_floating_point or (not a.dtype.is_complex and a.dtype != torch.bool)
    else:
        ok = a.dtype != np.bool_ and (np.issubdtype(a.dtype, np.integer)
                                      or np.issubdtype(a.dtype, np.floating))
    if not ok:
        raise ConfigError(f"{metric}: {which} images have dtype {a.dtype}; "
                          "expected uint8, or floats on the 0..255 scale")


def _check_range(a: Images, data_range: float, metric: str, which: str) -> None:
    """Values must be finite and within [0, data_range] (uint8 with range >= 255 always is)."""
    if a.dtype in (np.uint8, torch.uint8) and data_range >= 255:
        return
    if a.numel() if _is_tensor(a) else a.size:
        lo, hi = float(a.min()), float(a.max())
        if not (lo >= 0 and hi <= data_range):  # also catches NaN
            raise ConfigError(f"{metric}: {which} images hold values in [{lo:g}, {hi:g}], "
                              f"outside [0, {data_range:g}] (floats must use the 0..255 scale "
                              "unless data_range says otherwise)")


def image_pair(a, b, metric: str, data_range: float = 255.0) -> tuple[Images, Images]:
    """Check two batches for ``metric``; returns them as (N, H, W, 3) arrays or tensors.

    Torch tensors stay tensors (on their device); anything else becomes a numpy array.
    """
    if not data_range > 0:
        raise ConfigError(f"{metric}: data_range must be positive, got {data_range}")
    out = []
    for x, which in ((a, "first"), (b, "second")):
        if not _is_tensor(x):
            x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ConfigError(f"{metric}: {which} images have shape {tuple(x.shape)}; "
                              "expected (N, H, W, 3) RGB images or one (H, W, 3) image")
        _check_dtype(x, metric, which)
        _check_range(x, data_range, metric, which)
        out.append(x)
    if tuple(out[0].shape) != tuple(out[1].shape):
        raise ConfigError(f"{metric}: the two batches differ in shape: "
                          f"{tuple(out[0].shape)} vs {tuple(out[1].shape)}")
    return out[0], out[1]


def to_numpy(a: Images) -> np.ndarray:
    """A numpy view or copy of ``a`` (tensors are copied to the CPU)."""
    if not _is_tensor(a):
        return a
    if a.dtype == torch.bfloat16:  # numpy has no bfloat16
        a = a.float()
    return a.detach().cpu().numpy()
