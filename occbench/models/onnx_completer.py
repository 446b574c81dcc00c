"""Any ONNX face-completion (inpainting) model as the ``onnx`` completer, run with onnxruntime.

People who build completion models export them to ONNX; this adapter runs such a graph on
occbench's 112x112 aligned faces without a line of Python:

    occbench run --model onnx --model-args path=mine.onnx,mean=127.5,std=127.5 ...

    from occbench.models import create_completer
    comp = create_completer("onnx", path="mine.onnx", mask_output=1)
    completed, mask = comp.complete(occluded)   # (N, 112, 112, 3) uint8 RGB in and out

The graph decides whether the completer is **blind** or **non-blind**:

* one input (the occluded faces): blind, as C2FDAN; it finds the occlusion itself;
* two inputs (the faces, then a mask): non-blind, as classical inpainting; occbench gives it
  the *true* occlusion mask of each face, keeps the input's pixels outside that mask (the
  graph's output is used inside it only), and its rows in every table say ``(non-blind)``.
  Real occlusions have no true mask, so a non-blind completer cannot run on them.

Options:

* ``path``: the ``.onnx`` file (required).
* ``layout``: ``NCHW`` (default) or ``NHWC``, for the image input and output and the mask
  input / output (a mask is ``N x 1 x H x W`` / ``N x H x W x 1``; ``N x H x W`` is accepted
  too).
* ``channels``: ``RGB`` (default) or ``BGR``.
* ``mean``, ``std``: the input is ``(pixel - mean) / std`` (0-255 units, one value or 3 in the
  network's channel order; default 127.5 and 127.5: pixels to [-1, 1]); the output image is
  mapped back with ``y * std + mean``, rounded and clipped to 0-255.
* ``hole``: the mask value that marks occluded pixels in the mask input (1, default, or 0 for
  graphs that take 1 = known pixel).
* ``image_output``: the output that is the completed image, by index or name (default 0).
* ``mask_output``: the output that is the predicted occlusion mask (probabilities, 1 =
  occluded), by index or name; default none. Without one (or for a non-blind graph, which is
  given the mask) there are no mask IoU figures.
* ``batch_size`` (default 32), ``threads`` (default: the CPUs this process may use).

``version`` keys the caches: the file's SHA-256 and the options that change the output.
"""

from __future__ import annotations

import numpy as np

from occbench.errors import ConfigError, DataError
from occbench.models.base import Completer, NonFiniteOutput
from occbench.models.onnx_runtime import (
    DTYPES,
    FACE_SIZE,
    OnnxAdapter,
    choice,
    fixed_batch,
    model_version,
    open_session,
    run_chunked,
    run_session,
)

ADAPTER_REVISION = 1
WHAT = "onnx completer"


def _spatial(shape, layout: str) -> list:
    """(H, W) of an image-like shape in ``layout`` (rank 3 masks: N x H x W)."""
    if len(shape) == 3:
        return list(shape[1:])
    return list(shape[2:]) if layout == "NCHW" else list(shape[1:3])


def _channels(shape, layout: str):
    if len(shape) == 3:
        return 1
    return shape[1] if layout == "NCHW" else shape[3]


