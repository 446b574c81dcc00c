"""An ONNX face-recognition network as a differentiable, frozen torch module.

The training of a completer (C2FDAN's perceptual and style losses, section III-C) needs the
gradient of a recognizer's feature maps with respect to its input; onnxruntime gives none.
:class:`OnnxGraph` runs the graph's nodes with torch operations on the graph's own weights
(nothing converted or stored), for the plain CNN operators face recognizers are made of
(:data:`OPS`); any other operator is a DataError naming the file and the operator.

:class:`OnnxExtractor` gives it the interface of the in-repo ResNet-v2
(``baselines/resnet50/model.py``): ``preprocess`` (uint8 NHWC -> [-1, 1] NCHW), ``features(x,
names)`` and ``embed(x)`` of [-1, 1] RGB faces, the network's own preprocessing (channel order,
mean, std in 0-255 units, as the ``onnx`` recognizer's options) applied inside.

``block<k>`` is the last feature map in graph order whose side is 112 / 2**k (for MobileFaceNet:
56, 28, 14, 7 after its stages, as the ResNet's ``block1`` .. ``block4``); ``embedding`` is the
graph's output. A graph exported with a fixed batch of 1 reshapes to ``[1, ...]``: a Reshape
whose first target dimension is 1 keeps the batch of its input instead.

    from occbench.models.onnx_torch import OnnxExtractor
    net = OnnxExtractor("../shared/models/mobilefacenet-foamliu.onnx",
                        mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    maps = net.features(x, ("block1", "block3"))   # x: (N, 3, 112, 112) in [-1, 1]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occbench.errors import ConfigError, DataError
from occbench.models.onnx_runtime import FACE_SIZE, choice, per_channel
from occbench.models.torch_adapter import to_unit

#: the operators :class:`OnnxGraph` runs
OPS = ("Add", "BatchNormalization", "Clip", "Constant", "Conv", "Flatten", "Gemm",
       "GlobalAveragePool", "Identity", "MatMul", "Mul", "PRelu", "Relu", "Reshape", "Sigmoid",
       "Sub")


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class OnnxGraph(nn.Module):
    """The nodes of an ONNX graph with one input, run by torch; weights are frozen parameters
    (``parameters()`` finds them, ``.to(device)`` moves them, no gradient reaches them)."""

    def __init__(self, path: str | Path):
        super().__init__()
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise ConfigError("the torch runner of ONNX graphs reads them with the onnx "
                              "package: pip install 'occbench[export]'") from None

        self.path = Path(os.path.expandvars(os.fspath(path))).expanduser()
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such ONNX model file")
        try:
            model = onnx.load(str(self.path))
        except Exception as exc:  # onnx raises DecodeError and others for a bad file
            raise DataError(f"{self.path}: not a readable ONNX model ({exc})") from None
        graph = model.graph
        unknown = sorted({n.op_type for n in graph.node} - set(OPS))
        if unknown:
            raise DataError(f"{self.path}: operators {', '.join(unknown)} are not supported "
                            f"by the torch runner (it runs {', '.join(OPS)})")
        weights = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in weights]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise DataError(f"{self.path}: the torch runner needs one input and one output, "
                            f"got {len(inputs)} and {len(graph.output)}")
        self.input_name, self.output_name = inputs[0].name, graph.output[0].name
        self.names: dict[str, str] = {}  # ONNX tensor name -> attribute name
        self.weights = nn.ParameterList()
        for t in graph.initializer:
            self._keep(t.name, numpy_helper.to_array(t))
        self.nodes = []  # (op, inputs, outputs, attributes)
        for n in graph.node:
            attrs = _attrs(n)
            if n.op_type == "Constant":
                if "value" not in attrs:
                    raise DataError(f"{self.path}: a Constant node without a tensor value")
                self._keep(n.output[0], numpy_helper.to_array(attrs["value"]))
                continue
            if n.op_type == "Conv" and attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise DataError(f"{self.path}: Conv with auto_pad is not supported")
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))

    def _keep(self, name: str, array: np.ndarray) -> None:
        self.names[name] = str(len(self.weights))
        self.weights.append(nn.Parameter(torch.from_numpy(np.array(array)), requires_grad=False))

    def run(self, x: torch.Tensor):
        """Yield (tensor name, value) of every node output in graph order."""
        env = {name: self.weights[int(i)] for name, i in self.names.items()}
        env[self.input_name] = x
        for op, ins, outs, a in self.nodes:
            args = [env[i] if i else None for i in ins]
            y = getattr(self, f"_{op}")(args, a)
            env[outs[0]] = y
            yield outs[0], y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, y in self.run(x):
            if name == self.output_name:
                return y
        raise DataError(f"{self.path}: the graph never computes its output {self.output_name}")

    # ---------------------------------------------------------------- operators
    @staticmethod
    def _Conv(args, a):
        x, w = args[0], args[1]
        b = args[2] if len(args) > 2 else None
        pads = list(a.get("pads", [0] * 2 * (w.dim() - 2)))
        half = len(pads) // 2
        padding = pads[:half]
        if pads[:half] != pads[half:]:  # asymmetric: pad first (F.pad lists the last dim first)
            x = F.pad(x, [p for d in reversed(range(half)) for p in (pads[d], pads[d + half])])
            padding = [0] * half
        return F.conv2d(x, w.to(x.dtype), None if b is None else b.to(x.dtype),
                        a.get("strides", 1), padding, a.get("dilations", 1), a.get("group", 1))

    @staticmethod
    def _Clip(args, a):
        lo = args[1] if len(args) > 1 and args[1] is not None else a.get("min")
        hi = args[2] if len(args) > 2 and args[2] is not None else a.get("max")
        return torch.clamp(args[0], None if lo is None else float(lo),
                           None if hi is None else float(hi))

    @staticmethod
    def _Relu(args, a):
        return torch.relu(args[0])

    @staticmethod
    def _Sigmoid(args, a):
        return torch.sigmoid(args[0])

    @staticmethod
    def _PRelu(args, a):
        x, slope = args
        return torch.where(x >= 0, x, x * slope.to(x.dtype))

    @staticmethod
    def _Add(args, a):
        return args[0] + args[1]

    @staticmethod
    def _Sub(args, a):
        return args[0] - args[1]

    @staticmethod
    def _Mul(args, a):
        return args[0] * args[1]

    @staticmethod
    def _Identity(args, a):
        return args[0]

    @staticmethod
    def _MatMul(args, a):
        return args[0] @ args[1].to(args[0].dtype)

    @staticmethod
    def _Gemm(args, a):
        x, w = args[0], args[1].to(args[0].dtype)
        x = x.t() if a.get("transA", 0) else x
        w = w.t() if a.get("transB", 0) else w
        y = a.get("alpha", 1.0) * (x @ w)
        if len(args) > 2 and args[2] is not None:
            y = y + a.get("beta", 1.0) * args[2].to(y.dtype)
        return y

    @staticmethod
    def _Flatten(args, a):
        axis = a.get("axis", 1)
        return args[0].reshape(int(np.prod(args[0].shape[:axis])), -1)

    @staticmethod
    def _GlobalAveragePool(args, a):
        return args[0].mean(dim=tuple(range(2, args[0].dim())), keepdim=True)

    @staticmethod
    def _BatchNormalization(args, a):
        x, scale, bias, mean, var = args[:5]
        return F.batch_norm(x, mean.float(), var.float(), scale.float(), bias.float(),
                            False, 0.0, a.get("epsilon", 1e-5))

    @staticmethod
    def _Reshape(args, a):
        x, shape = args[0], [int(s) for s in args[1].tolist()]
        if shape and shape[0] == 1 and x.shape[0] != 1:  # a graph exported for batch 1
            shape[0] = x.shape[0]
        if not a.get("allowzero", 0):
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return x.reshape(shape)


class OnnxExtractor(nn.Module):
    """A frozen ONNX recognizer with the feature interface of the in-repo ResNet-v2."""

    FEATURES = ("block1", "block2", "block3", "block4", "embedding")

    def __init__(self, path: str | Path, channels: str = "RGB", mean=127.5, std=127.5):
        super().__init__()
        what = f"onnx extractor {path}"
        self.graph = OnnxGraph(path)
        self.channels = choice(channels, "channels", ("RGB", "BGR"), what)
        self.register_buffer("mean", torch.tensor(per_channel(mean, "mean", False, what))
                             .reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(per_channel(std, "std", True, what))
                             .reshape(1, 3, 1, 1))
        self.eval()

    #: (N, 112, 112, 3) uint8 RGB -> (N, 3, 112, 112) float in [-1, 1]
    preprocess = staticmethod(to_unit)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        pixels = (x + 1.0) * 127.5
        if self.channels == "BGR":
            pixels = pixels.flip(1)
        return (pixels - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype)

    def features(self, x: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
        """``block1`` .. ``block4`` and ``embedding`` (as asked) of [-1, 1] RGB faces; the
        graph runs only as far as the last one asked for needs."""
        wanted = set(self.FEATURES if names is None else names)
        unknown = wanted - set(self.FEATURES)
        if unknown:
            raise KeyError(f"unknown features {sorted(unknown)}; known: "
                           f"{', '.join(self.FEATURES)}")
        sides = {FACE_SIZE >> k: f"block{k}" for k in range(1, 5)}
        out: dict[str, torch.Tensor] = {}
        last: dict[str, torch.Tensor] = {}  # the latest map at each block's side so far
        for name, y in self.graph.run(self._input(x)):
            side = y.shape[-1] if y.dim() == 4 else 0
            for s, block in sides.items():  # a smaller map closes every larger side's block
                if block in last and side < s and block not in out:
                    out[block] = last[block]
            if side in sides:
                last[sides[side]] = y
            if name == self.graph.output_name:
                out["embedding"] = y.flatten(1)
                out.update({b: v for b, v in last.items() if b not in out})
            if wanted <= out.keys():
                return {k: out[k] for k in wanted}
        missing = sorted(wanted - out.keys())
        raise DataError(f"{self.graph.path}: the graph has no feature map for {missing}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The (un-normalised) embedding of [-1, 1] faces."""
        return self.features(x, ("embedding",))["embedding"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

    def train(self, mode: bool = True):  # frozen: always the inference graph
        return super().train(False)
