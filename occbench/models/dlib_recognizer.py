"""dlib's pretrained face-recognition ResNet as the ``dlib`` recognizer (128-d).

dlib's network (``dlib_face_recognition_resnet_model_v1.dat``, 99.38 % on LFW with dlib's own
pipeline) expects 150x150 chips cut by ``dlib.get_face_chip(img, shape_5pt, 150, 0.25)``.
occbench hands recognizers 112x112 faces aligned to ``occbench.template.TEMPLATE_5``, so this
adapter re-warps each face into dlib's chip frame with ONE fixed similarity transform
(:data:`TEMPLATE_TO_CHIP`), bilinear, chip pixels that fall outside the 112x112 face black
(as dlib's own chip extraction does outside a photo), then runs the network and
L2-normalises the descriptors.

    from occbench.models import create_recognizer
    rec = create_recognizer("dlib")
    emb = rec.embed(faces)          # (N, 112, 112, 3) uint8 -> (N, 128) float32, unit rows

Engines (the ``engine`` option; both run the same chips, :meth:`DlibRecognizer.chips`):

* ``torch`` (default): the same network read from the same ``.dat`` file into torch
  (:mod:`occbench.models.dlib_torch`), in this process, in batches of ``batch_size`` on every
  core torch uses (CUDA when present), channels-last, float32 (CUDA: true fp32, no TF32).
  ``precision="bf16"`` (or ``auto``: bf16 where the CPU computes it natively) is faster but
  not the same: LFW verification at rect a = 0.1 eyes moved from 95.50 to 95.40 % (clean
  98.88 -> 98.87), so it keys a cache of its own and is not the default. Measured on the first 1000 LFW faces (occbench's alignment), raw descriptors
  against float32 torch, which equals dlib's ``compute_face_descriptor`` to cosine 0.9999999
  (max abs difference 4e-7 on descriptors of norm ~1.4): bf16 min cosine 0.999978, mean
  0.999988, max abs difference 3e-3 (400 of those faces with training occlusions: min
  0.999978). On one niced thread of a busy 2-core Xeon (AMX) the torch engine ran ~170
  faces/s in fp32 and ~300 in bf16 (batches of 64), dlib's C++ 13.
* ``dlib``: dlib's own C++ network (``compute_face_descriptor``), one core per process, in
  ``workers`` processes, ``chunk`` chips each: the reference.

The engines give the same embeddings to cosine >= 0.9999 (``tests/test_dlib_recognizer.py``,
``reports/dlib_equality.py``), so the engine and the precision do not key the feature cache:
``version`` is the network file's digest whichever computes it.

Geometry: the chip sees the 112 frame's x 7.4-105.9, y 22.4-120.8, i.e. 70 % of the aligned
face; the top 22 rows (forehead, hair) and the outer 7 columns each side never reach the
network, and the chip's bottom 15 rows (10 % of it, below the 112 face's chin) are black.

Quality (LFW, occbench's alignment): the 600 pairs of fold 1 of ``pairs.txt`` are separated
with 99.2 % accuracy at the best threshold (dlib's own pipeline on the same photos: 98.7 %).

How :data:`TEMPLATE_TO_CHIP` was derived (re-run with :func:`derive_template_to_chip`): on 100
LFW photos (the first image of each of 100 people drawn with
``numpy.random.default_rng(0).choice(n_people, 100, replace=False)`` from the sorted folder
list) dlib's pipeline gives its source->chip transform B (HOG detector,
``shape_predictor_5_face_landmarks``, ``get_face_chip_details(shape, 150, 0.25)``, mapped as
dlib's ``get_mapping_to_chip`` does) and occbench's alignment gives its source->112 transform
A. B @ inv(A) maps the 112 frame to the chip frame for that photo; one similarity was fitted by
least squares to all of them on a 12x12 grid of points spanning the 112 frame.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import multiprocessing as mp
import os
import weakref
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from occbench.dlib_models import FACE_RESNET, load, model_path
from occbench.errors import ConfigError
from occbench.models.base import Recognizer, l2_normalise
from occbench.workers import ignore_interrupt

CHIP_SIZE = 150
CHIP_PADDING = 0.25
ENGINES = ("torch", "dlib")
PRECISIONS = ("auto", "fp32", "bf16")

# 112 template frame -> dlib 150x150 chip frame, [[a, -b, tx], [b, a, ty]] on (x, y, 1) pixel
# coordinates: scale 1.5167, rotation 0.18 degrees, fitted as described in the module docstring
# (99 of the 100 photos usable). Per photo the best transform varies (scale 1.42-1.66 and
# rotation -3.6 to +5.2 degrees, 5th-95th percentiles): dlib aligns on eye corners and the
# nose base, occbench on eye centres, nose tip and mouth corners. The network shrugs that off:
# on 50 other LFW photos the adapter's embedding has cosine 0.992 on average (min 0.977) with
# dlib's own pipeline's embedding of the photo.
TEMPLATE_TO_CHIP = np.array(
    [
        [1.51670, -0.00471, -11.1050],
        [0.00471, 1.51670, -34.3484],
    ],
    dtype=np.float64,
)


def _sampling_grid(transform: np.ndarray, in_size: int, out_size: int):
    """Bilinear gather indices and weights for warping ``in_size`` faces to ``out_size``.

    ``transform`` maps input pixel coordinates to output ones (2x3). Returns (flat indices
    (4, out*out) into an in_size*in_size image, weights (4, out*out) float32) with weights 0
    for output pixels whose source point lies outside the input (they come out black).
    """
    full = np.vstack([transform, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)
    ys, xs = np.mgrid[0:out_size, 0:out_size].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (sx >= 0) & (sx <= in_size - 1) & (sy >= 0) & (sy <= in_size - 1)
    x0 = np.clip(np.floor(sx), 0, in_size - 1)
    y0 = np.clip(np.floor(sy), 0, in_size - 1)
    fx, fy = sx - x0, sy - y0
    x1 = np.minimum(x0 + 1, in_size - 1)
    y1 = np.minimum(y0 + 1, in_size - 1)
    idx = np.stack([y0 * in_size + x0, y0 * in_size + x1, y1 * in_size + x0, y1 * in_size + x1])
    w = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * inside
    return idx.reshape(4, -1).astype(np.int64), w.reshape(4, -1).astype(np.float32)


def warp_batch(faces: np.ndarray, transform: np.ndarray = TEMPLATE_TO_CHIP,
               out_size: int = CHIP_SIZE) -> np.ndarray:
    """Warp (N, S, S, 3) uint8 faces with ``transform`` (2x3, input -> output pixels).

    Bilinear; output pixels that map outside the input are black. Returns (N, out, out, 3)
    uint8 (defaults: 112 template frame -> dlib's 150x150 chip frame).
    """
    faces = np.asarray(faces)
    n, size = faces.shape[0], faces.shape[1]
    idx, w = _sampling_grid(transform, size, out_size)
    flat = faces.reshape(n, size * size, 3).astype(np.float32)
    out = sum(flat[:, idx[k]] * w[k][None, :, None] for k in range(4))
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(n, out_size, out_size, 3)
    return np.ascontiguousarray(out)  # dlib only takes C-contiguous chips


@functools.cache
def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _describe(chips: np.ndarray) -> np.ndarray:
    """Raw 128-d descriptors of (n, 150, 150, 3) chips (runs in a worker process too)."""
    desc = load(FACE_RESNET).compute_face_descriptor(list(chips))
    return np.array([np.asarray(d) for d in desc], dtype=np.float32).reshape(len(chips), -1)


@contextlib.contextmanager
def _ieee_fp32():
    """cuDNN convolutions and CUDA matmuls in true float32 (no TF32) inside the block; the
    previous settings are restored after it."""
    import torch

    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


class DlibRecognizer(Recognizer):
    """dlib's face-recognition ResNet v1 on chips re-warped from occbench's 112x112 faces.

    ``engine="torch"`` (default): the network in torch (:mod:`occbench.models.dlib_torch`),
    in-process, ``batch_size`` chips at a time (default 64), on ``device`` (default CUDA when
    present, else the CPU, every core torch uses), channels-last; ``precision`` ``fp32``
    (default), ``bf16`` (CPU only) or ``auto`` (bf16 on a bf16-native CPU, else fp32). Embeddings
    equal the dlib engine's to cosine 0.9999999 in fp32 and 0.99998 in bf16 (min over 1000
    LFW faces; see the module docstring).

    ``engine="dlib"``: dlib's C++ network, which runs on one core, so ``embed`` spreads
    batches of ``chunk`` (default 32) chips over ``workers`` processes (default: every CPU;
    1 = in-process); ``batch_size`` is then ``chunk * workers``.

    The descriptors do not depend on how the work is split, and the engines agree in fp32 (to
    4e-7), so those options do not key the feature cache (``cache_neutral``); ``precision``
    does (bf16 moves LFW figures by 0.1 point).
    """

    name = "dlib"
    dim = 128
    # how the work is split or which of two equal implementations runs it (cosine >= 0.9999,
    # measured: module docstring), not what it computes
    cache_neutral = ("engine", "device", "batch_size", "chunk", "workers")

    def __init__(self, engine: str = "torch", batch_size: int | None = None,
                 device: str | None = None, precision: str = "fp32", chunk: int = 32,
                 workers: int | None = None):
        if engine not in ENGINES:
            raise ConfigError(f"dlib recognizer: unknown engine {engine!r} (engines: "
                              f"{', '.join(ENGINES)})")
        if precision not in PRECISIONS:
            raise ConfigError(f"dlib recognizer: unknown precision {precision!r} (precisions: "
                              f"{', '.join(PRECISIONS)})")
        # keys the feature cache: the network file's content (whichever engine runs it)
        self.version = f"resnet-v1-{_file_digest(str(model_path(FACE_RESNET)))[:12]}"
        self.engine = engine
        self.chunk = int(chunk)
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self._pool = None
        self._net = None
        if engine == "dlib":  # float32 on the CPU; device and precision do not apply
            self.batch_size = self.chunk * self.workers
            self.device, self.precision = None, "fp32"
            return
        from occbench.models.torch_adapter import default_device, resolve_precision

        self.batch_size = max(1, int(batch_size or 64))
        self.device = default_device(device)
        self.precision = resolve_precision(precision, self.device, "dlib recognizer")

    def chips(self, faces: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 aligned faces -> (N, 150, 150, 3) uint8 dlib chips."""
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3) or faces.dtype != np.uint8:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {faces.shape} {faces.dtype}")
        return warp_batch(faces)

    def _executor(self):
        if self._pool is None:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                             initializer=ignore_interrupt)
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def describe(self, chips: np.ndarray) -> np.ndarray:
        """Raw (not normalised) (N, 128) float32 descriptors of (N, 150, 150, 3) uint8 chips,
        by this recognizer's engine."""
        if self.engine == "torch":
            return self._describe_torch(chips)
        batches = [chips[s : s + self.chunk] for s in range(0, len(chips), self.chunk)]
        if not batches:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.workers > 1 and len(batches) > 1:
            parts = list(self._executor().map(_describe, batches))
        else:
            parts = [_describe(b) for b in batches]
        return np.concatenate(parts)

    def _describe_torch(self, chips: np.ndarray) -> np.ndarray:
        import torch

        if self._net is None:
            from occbench.models.dlib_torch import load_dlib_resnet

            self._net = load_dlib_resnet().to(self.device, memory_format=torch.channels_last)
        net, cuda = self._net, self.device.type == "cuda"
        parts = []
        with (torch.inference_mode(), _ieee_fp32() if cuda else contextlib.nullcontext(),
              torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")):
            for s in range(0, len(chips), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(chips[s : s + self.batch_size]))
                # NHWC uint8 -> NCHW float: already channels-last in memory
                x = net.normalise(x.to(self.device, non_blocking=cuda))
                out = net(x.contiguous(memory_format=torch.channels_last))
                parts.append(out.float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        return l2_normalise(self.describe(self.chips(faces)))


# ----------------------------------------------------------------------------- dlib's pipeline


def dlib_chip_transform(photo: np.ndarray, near: np.ndarray | None = None):
    """dlib's own source->chip transform (2x3) for the face in ``photo``, or None.

    As dlib's ``face_recognition`` example: HOG detector at upsample 1 (the face nearest
    ``near``, an (x, y) point, if given), ``shape_predictor_5_face_landmarks``,
    ``get_face_chip_details(shape, 150, 0.25)``, mapped to pixels as dlib's C++
    ``get_mapping_to_chip`` does. Returns (transform, shape) or None when no face is found.
    """
    import dlib

    from occbench.dlib_models import SHAPE_5, model_path

    global _DLIB_PIPELINE
    if _DLIB_PIPELINE is None:
        _DLIB_PIPELINE = (dlib.get_frontal_face_detector(),
                          dlib.shape_predictor(str(model_path(SHAPE_5))))
    detector, predictor = _DLIB_PIPELINE
    photo = np.ascontiguousarray(photo, dtype=np.uint8)
    rects = list(detector(photo, 1))
    if not rects:
        return None
    if near is not None:
        rects.sort(key=lambda r: np.hypot((r.left() + r.right()) / 2 - near[0],
                                          (r.top() + r.bottom()) / 2 - near[1]))
    shape = predictor(photo, rects[0])
    cd = dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING)
    r, a = cd.rect, cd.angle
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = [(r.left(), r.top()), (r.right(), r.top()), (r.right(), r.bottom())]
    src = np.array([rot @ (np.array(c) - centre) + centre for c in corners])
    dst = np.array([(0, 0), (cd.cols - 1, 0), (cd.cols - 1, cd.rows - 1)], dtype=np.float64)
    transform = np.linalg.solve(np.hstack([src, np.ones((3, 1))]), dst).T
    return transform, shape


_DLIB_PIPELINE = None


def dlib_pipeline_embedding(photo: np.ndarray) -> np.ndarray | None:
    """dlib's own embedding of the face in ``photo`` (unit-norm float32 (128,)), or None.

    The reference the adapter is checked against: :func:`dlib_chip_transform`'s face and
    ``compute_face_descriptor(photo, shape)`` (dlib cuts the chip itself).
    """
    found = dlib_chip_transform(photo)
    if found is None:
        return None
    desc = load(FACE_RESNET).compute_face_descriptor(np.ascontiguousarray(photo, dtype=np.uint8), found[1])
    return l2_normalise(np.asarray(desc)[None])[0]


def derive_template_to_chip(photos, grid: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Re-derive :data:`TEMPLATE_TO_CHIP` from photos (HxWx3 uint8 RGB).

    For each photo where both pipelines find the face: B @ inv(A) with B dlib's source->chip
    transform and A occbench's source->112 alignment. One similarity is fitted by least
    squares over a ``grid`` x ``grid`` lattice of points spanning the 112 frame, mapped by
    every photo's transform. Returns (fitted 2x3 transform, per-photo (n, 2, 3) transforms).
    """
    from occbench.align import detect_landmarks5, similarity_transform
    from occbench.template import SIZE, TEMPLATE_5

    per_photo = []
    for photo in photos:
        pts = detect_landmarks5(photo)
        if pts is None:
            continue
        found = dlib_chip_transform(photo, near=pts.mean(0))
        if found is None:
            continue
        a = np.vstack([similarity_transform(pts, TEMPLATE_5), [0, 0, 1]])
        b = np.vstack([found[0], [0, 0, 1]])
        per_photo.append((b @ np.linalg.inv(a))[:2])
    per_photo = np.array(per_photo)
    lin = np.linspace(0, SIZE - 1, grid)
    lattice = np.stack(np.meshgrid(lin, lin), -1).reshape(-1, 2)
    src = np.tile(lattice, (len(per_photo), 1))
    dst = np.concatenate([lattice @ t[:, :2].T + t[:, 2] for t in per_photo])
    return similarity_transform(src, dst), per_photo
