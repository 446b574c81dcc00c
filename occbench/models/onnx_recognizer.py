"""Any ONNX face-recognition model as the ``onnx`` recognizer, run with onnxruntime.

Most face-recognition models people bring (insightface's ``w600k_r50.onnx``, MobileFaceNets,
...) take 112x112 faces aligned to the ArcFace 5-point template, which is what occbench hands
every recognizer, so one adapter with a few options runs them all:

    from occbench.models import create_recognizer
    rec = create_recognizer("onnx", path="mobilefacenet.onnx",
                            mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                            flip=True)
    emb = rec.embed(faces)      # (N, 112, 112, 3) uint8 RGB -> (N, dim) float32, unit rows

or on the command line ``--recognizer onnx --recognizer-args path=...,mean=a/b/c,flip=1``.

Options:

* ``path``: the ``.onnx`` file (required).
* ``channels``: ``"RGB"`` (default) or ``"BGR"``, the channel order the network expects.
* ``mean``, ``std``: a scalar or 3 per-channel values in 0-255 pixel units, listed in the
  network's channel order (after the ``channels`` swap); the input is ``(x - mean) / std``.
  Defaults 127.5 and 127.5 (insightface: pixels to [-1, 1]).
* ``flip``: embed the face and its horizontal mirror and add the two raw embeddings before
  normalising (insightface's flip-sum). Default False.
* ``batch_size``: faces per call of the network when its batch dimension is dynamic (default
  64); a graph with a fixed batch (e.g. input ``[1, 3, 112, 112]``) is run in chunks of that
  size.
* ``threads``: onnxruntime intra-op threads (default: the CPUs this process may use); the
  session does not spin-wait, so it leaves the cores to others between calls.

The graph must take one float input ``N x 3 x H x W`` with H, W 112 (or dynamic) and give a
2-D ``N x dim`` output (its first output). ``dim`` is read from the output shape (or from one
call on a black face when the graph leaves it dynamic). CUDA is used when onnxruntime offers
it (``onnxruntime-gpu``), else the CPU.

``version`` keys the feature cache: the first 12 hex digits of the model file's SHA-256 and a
short hash of the normalised options (channels, mean, std, flip), so another file or other
preprocessing never reuses cached features; ``batch_size`` and ``threads`` do not change the
output and are left out.
"""

from __future__ import annotations

import numpy as np

from occbench.errors import DataError
from occbench.models.base import Recognizer, l2_normalise
from occbench.models.onnx_runtime import (
    DTYPES,
    FACE_SIZE,
    OnnxAdapter,
    boolean,
    fixed_batch,
    model_version,
    open_session,
    run_chunked,
    run_session,
)

# Bump when the adapter's preprocessing changes: it is part of the options hash (cache key).
ADAPTER_REVISION = 1
WHAT = "onnx recognizer"


class OnnxRecognizer(OnnxAdapter, Recognizer):
    """A user's ONNX face-recognition model on occbench's 112x112 aligned faces."""

    name = "onnx"
    what = WHAT
    # folded into ``version`` (file digest + preprocessing hash) or output-neutral
    cache_neutral = ("path", "channels", "mean", "std", "flip", "batch_size", "threads")

    def __init__(self, path, channels: str = "RGB", mean=127.5, std=127.5, flip: bool = False,
                 batch_size: int = 64, threads: int | None = None):
        self.flip = boolean(flip, "flip", WHAT)
        self._read_options(path, channels, mean, std, batch_size, threads)
        self.version = model_version(self.path, {
            "channels": self.channels, "mean": self.mean, "std": self.std, "flip": self.flip,
            "adapter": ADAPTER_REVISION})
        self.session = open_session(self.path, self.threads)
        self._check_graph()

    # ---- the graph ----------------------------------------------------------------------
    def _check_graph(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        where = f"{self.path}"
        if len(inputs) != 1:
            raise DataError(f"{where}: the graph takes {len(inputs)} inputs "
                            f"({', '.join(i.name for i in inputs)}); the onnx recognizer needs one "
                            "face batch N x 3 x H x W")
        inp = inputs[0]
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] != 3:
            hint = " (channels last? export the model NCHW)" if len(shape) == 4 and shape[3] == 3 else ""
            raise DataError(f"{where}: input {inp.name!r} has shape {shape}; the onnx recognizer "
                            f"needs N x 3 x H x W{hint}")
        for side in shape[2:]:
            if isinstance(side, int) and side != FACE_SIZE:
                raise DataError(f"{where}: input {inp.name!r} wants {shape[2]}x{shape[3]} faces; "
                                f"occbench gives {FACE_SIZE}x{FACE_SIZE} faces aligned to the "
                                "ArcFace template (re-export the model for 112x112 input)")
        if inp.type not in DTYPES:
            raise DataError(f"{where}: input {inp.name!r} is {inp.type}; the onnx recognizer "
                            "needs a float tensor")
        self._input, self._dtype = inp.name, DTYPES[inp.type]
        # a fixed batch dimension (an int) is run in chunks of exactly that many faces
        self._fixed_batch = fixed_batch(shape)
        out = outputs[0]
        if len(out.shape) != 2:
            raise DataError(f"{where}: output {out.name!r} has shape {list(out.shape)}; the onnx "
                            "recognizer needs a 2-D N x dim embedding")
        self._output = out.name
        dim = out.shape[1]
        if not (isinstance(dim, int) and dim > 0):  # dynamic: one call on a black face
            dim = self._raw(np.zeros((1, FACE_SIZE, FACE_SIZE, 3), np.uint8)).shape[1]
        self.dim = int(dim)

    # ---- embedding ----------------------------------------------------------------------
    def preprocess(self, faces: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB -> the network's input (N, 3, 112, 112)."""
        x = self.normalised(faces)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=self._dtype)

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = run_session(self.session, [self._output], {self._input: x}, self.path)[0]
        if out.ndim != 2 or out.shape[0] != len(x):
            raise DataError(f"{self.path}: output {self._output!r} came back with shape "
                            f"{out.shape} for {len(x)} faces; expected ({len(x)}, dim)")
        return out.astype(np.float32, copy=False)

    def _raw(self, faces: np.ndarray) -> np.ndarray:
        """Raw (unnormalised) embeddings of (N, 112, 112, 3) uint8 faces."""
        return run_chunked(self._run, [self.preprocess(faces)], self._fixed_batch,
                           self.batch_size)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 3) or faces.dtype != np.uint8:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {faces.shape} {faces.dtype}")
        if not len(faces):
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self._raw(faces)
        if self.flip:
            emb = emb + self._raw(faces[:, :, ::-1])
        return l2_normalise(emb)

    def __repr__(self) -> str:
        return (f"OnnxRecognizer(path={str(self.path)!r}, channels={self.channels!r}, "
                f"mean={self.mean}, std={self.std}, flip={self.flip}, version={self.version!r})")
