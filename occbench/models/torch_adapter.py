"""What every adapter of a network trained in ``baselines/`` shares: its weight file, device
and batched uint8 inference.

* :func:`load_weights` loads ``baselines/<folder>/weights/<name>-<arch>.safetensors`` (or an
  explicit path) into a network, with one clear error for a missing file (naming the training
  command) or a file of another architecture, and returns the adapter ``version`` that keys
  the feature cache: ``<arch>-<first 12 hex digits of the file's SHA-256>``.
* :class:`TorchCompleter` is a :class:`~occbench.models.base.Completer` around a network
  ``net(x) -> (image, mask)`` on float faces in [-1, 1] (N, 3, 112, 112); a baseline's
  adapter only says how to build its network (``build``) and where its weights live.
  :meth:`TorchCompleter.export_onnx` writes it as an ONNX graph the ``onnx`` completer runs
  (``--model onnx --model-args path=FILE,mask_output=1``) with the same output.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from occbench.errors import ConfigError, OccbenchError
from occbench.models.base import Completer, NonFiniteOutput


def default_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def cpu_runs_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


PRECISIONS = ("fp32", "bf16", "auto")


def resolve_precision(precision: str, device: torch.device, who: str) -> str:
    """``fp32`` or ``bf16`` for an inference ``precision`` option: ``auto`` is bf16 on a CPU
    that computes it natively, else fp32; bf16 is for the CPU only (where it was measured)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{who}: unknown precision {precision!r} (precisions: "
                          f"{', '.join(PRECISIONS)})")
    if precision == "auto":
        return "bf16" if device.type == "cpu" and cpu_runs_bf16() else "fp32"
    if precision == "bf16" and device.type != "cpu":
        raise ConfigError(f"{who}: precision bf16 is for the CPU (measured there); use fp32 "
                          f"on {device.type}")
    return precision


def load_weights(net: nn.Module, weights_dir: Path, name: str, arch: str,
                 weights: str | Path | None = None, config: str | None = None,
                 tag: str = "") -> str:
    """Load ``<weights_dir>/<name>-<arch>[-<tag>].safetensors`` (or ``weights``) into ``net``.

    Returns the adapter version ``<arch>-<sha256[:12]>``. Raises OccbenchError naming the
    training command (``--config config``, default ``arch``) when the file is missing, and naming the file and config when it holds
    another architecture's tensors.
    """
    from safetensors.torch import load_file

    stem = f"{name}-{arch}" + (f"-{tag}" if tag else "")
    path = Path(weights) if weights else Path(weights_dir) / f"{stem}.safetensors"
    if not path.is_file():
        raise OccbenchError(f"no trained weights at {path}; train them with "
                            f"`occbench train {name} --config {config or arch} --data ROOT`")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # not a safetensors file at all
        raise OccbenchError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        net.load_state_dict(tensors)
    except RuntimeError as exc:  # another architecture: say which file and config
        raise OccbenchError(f"{path} does not hold {name} --config {arch} weights: "
                            f"{str(exc).splitlines()[0]}") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise OccbenchError(f"{path}: tensor {key!r} holds NaN/inf; these weights cannot "
                                f"be used (retrain with `occbench train {name} --config {arch}`)")
    return f"{arch}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def to_unit(faces: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC faces -> float NCHW in [-1, 1] (the range every baseline network uses)."""
    return faces.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float NCHW in [-1, 1] -> uint8 NHWC (rounded, clipped)."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


class _Composed(nn.Module):
    """``net`` with the adapter's composition: faces in [-1, 1] -> (image, mask in [0, 1])."""

    def __init__(self, net: nn.Module, compose: bool):
        super().__init__()
        self.net, self.compose = net, compose

    def forward(self, x):
        out, mask = self.net(x)
        out, mask = out.float(), mask.float().clamp(0, 1)
        if self.compose:
            out = (1 - mask) * x + mask * out
        return out, mask


