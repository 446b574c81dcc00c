"""What the ``onnx`` recognizer and the ``onnx`` completer share: reading their options,
opening the model file in onnxruntime (one-line errors naming the file), and running a graph
on a batch in chunks (a graph with a fixed batch size gets exactly that many faces a call).

``version`` of both adapters is :func:`model_version`: the first 12 hex digits of the file's
SHA-256 and a short hash of the options that change the output, so another file or other
preprocessing never reuses cached outputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from numbers import Real
from pathlib import Path

import numpy as np

from occbench.errors import ConfigError, DataError
from occbench.options import at_least

FACE_SIZE = 112
DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
          "tensor(double)": np.float64}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def per_channel(value, name: str, positive: bool, what: str) -> tuple[float, float, float]:
    """A scalar or 3 values as 3 finite floats (each > 0 if ``positive``), else a
    ConfigError that starts with ``what`` (e.g. ``onnx recognizer``)."""
    if isinstance(value, str):
        parts = value.replace(",", "/").split("/")
    elif isinstance(value, Real):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = None
    if parts is None or len(parts) not in (1, 3):
        raise ConfigError(f"{what}: {name} must be one number or 3 per-channel values "
                          f"(e.g. {name}=127.5 or {name}=123.675/116.28/103.53), got {value!r}")
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        values = []
    if (len(values) != len(parts) or any(isinstance(p, bool) for p in parts)
            or not all(math.isfinite(v) and (v > 0 or not positive) for v in values)):
        need = "positive numbers" if positive else "finite numbers"
        raise ConfigError(f"{what}: {name} must be {need}, got {value!r}")
    if len(values) == 1:
        values *= 3
    return tuple(values)


def boolean(value, name: str, what: str) -> bool:
    """``value`` as a bool (true/false, yes/no, on/off, 1/0), else a ConfigError."""
    words = ("1", "true", "yes", "on", "0", "false", "no", "off")
    if isinstance(value, str) and value.lower() in words:
        return value.lower() in words[:4]
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    raise ConfigError(f"{what}: {name} must be true/false or 1/0, got {value!r}")


def choice(value, name: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` upper-cased if it is one of ``allowed`` (upper case), else a ConfigError."""
    if not isinstance(value, str) or value.upper() not in allowed:
        raise ConfigError(f"{what}: {name} must be {' or '.join(allowed)}, got {value!r}")
    return value.upper()


def cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return (["CUDAExecutionProvider", "CPUExecutionProvider"]
            if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"])


def model_path(path, what: str) -> Path:
    """The ``path`` option as a Path to an existing file, else a DataError."""
    p = Path(os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such ONNX model file ({what}, option path)")
    return p


def model_version(path: Path, options: dict) -> str:
    """``<12 hex digits of the file's SHA-256>-<8 of the options' hash>``: hex digits and one
    dash, a safe single path component of a cache folder name."""
    try:
        digest = sha256(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the ONNX model ({exc.strerror or exc})") from None
    opt_hash = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    return f"{digest[:12]}-{opt_hash}"


def open_session(path: Path, threads: int):
    """An onnxruntime session of ``path`` on CUDA when onnxruntime offers it, else the CPU,
    with ``threads`` intra-op threads that do not spin-wait between calls."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: no per-node warnings on stderr
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=_providers())
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not an ONNX model onnxruntime can load ({reason})") from None


def run_session(session, outputs: list[str], feed: dict, path: Path) -> list:
    """``session.run(outputs, feed)``; onnxruntime's own failure (a shape or type the graph
    refuses at run time) as one DataError naming the model file."""
    try:
        return session.run(outputs, feed)
    except Exception as exc:  # onnxruntime raises its own types (Fail, InvalidArgument, ...)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: onnxruntime could not run the graph ({reason})") from None


def normalise(faces: np.ndarray, channels: str, mean, std) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB faces -> float32 ``(pixel - mean) / std`` in the network's
    channel order (``channels``: RGB or BGR), still channels last."""
    x = np.asarray(faces, dtype=np.float32)
    if channels == "BGR":
        x = x[..., ::-1]
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def fixed_batch(shape) -> int | None:
    """The batch size a graph input's ``shape`` fixes (an int > 0), or None if dynamic."""
    return shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None


def run_chunked(call: Callable[..., np.ndarray | tuple], arrays: list[np.ndarray],
                fixed: int | None, batch_size: int):
    """``call(*chunks)`` over the leading axis of ``arrays`` in chunks of ``fixed`` (the
    graph's fixed batch: the last chunk is padded with zeros and its padding dropped) or
    ``batch_size``; the outputs (one array or a tuple of arrays) concatenated."""
    n = len(arrays[0])
    step = fixed or batch_size
    parts = []
    for s in range(0, n, step):
        chunks = [a[s:s + step] for a in arrays]
        k = len(chunks[0])
        if fixed and k < step:
            chunks = [np.concatenate([c, np.zeros((step - k, *c.shape[1:]), c.dtype)])
                      for c in chunks]
        out = call(*chunks)
        parts.append(tuple(o[:k] for o in out) if isinstance(out, tuple) else out[:k])
    if parts and isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))
    return np.concatenate(parts)


class OnnxAdapter:
    """The options both ONNX adapters share, read the same way: ``channels``, ``mean``,
    ``std``, ``batch_size``, ``threads`` and the model ``path`` (errors start with ``what``)."""

    what = "onnx model"

    def _read_options(self, path, channels, mean, std, batch_size, threads) -> None:
        what = self.what
        self.channels = choice(channels, "channels", ("RGB", "BGR"), what)
        self.mean = per_channel(mean, "mean", False, what)
        self.std = per_channel(std, "std", True, what)
        self.batch_size = at_least(batch_size, 1, f"{what}: batch_size")
        self.threads = cpus() if threads is None else at_least(threads, 1, f"{what}: threads")
        self.path = model_path(path, what)

    def normalised(self, faces: np.ndarray) -> np.ndarray:
        """:func:`normalise` with this model's channels, mean and std."""
        return normalise(faces, self.channels, self.mean, self.std)
