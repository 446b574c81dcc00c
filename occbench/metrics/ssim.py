"""Structural similarity (SSIM, Wang et al. 2004), per image.

Defaults are the paper's and those of scikit-image's ``structural_similarity(a, b,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1,
data_range=255)``, which this matches to about 1e-6:

* ``data_range=255``: uint8 images, or floats on the same 0..255 scale;
* ``sigma=1.5``: Gaussian window truncated at 3.5 sigma, radius ``int(3.5 * sigma + 0.5)``
  = 5, i.e. 11x11, weights as ``scipy.ndimage.gaussian_filter``'s;
* ``k1=0.01``, ``k2=0.03``: C1 = (k1 * data_range)², C2 = (k2 * data_range)²;
* population (not sample) variances and covariance;
* the SSIM map of each channel averaged over the image less a border of the window radius,
  then the three channel values averaged.

Exactness: scikit-image filters with reflect padding and then drops a border of the window
radius, so every pixel that enters its mean has its whole window inside the image. A valid
(unpadded) separable filter therefore gives the same local statistics without any padding.
The filter runs in float32 on values shifted by half the data range, which keeps the
cancellation in ``E[x²] - E[x]²`` far below 1e-4 of SSIM; per-image means are float64.

Backends (``device``, ``backend``, ``chunk``):

* CPU (the default without a GPU): numpy, ``chunk=1`` image at a time, in ~3 MB of float32
  buffers reused from image to image, so the working set stays in cache (here: ~1,000 faces
  of 112x112 a second on one core, 2.5-2.8x a loop over scikit-image). numpy's element-wise
  operations run on one thread; torch's CPU operations split every call over OpenMP
  threads, and on a busy machine each call then waits for a descheduled thread (measured
  here on 2 shared cores: as fast as numpy when idle, 30-50x slower when other processes
  are busy). occbench never changes torch's thread settings.
* GPU (``device=None`` picks ``cuda`` when available, or the device of GPU tensors given):
  torch, 256 images of 112x112 per step (``chunk``; ~0.7 GB of buffers). ``backend="torch"``
  also runs this code on the CPU (default ``chunk=4``): that is how the tests check it
  without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from occbench.errors import ConfigError
from occbench.metrics._input import image_pair, to_numpy

SIGMA = 1.5
TRUNCATE = 3.5  # scikit-image's truncation for gaussian_weights=True
K1, K2 = 0.01, 0.03


def gaussian_kernel(sigma: float = SIGMA, truncate: float = TRUNCATE) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian: radius ``int(truncate * sigma + 0.5)``, sum 1 (float64)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 / sigma**2 * x**2)
    return w / w.sum()


def _window(axis: int, start: int, n: int) -> tuple:
    """Index of ``n`` positions from ``start`` along ``axis`` (-1 or -2) of (..., H, W)."""
    if axis == -1:
        return (..., slice(start, start + n))
    return (..., slice(start, start + n), slice(None))


class _Workspace:
    """Preallocated float32 arrays for chunks of ``m`` images, numpy or torch.

    Every step writes into these (``out=`` and in-place operators): on the CPU, allocating
    and freeing ~3 MB of temporaries per image made the kernel page-fault its way to half
    its speed.
    """

    def __init__(self, empty, m: int, h: int, w: int, r: int):
        self.maps = empty((5, m, 3, h, w))  # x, y, x², y², xy (shifted)
        self.rows = empty((5, m, 3, h, w - 2 * r))  # filtered along W
        self.stats = empty((5, m, 3, h - 2 * r, w - 2 * r))  # and along H: local moments
        self._scratch = empty((5 * m * 3 * h * (w - 2 * r),))

    def scratch(self, shape: tuple) -> object:
        size = int(np.prod(shape))
        return self._scratch[:size].reshape(shape)


def _filter2d(ws: _Workspace, g: list[float], mul, add) -> None:
    """``ws.maps`` filtered along W into ``ws.rows``, then along H into ``ws.stats``."""
    r = len(g) // 2
    for axis, src, dst in ((-1, ws.maps, ws.rows), (-2, ws.rows, ws.stats)):
        n = src.shape[axis] - 2 * r
        pair = ws.scratch(tuple(dst.shape))
        mul(src[_window(axis, r, n)], g[r], out=dst)
        for k in range(r):
            add(src[_window(axis, k, n)], src[_window(axis, 2 * r - k, n)], out=pair)
            pair *= g[k]
            dst += pair


def _ssim_map(ws: _Workspace, g: list[float], c1: float, c2: float, shift: float, mul, add):
    """SSIM map (m, 3, H - 2r, W - 2r) of the chunk in ``ws.maps``, computed in place."""
    _filter2d(ws, g, mul, add)
    mx, my, vx, vy, cov = ws.stats  # local E[x], E[y], E[x²], E[y²], E[xy] for now
    t = ws.scratch((3, *mx.shape))
    mul(mx, my, out=t[0])
    cov -= t[0]
    mul(mx, mx, out=t[1])
    vx -= t[1]
    mul(my, my, out=t[1])
    vy -= t[1]
    vx += vy
    vx += c2  # denominator, contrast-structure part: var x + var y + C2
    cov *= 2
    cov += c2  # numerator, contrast-structure part: 2 cov + C2
    mx += shift
    my += shift
    mul(mx, my, out=t[0])
    t[0] *= 2
    t[0] += c1
    t[0] *= cov  # numerator (2 mx my + C1)(2 cov + C2)
    mul(mx, mx, out=t[1])
    mul(my, my, out=t[2])
    t[1] += t[2]
    t[1] += c1
    t[1] *= vx  # denominator (mx² + my² + C1)(var x + var y + C2)
    t[0] /= t[1]
    return t[0]


class _Ops(NamedTuple):
    """The few array operations that differ between numpy and torch."""

    empty: Callable  # shape -> uninitialised float32 array
    mul: Callable  # mul(a, b, out=...)
    add: Callable  # add(a, b, out=...)
    planes: Callable  # (m, H, W, 3) chunk -> (m, 3, H, W) view, on the right device
    channel_means: Callable  # (m, 3, H', W') float32 map -> (m, 3) float64 numpy


def _numpy_ops() -> _Ops:
    return _Ops(partial(np.empty, dtype=np.float32), np.multiply, np.add,
                lambda v: to_numpy(v).transpose(0, 3, 1, 2),
                lambda s: s.reshape(len(s), 3, -1).mean(axis=2, dtype=np.float64))


def _torch_ops(dev: torch.device) -> _Ops:
    return _Ops(partial(torch.empty, dtype=torch.float32, device=dev), torch.mul, torch.add,
                lambda v: torch.as_tensor(v, device=dev).permute(0, 3, 1, 2),
                lambda s: s.reshape(len(s), 3, -1).to(torch.float64).mean(dim=2).cpu().numpy())


def _resolve(a, b, device, backend) -> tuple[str, torch.device]:
    """(backend name, torch device) from the arguments; see the module docstring."""
    if device is None:
        gpu = [x.device for x in (a, b) if isinstance(x, torch.Tensor) and x.device.type != "cpu"]
        if gpu:
            dev = gpu[0]
        else:
            dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"ssim: bad device {device!r} ({exc})") from None
    if backend is None:
        backend = "numpy" if dev.type == "cpu" else "torch"
    if backend not in ("numpy", "torch"):
        raise ConfigError(f"ssim: backend must be 'numpy' or 'torch', got {backend!r}")
    if backend == "numpy" and dev.type != "cpu":
        raise ConfigError(f"ssim: the numpy backend runs on the CPU, not on {dev}")
    return backend, dev


def _default_chunk(backend: str, dev: torch.device, h: int, w: int) -> int:
    """1 image a step with numpy, 4 with torch on the CPU, 256 of 112x112 on a GPU (by area)."""
    if backend == "numpy":
        return 1
    if dev.type == "cpu":
        return 4
    return max(1, 256 * 112 * 112 // (h * w))


def ssim(a, b, data_range: float = 255.0, sigma: float = SIGMA, k1: float = K1,
         k2: float = K2, device: str | torch.device | None = None, backend: str | None = None,
         chunk: int | None = None) -> np.ndarray:
    """Per-image SSIM of two (N, H, W, 3) batches (or one image each): (N,) float64.

    Defaults: ``data_range=255``, ``sigma=1.5``, ``k1=0.01``, ``k2=0.03`` (see the module
    docstring); ``device=None`` = a GPU when there is one, else the CPU; ``backend=None`` =
    numpy on the CPU, torch elsewhere; ``chunk=None`` = 1 image a step with numpy, 4 with
    torch on the CPU, 256 of 112x112 on a GPU (fewer for larger images). Images must be at
    least 2r + 1 pixels a side (11 for sigma 1.5).
    """
    a, b = image_pair(a, b, "ssim", data_range)
    if not sigma > 0 or k1 < 0 or k2 < 0:
        raise ConfigError(f"ssim: need sigma > 0 and k1, k2 >= 0; got {sigma}, {k1}, {k2}")
    backend, dev = _resolve(a, b, device, backend)
    n, h, w, _ = a.shape
    if chunk is None:
        chunk = _default_chunk(backend, dev, h, w)
    if int(chunk) != chunk or chunk < 1:
        raise ConfigError(f"ssim: chunk must be a positive integer, got {chunk!r}")
    chunk = int(chunk)
    g = gaussian_kernel(sigma)
    if min(h, w) < len(g):
        raise ConfigError(f"ssim: images of {h}x{w} are smaller than the {len(g)}x{len(g)} "
                          f"window of sigma {sigma}")
    taps = [float(t) for t in g]
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    shift = data_range / 2.0
    ops = _numpy_ops() if backend == "numpy" else _torch_ops(dev)
    workspaces: dict[int, _Workspace] = {}  # by chunk length: at most two
    out = np.empty(n, dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, n, chunk):
            x, y = ops.planes(a[s:s + chunk]), ops.planes(b[s:s + chunk])
            m = len(x)
            if m not in workspaces:
                workspaces[m] = _Workspace(ops.empty, m, h, w, len(g) // 2)
            ws = workspaces[m]
            ws.maps[0] = x  # converts to float32
            ws.maps[1] = y
            ws.maps[:2] -= shift
            ops.mul(ws.maps[:2], ws.maps[:2], out=ws.maps[2:4])
            ops.mul(ws.maps[0], ws.maps[1], out=ws.maps[4])
            s_map = _ssim_map(ws, taps, c1, c2, shift, ops.mul, ops.add)
            out[s:s + m] = ops.channel_means(s_map).mean(axis=1)
    return out


def mean_ssim(values) -> float:
    """Mean of per-image SSIM values (NaN for none). SSIM is always finite; NaN is an error."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(v).all():
        raise ConfigError(f"mean_ssim: {int((~np.isfinite(v)).sum())} of {v.size} values "
                          "are not finite")
    return float(v.mean()) if v.size else float("nan")