class TorchCompleter(Completer):
    """A completer around a trained network (eval mode, ``batch_size`` faces at a time).

    Subclasses set ``weights_dir`` and implement :meth:`build` (the network of config
    ``arch``), whose forward maps (N, 3, 112, 112) faces in [-1, 1] to ``(image, mask)``:
    the completed image in [-1, 1] (already composed with the input outside the mask, or
    not: see ``compose``) and the predicted mask in [0, 1] (N, 1, 112, 112).

    ``compose=True`` (default) returns (1 - M)·I + M·I_c with the predicted soft mask M,
    i.e. pixels the network believes unoccluded are the input's own.

    ``precision``: ``fp32`` (default), ``bf16`` (CPU only: bfloat16 autocast, channels-last;
    about twice as fast on a CPU with native bf16) or ``auto`` (bf16 where the CPU computes it
    natively, else fp32). bf16 outputs differ from fp32 ones by a few levels in a few per cent
    of the pixels (c2fdan-51k on 128 FaceScrub faces: PSNR 56 dB between the two, reconstruction
    PSNR 25.874 vs 25.876 dB), so a bf16 completer has a version (and caches) of its own.
    """

    weights_dir: Path
    batch_size = 64
    # arch and weight digest are the version (and the precision in effect, when bf16)
    cache_neutral = ("arch", "weights", "device", "tag", "precision")
    compose = True
    cache_outputs = True

    def __init__(self, name: str, arch: str = "small", weights: str | Path | None = None,
                 device: str | None = None, tag: str = "", config: str | None = None,
                 precision: str = "fp32"):
        self.name, self.arch = name, arch
        self.device = default_device(device)
        self.precision = resolve_precision(precision, self.device, f"completer {name}")
        net = self.build(arch)
        self.version = load_weights(net, self.weights_dir, name, arch, weights,
                                    config=config, tag=tag)
        self.net = net.to(self.device).eval()
        if self.precision == "bf16":
            self.version += "-bf16"
            self.net = self.net.to(memory_format=torch.channels_last)

    def build(self, arch: str) -> nn.Module:
        raise NotImplementedError

    @property
    def composed(self) -> nn.Module:
        """The network with this adapter's composition: what :meth:`complete` runs and
        :meth:`export_onnx` writes (one forward, so the two cannot drift apart)."""
        return _Composed(self.net, self.compose)

    def export_onnx(self, path: str | Path, opset: int = 18) -> Path:
        """Write the network (with this adapter's composition) as an ONNX graph: input
        ``faces`` N x 3 x 112 x 112 in [-1, 1], outputs ``image`` (same layout and range) and
        ``mask`` N x 1 x 112 x 112 in [0, 1]; the batch dimension is dynamic. Needs the
        ``onnx`` package (``pip install onnx``). Written to a temporary file, then renamed."""
        from occbench.imageio import atomic_write

        try:
            import onnx  # noqa: F401  (torch's exporter needs it)
        except ImportError:
            raise OccbenchError("exporting to ONNX needs the onnx package: "
                                "pip install onnx") from None
        module = self.composed.to("cpu").eval()
        example = torch.zeros(2, 3, 112, 112)

        def write(tmp):
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["faces"], output_names=["image", "mask"],
                              dynamic_axes={n: {0: "n"} for n in ("faces", "image", "mask")})

        path = Path(path)
        try:
            atomic_write(path, write)
        finally:
            self.net.to(self.device)
        return path

    def complete(self, occluded, clean=None):
        occluded = np.asarray(occluded)
        if occluded.ndim != 4 or occluded.shape[1:] != (112, 112, 3) or occluded.dtype != np.uint8:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {occluded.shape} "
                             f"{occluded.dtype}")
        images, masks = [], []
        bf16 = self.precision == "bf16"
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for s in range(0, len(occluded), self.batch_size):
                x = to_unit(torch.as_tensor(occluded[s:s + self.batch_size], device=self.device))
                if bf16:
                    x = x.contiguous(memory_format=torch.channels_last)
                out, mask = self.composed(x)  # NaN / inf pass the clamp and composition
                finite = torch.isfinite(out).flatten(1).all(1) & torch.isfinite(mask).flatten(1).all(1)
                if not bool(finite.all()):
                    raise NonFiniteOutput(self.name, s + int(torch.nonzero(~finite)[0, 0]))
                images.append(to_uint8(out).cpu())
                masks.append(mask[:, 0].cpu())
        if not images:
            return np.zeros_like(occluded), np.zeros(occluded.shape[:3], np.float32)
        return torch.cat(images).numpy(), torch.cat(masks).numpy().astype(np.float32)