class OnnxCompleter(OnnxAdapter, Completer):
    """A user's ONNX completion model on occbench's 112x112 aligned faces."""

    name = "onnx"
    what = WHAT
    cache_outputs = True  # a user's network is usually the slow part: complete each face once
    cache_neutral = ("path", "layout", "channels", "mean", "std", "hole", "image_output",
                     "mask_output", "batch_size", "threads")

    def __init__(self, path, layout: str = "NCHW", channels: str = "RGB", mean=127.5,
                 std=127.5, hole: int = 1, image_output=0, mask_output=None,
                 batch_size: int = 32, threads: int | None = None):
        self.layout = choice(layout, "layout", ("NCHW", "NHWC"), WHAT)
        if str(hole) not in ("0", "1"):
            raise ConfigError(f"{WHAT}: hole must be 1 (mask 1 = occluded) or 0 (mask 1 = "
                              f"known pixel), got {hole!r}")
        self.hole = int(hole)
        self._read_options(path, channels, mean, std, batch_size, threads)
        self.session = open_session(self.path, self.threads)
        self._check_graph(image_output, mask_output)
        self.version = model_version(self.path, {
            "layout": self.layout, "channels": self.channels, "mean": self.mean,
            "std": self.std, "hole": self.hole, "image_output": self._image,
            "mask_output": self._mask, "adapter": ADAPTER_REVISION})

    # ---- the graph ----------------------------------------------------------------------
    def _output(self, which, option: str) -> str:
        outputs = [o.name for o in self.session.get_outputs()]
        if isinstance(which, str) and which not in outputs and not which.isdigit():
            raise DataError(f"{self.path}: no output named {which!r} (option {option}; the "
                            f"graph's outputs: {', '.join(outputs)})")
        if isinstance(which, str) and which in outputs:
            return which
        try:
            index = int(which)
        except (TypeError, ValueError):
            raise ConfigError(f"{WHAT}: {option} must be an output index or name, "
                              f"got {which!r}") from None
        if not 0 <= index < len(outputs):
            raise DataError(f"{self.path}: {option}={index}, but the graph has "
                            f"{len(outputs)} output(s) ({', '.join(outputs)})")
        return outputs[index]

    def _check_shape(self, shape, name: str, channels: int, kind: str) -> None:
        where = f"{self.path}: {kind} {name!r}"
        rank_ok = len(shape) == 4 or (channels == 1 and len(shape) == 3)
        if not rank_ok:
            raise DataError(f"{where} has shape {list(shape)}; the onnx completer needs "
                            f"{'N x 1 x H x W' if channels == 1 else 'N x 3 x H x W'} "
                            f"(layout {self.layout})")
        got = _channels(shape, self.layout)
        if isinstance(got, int) and got != channels:
            other = "NHWC" if self.layout == "NCHW" else "NCHW"
            raise DataError(f"{where} has shape {list(shape)}: {got} channels where "
                            f"{channels} are expected in layout {self.layout} (layout={other}?)")
        for side in _spatial(shape, self.layout):
            if isinstance(side, int) and side != FACE_SIZE:
                raise DataError(f"{where} has shape {list(shape)}; occbench gives "
                                f"{FACE_SIZE}x{FACE_SIZE} aligned faces (re-export the model "
                                "for 112x112)")

    def _check_graph(self, image_output, mask_output) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) not in (1, 2):
            raise DataError(f"{self.path}: the graph takes {len(inputs)} inputs "
                            f"({', '.join(i.name for i in inputs)}); the onnx completer needs "
                            "the faces (blind) or the faces and a mask (non-blind)")
        for i, inp in enumerate(inputs):
            self._check_shape(inp.shape, inp.name, 3 if i == 0 else 1, "input")
            if inp.type not in DTYPES:
                raise DataError(f"{self.path}: input {inp.name!r} is {inp.type}; the onnx "
                                "completer needs float tensors")
        self._inputs = [(i.name, DTYPES[i.type], len(i.shape)) for i in inputs]
        self.blind = len(inputs) == 1
        self._fixed = fixed_batch(inputs[0].shape)
        self._image = self._output(image_output, "image_output")
        no_mask = (mask_output is None or mask_output is False
                   or (isinstance(mask_output, str) and mask_output.lower() in ("", "none",
                                                                                "false", "no")))
        self._mask = None if no_mask else self._output(mask_output, "mask_output")
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        self._check_shape(shapes[self._image], self._image, 3, "output")
        if self._mask is not None:
            self._check_shape(shapes[self._mask], self._mask, 1, "output")
        # a non-blind graph is given the mask: there is nothing of its own to score
        self.predicts_mask = self.blind and self._mask is not None

    # ---- completion ---------------------------------------------------------------------
    def _to_layout(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W, C) -> the graph's layout."""
        return x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x

    def _from_layout(self, y: np.ndarray) -> np.ndarray:
        """A graph output -> (N, H, W, C) (an N x H x W mask -> N x H x W x 1)."""
        if y.ndim == 3:
            return y[..., None]
        return y.transpose(0, 2, 3, 1) if self.layout == "NCHW" else y

    def _feed(self, faces: np.ndarray, mask: np.ndarray | None) -> list[np.ndarray]:
        x = self.normalised(faces)
        arrays = [np.ascontiguousarray(self._to_layout(x), dtype=self._inputs[0][1])]
        if mask is not None:
            m = (np.asarray(mask) > 0.5).astype(np.float32)
            if self.hole == 0:
                m = 1.0 - m
            _, dtype, rank = self._inputs[1]
            m = m[..., None] if rank == 4 else m
            m = self._to_layout(m) if rank == 4 else m
            arrays.append(np.ascontiguousarray(m, dtype=dtype))
        return arrays

    def _run(self, *arrays):
        feed = {name: a for (name, _, _), a in zip(self._inputs, arrays, strict=True)}
        wanted = [self._image] + ([self._mask] if self._mask is not None else [])
        outs = run_session(self.session, wanted, feed, self.path)
        n = len(arrays[0])
        for name, out in zip(wanted, outs, strict=True):
            if out.shape[:1] != (n,):
                raise DataError(f"{self.path}: output {name!r} came back with shape "
                                f"{out.shape} for {n} faces")
        return tuple(outs)

    def complete(self, occluded, clean=None, mask=None):
        occluded = np.asarray(occluded)
        if (occluded.ndim != 4 or occluded.shape[1:] != (FACE_SIZE, FACE_SIZE, 3)
                or occluded.dtype != np.uint8):
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {occluded.shape} "
                             f"{occluded.dtype}")
        if not self.blind and mask is None:
            raise ConfigError(f"{WHAT} {self.path.name} is non-blind (its graph takes a mask): "
                              "it needs the true occlusion mask")
        n = len(occluded)
        empty = np.zeros((n, FACE_SIZE, FACE_SIZE), np.float32)
        if not n:
            return occluded.copy(), empty
        outs = run_chunked(self._run, self._feed(occluded, None if self.blind else mask),
                           self._fixed, self.batch_size)
        y = self._from_layout(np.asarray(outs[0], np.float32))
        if y.shape != occluded.shape:
            raise DataError(f"{self.path}: output {self._image!r} gave images of "
                            f"{y.shape[1:]} (after layout {self.layout}), expected 112x112x3")
        y = y * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)
        if self.channels == "BGR":
            y = y[..., ::-1]
        bad = np.flatnonzero(~np.isfinite(y).reshape(n, -1).all(axis=1))
        if bad.size:
            raise NonFiniteOutput(self.name, int(bad[0]))
        completed = np.clip(np.rint(y), 0, 255).astype(np.uint8)
        if not self.blind:  # the given mask's pixels are the graph's, the rest the input's
            hole = np.asarray(mask)[..., None] > 0.5
            return np.where(hole, completed, occluded), np.asarray(mask, np.float32)
        if self._mask is None:
            return completed, empty
        pred = self._from_layout(np.asarray(outs[1], np.float32))[..., 0]
        return completed, np.clip(pred, 0.0, 1.0)

    def __repr__(self) -> str:
        kind = "blind" if self.blind else "non-blind"
        return f"OnnxCompleter(path={str(self.path)!r}, {kind}, version={self.version!r})"
