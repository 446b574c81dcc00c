"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in torch.

The weights are read straight from dlib's own serialised network (:func:`read_dat`); nothing
is converted or stored beside it. The network is dlib's ``anet_type`` of
``examples/dnn_face_recognition_ex.cpp``; :class:`DlibResNet` checks the file against it.

    from occbench.models.dlib_torch import load_dlib_resnet
    net = load_dlib_resnet()              # eval mode
    desc = net.describe(chips)            # (N, 150, 150, 3) uint8 RGB chips -> (N, 128) float32

The descriptors are dlib's raw fc output, not normalised, as ``compute_face_descriptor`` returns
them.

File format (dlib/serialize.h, dlib/dnn/core.h, layers.h, loss.h, input.h, cuda/tensor.h):

* integers: one control byte (low 4 bits = byte count, 0x80 = negative) then that many
  little-endian bytes; floats/doubles: ``float_details`` = int64 mantissa and int16 exponent,
  both as such integers (value = mantissa * 2**exponent); strings: size then bytes; bools: the
  character ``'0'`` or ``'1'``; tensors: version 2, four sizes (n, k, nr, nc), then raw
  little-endian float32; alias tensors (parameter views): version 1 and four sizes, no data.
* the network is serialised from the outside in: ``add_loss_layer`` (version, loss details),
  then every layer writes its version and *then* its sub-network before its own details.
  So the file starts with the loss and one version number per layer, output to input (tag and
  skip layers are version 1 and carry nothing else, add_layers are version 2, the one over the
  input layer version 2 or 3), then the input layer and each layer's details (plus its cached
  training state) from the input to the output. Tag ids are not stored: the structure is the
  C++ type's, which is why :class:`DlibResNet` matches the records against ``anet_type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occbench.errors import DataError

TAG_OR_SKIP = "tag_or_skip"  # kind of the records of dlib's tag and skip layers (no payload)
CHIP_SIZE = 150


@dataclass
class DatLayer:
    """One layer of a dlib network file.

    ``kind``: ``input_rgb_image_sized``, ``con``, ``affine``, ``relu``, ``max_pool``,
    ``avg_pool``, ``add_prev``, ``fc``, ``loss_metric`` or :data:`TAG_OR_SKIP`; ``version``:
    the version string in the file (e.g. ``con_4``); ``fields``: sizes and settings;
    ``arrays``: float32 parameters (e.g. ``weight`` and ``bias`` of a ``con``).
    """

    kind: str
    version: str = ""
    fields: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class _Reader:
    """Cursor over a dlib serialisation buffer; every read raises :class:`DataError`."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = memoryview(data), 0, path

    def fail(self, problem: str):
        raise DataError(f"{self.path}: not a dlib face-recognition network ({problem}, "
                        f"at byte {self.pos})")

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"file ends early, wanted {n} bytes")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        """dlib's compact integer (signed or unsigned: the sign bit is never set for the latter)."""
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        """A ``float_details`` (int64 mantissa, int16 exponent), as float, double are written."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            self.fail("floating point number in dlib's old text format")
        mantissa, exponent = self.int(), self.int()
        specials = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
        return float(specials[exponent]) if exponent in specials else float(np.ldexp(mantissa,
                                                                                       exponent))

    def bool(self) -> bool:
        char = bytes(self.take(1))
        if char not in (b"0", b"1"):
            self.fail(f"bad bool {char!r}")
        return char == b"1"

    def string(self) -> str:
        raw = bytes(self.take(self.int()))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.fail(f"non-ASCII string {raw[:20]!r}")

    def peek_string(self) -> str:
        """The string at the cursor, if one is there ('' otherwise); the cursor does not move."""
        start = self.pos
        try:
            text = self.string()
        except DataError:
            text = ""
        self.pos = start
        return text

    def shape(self, version: int) -> tuple[int, int, int, int]:
        """A version number and four sizes (the head of a tensor or an alias tensor)."""
        found = self.int()
        if found != version:
            self.fail(f"tensor version {found}, expected {version}")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            self.fail(f"negative tensor size {shape}")
        return shape

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: (n, k, nr, nc) float32."""
        shape = self.shape(2)
        count = int(np.prod(shape))
        values = np.frombuffer(self.take(4 * count), dtype="<f4", count=count)
        return values.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: only its shape (n, k, nr, nc)."""
        return self.shape(1)

    def expect(self, versions: tuple[str, ...], what: str) -> str:
        version = self.string()
        if version not in versions:
            self.fail(f"{what} version {version!r}, expected one of {versions}")
        return version


# ------------------------------------------------------------------------------ layer details


def _read_input(r: _Reader) -> DatLayer:
    version = r.expect(("input_rgb_image_sized",), "input layer")
    avg = [r.float() for _ in range(3)]
    nr, nc = r.int(), r.int()
    return DatLayer("input_rgb_image_sized", version, {"avg_rgb": avg, "nr": nr, "nc": nc})


def _read_con(r: _Reader, version: str) -> DatLayer:
    params = r.tensor().reshape(-1)
    fields = {"num_filters": r.int(), "nr": r.int(), "nc": r.int(), "stride_y": r.int(),
              "stride_x": r.int(), "padding_y": r.int(), "padding_x": r.int()}
    filters, biases = r.alias(), r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    fields["use_bias"] = r.bool() if version in ("con_5", "con_6") else True
    fields["use_relu"] = r.bool() if version == "con_6" else False
    n_weights = int(np.prod(filters))
    n_bias = int(np.prod(biases)) if fields["use_bias"] else 0
    if params.size != n_weights + n_bias or filters[0] != fields["num_filters"]:
        r.fail(f"con parameters ({params.size}) do not fit filters {filters} and biases {biases}")
    arrays = {"weight": params[:n_weights].reshape(filters)}
    if n_bias:
        arrays["bias"] = params[n_weights:].copy()
    return DatLayer("con", version, fields, arrays)


def _read_affine(r: _Reader, version: str) -> DatLayer:
    params = r.tensor().reshape(-1)
    gamma, beta = r.alias(), r.alias()
    mode = r.int()
    disabled = r.bool() if version == "affine_2" else False
    if mode != 0 and not disabled:
        r.fail("affine layer in fc mode, expected conv mode")
    n = int(np.prod(gamma))
    if not disabled and (gamma != beta or params.size != 2 * n):
        r.fail(f"affine parameters ({params.size}) do not fit gamma {gamma} and beta {beta}")
    arrays = {} if disabled else {"gamma": params[:n].copy(), "beta": params[n:].copy()}
    return DatLayer("affine", version, {"mode": mode, "disabled": disabled}, arrays)


def _read_pool(r: _Reader, version: str) -> DatLayer:
    names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    return DatLayer(version[:-2], version, {n: r.int() for n in names})


def _read_fc(r: _Reader, version: str) -> DatLayer:
    fields = {"num_outputs": r.int(), "num_inputs": r.int()}
    params = r.tensor().reshape(-1)
    weights, biases = r.alias(), r.alias()
    fields["bias_mode"] = r.int()
    for _ in range(4):
        r.float()
    use_bias = r.bool() if version == "fc_3" else True
    fields["has_bias"] = fields["bias_mode"] == 0 and use_bias
    n_weights = fields["num_inputs"] * fields["num_outputs"]
    n_bias = fields["num_outputs"] if fields["has_bias"] else 0
    fits = (weights[:2] == (fields["num_inputs"], fields["num_outputs"])
            and params.size == n_weights + n_bias and (not n_bias or np.prod(biases) == n_bias))
    if not fits:
        r.fail(f"fc parameters ({params.size}) do not fit weights {weights} and biases {biases}")
    arrays = {"weight": params[:n_weights].reshape(fields["num_inputs"], fields["num_outputs"])}
    if n_bias:
        arrays["bias"] = params[n_weights:].copy()
    return DatLayer("fc", version, fields, arrays)


def _read_relu(r: _Reader, version: str) -> DatLayer:
    return DatLayer("relu", version, {"disabled": r.bool() if version == "relu_2" else False})


def _read_add_prev(r: _Reader, version: str) -> DatLayer:
    return DatLayer("add_prev", version)


_DETAILS = {
    "con_4": _read_con, "con_5": _read_con, "con_6": _read_con,
    "affine_": _read_affine, "affine_2": _read_affine,
    "relu_": _read_relu, "relu_2": _read_relu,
    "max_pool_2": _read_pool, "avg_pool_2": _read_pool,
    "fc_2": _read_fc, "fc_3": _read_fc,
    "add_prev_": _read_add_prev,
}


def _read_details(r: _Reader) -> DatLayer:
    version = r.string()
    if version not in _DETAILS:
        r.fail(f"unsupported layer {version!r}")
    return _DETAILS[version](r, version)


def _skip_layer_state(r: _Reader, version: int, over_input: bool) -> None:
    """An add_layer's training state after its details: three flags, then the cached tensors
    x_grad, cached_output and params_grad (version 2; over the input: grad_final, then from
    version 3 the sample expansion factor)."""
    for _ in range(3):
        r.bool()
    r.tensor()
    r.tensor()
    if over_input or version == 2:
        r.tensor()
    if over_input and version >= 3:
        r.int()


def _read_loss(r: _Reader) -> DatLayer:
    version = r.int()
    if version != 1:
        r.fail(f"add_loss_layer version {version}, expected 1")
    name = r.expect(("loss_metric_", "loss_metric_2"), "loss layer")
    fields = {"margin": 0.1, "dist_thresh": 0.75}
    if name == "loss_metric_2":
        fields = {"margin": r.float(), "dist_thresh": r.float()}
    return DatLayer("loss_metric", name, fields)


def _read_headers(r: _Reader) -> list[int]:
    """The layers' version numbers, output to input, up to the input layer's add_layer."""
    versions = []
    while not r.peek_string().startswith("input"):
        versions.append(r.int())
        if versions[-1] not in (1, 2, 3) or len(versions) > 10_000:
            r.fail(f"layer version {versions[-1]} in the network header")
    if not versions or versions[-1] not in (2, 3):
        r.fail("no add_layer over the input layer")
    return versions


def read_dat(path: str | Path) -> list[DatLayer]:
    """The layers of a dlib DNN file with a ``loss_metric`` loss, input to output, loss last.

    Tag and skip layers appear as :data:`TAG_OR_SKIP` records where they sit in the network
    (the file does not tell them apart). Raises :class:`DataError` naming the file and the
    problem if it is not such a network.
    """
    path = Path(path)
    try:
        r = _Reader(path.read_bytes(), path)
    except OSError as e:
        raise DataError(f"cannot read dlib network file {path}: {e.strerror}") from e
    loss = _read_loss(r)
    headers = _read_headers(r)
    layers = [_read_input(r)]
    for position, version in enumerate(reversed(headers)):
        if version == 1:
            layers.append(DatLayer(TAG_OR_SKIP))
            continue
        layers.append(_read_details(r))
        _skip_layer_state(r, version, over_input=position == 0)
    if r.pos != len(r.data):
        r.fail(f"{len(r.data) - r.pos} bytes left after the network")
    return [*layers, loss]


# ------------------------------------------------------------------------------ the network

# anet_type of dlib's examples/dnn_face_recognition_ex.cpp, input to output: the residual
# blocks as (filters, downsampling), and the layer kinds the file must hold for each part.
RESIDUAL_BLOCKS = ([(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)]
                   + [(128, False)] * 2 + [(256, True)] + [(256, False)] * 2 + [(256, True)])
_STEM = ("input_rgb_image_sized", "con", "affine", "relu", "max_pool")
_BLOCK = (TAG_OR_SKIP, "con", "affine", "relu", "con", "affine", "add_prev", "relu")
_DOWN_BLOCK = (TAG_OR_SKIP, "con", "affine", "relu", "con", "affine", TAG_OR_SKIP, TAG_OR_SKIP,
               "avg_pool", "add_prev", "relu")
_HEAD = ("avg_pool", "fc", "loss_metric")


def _expected_kinds() -> list[str]:
    blocks = [_DOWN_BLOCK if down else _BLOCK for _, down in RESIDUAL_BLOCKS]
    return [*_STEM, *(k for b in blocks for k in b), *_HEAD]


class _Conv(nn.Conv2d):
    """dlib ``con_``: cross-correlation with the file's stride and (possibly zero) padding."""

    def __init__(self, rec: DatLayer):
        f = rec.fields
        if f["use_relu"]:
            raise DataError(f"con layer with a fused relu ({rec.version}) is not supported")
        out_ch, in_ch, kh, kw = rec.arrays["weight"].shape
        super().__init__(in_ch, out_ch, (kh, kw), stride=(f["stride_y"], f["stride_x"]),
                         padding=(f["padding_y"], f["padding_x"]), bias="bias" in rec.arrays)
        self.weight.data.copy_(torch.from_numpy(rec.arrays["weight"]))
        if self.bias is not None:
            self.bias.data.copy_(torch.from_numpy(rec.arrays["bias"]))


class _Affine(nn.Module):
    """dlib ``affine_`` in conv mode: ``x * gamma[k] + beta[k]`` (batch norm at inference)."""

    def __init__(self, rec: DatLayer):
        super().__init__()
        self.disabled = rec.fields["disabled"]
        n = 0 if self.disabled else rec.arrays["gamma"].size
        self.gamma = nn.Parameter(torch.ones(1, n, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, n, 1, 1))
        if not self.disabled:
            self.gamma.data.copy_(torch.from_numpy(rec.arrays["gamma"]).view(1, -1, 1, 1))
            self.beta.data.copy_(torch.from_numpy(rec.arrays["beta"]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.disabled else x * self.gamma + self.beta


class _Relu(nn.Module):
    def __init__(self, rec: DatLayer):
        super().__init__()
        self.disabled = rec.fields["disabled"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.disabled else F.relu(x)


def _pool(rec: DatLayer, x: torch.Tensor) -> torch.Tensor:
    """dlib ``max_pool_`` / ``avg_pool_``; a 0 window size means the whole input
    (``avg_pool_everything``). dlib averages over the part of a window inside the input."""
    f = rec.fields
    size = (f["nr"] or x.shape[2], f["nc"] or x.shape[3])
    stride, padding = (f["stride_y"], f["stride_x"]), (f["padding_y"], f["padding_x"])
    if rec.kind == "max_pool":
        return F.max_pool2d(x, size, stride, padding)
    return F.avg_pool2d(x, size, stride, padding, count_include_pad=False)


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib ``add_prev_`` (``tt::add``): the sum over the larger of each dimension, the smaller
    tensor zero-padded at the end (more channels, or a 3x3 map added to a 4x4 one's top left)."""
    shape = [max(p, q) for p, q in zip(a.shape, b.shape, strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        pads = [0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1]]
        return F.pad(t, pads) if any(pads) else t

    if a.shape[0] != b.shape[0]:
        raise ValueError(f"add_prev of batches of {a.shape[0]} and {b.shape[0]}")
    return grow(a) + grow(b)


class _Residual(nn.Module):
    """dlib ``ares`` / ``ares_down``: relu(add_prev(affine(con(relu(affine(con(x))))), skip))
    with ``skip`` = x, or ``avg_pool<2,2,2,2>(x)`` in a downsampling block."""

    def __init__(self, recs: list[DatLayer]):
        super().__init__()
        convs = [r for r in recs if r.kind == "con"]
        affines = [r for r in recs if r.kind == "affine"]
        relus = [r for r in recs if r.kind == "relu"]
        pools = [r for r in recs if r.kind == "avg_pool"]
        self.conv1, self.conv2 = _Conv(convs[0]), _Conv(convs[1])
        self.aff1, self.aff2 = _Affine(affines[0]), _Affine(affines[1])
        self.relu1, self.relu2 = _Relu(relus[0]), _Relu(relus[1])
        self.skip_pool = pools[0] if pools else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(self.relu1(self.aff1(self.conv1(x)))))
        skip = x if self.skip_pool is None else _pool(self.skip_pool, x)
        return self.relu2(add_prev(y, skip))


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet v1 built from :func:`read_dat` records.

    ``forward`` takes either (N, 150, 150, 3) uint8 RGB chips (``dlib.get_face_chip`` output)
    or float (N, 3, 150, 150) already normalised as dlib's ``input_rgb_image_sized`` does,
    ``(pixel - avg_rgb) / 256`` (see :meth:`normalise`), and returns (N, 128) raw descriptors.
    """

    def __init__(self, layers: list[DatLayer]):
        super().__init__()
        kinds = [rec.kind for rec in layers]
        if kinds != _expected_kinds():
            raise DataError("dlib network file does not hold dlib's face-recognition ResNet "
                            f"(anet_type): {len(kinds)} layers, first {kinds[:8]} ...")
        inp = layers[0]
        if (inp.fields["nr"], inp.fields["nc"]) != (CHIP_SIZE, CHIP_SIZE):
            raise DataError(f"dlib network input is {inp.fields['nr']}x{inp.fields['nc']}, "
                            f"expected {CHIP_SIZE}x{CHIP_SIZE}")
        self.register_buffer("avg_rgb", torch.tensor(inp.fields["avg_rgb"], dtype=torch.float32))
        self.conv, self.aff, self.relu = _Conv(layers[1]), _Affine(layers[2]), _Relu(layers[3])
        self.max_pool = layers[4]
        self.blocks = nn.ModuleList(self._blocks(layers))
        self.head_pool = layers[-3]
        fc = layers[-2]
        self.fc = nn.Linear(fc.fields["num_inputs"], fc.fields["num_outputs"],
                            bias="bias" in fc.arrays)
        self.fc.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(fc.arrays["weight"].T)))
        if self.fc.bias is not None:
            self.fc.bias.data.copy_(torch.from_numpy(fc.arrays["bias"]))

    @staticmethod
    def _blocks(layers: list[DatLayer]) -> list[_Residual]:
        blocks, start = [], len(_STEM)
        for _, down in RESIDUAL_BLOCKS:
            n = len(_DOWN_BLOCK if down else _BLOCK)
            blocks.append(_Residual(layers[start:start + n]))
            start += n
        return blocks

    def normalise(self, chips: torch.Tensor) -> torch.Tensor:
        """(N, 150, 150, 3) uint8 RGB -> (N, 3, 150, 150) float32 ``(pixel - avg) / 256``."""
        x = chips.permute(0, 3, 1, 2).to(torch.float32)
        return (x - self.avg_rgb.view(1, 3, 1, 1)) / 256.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = self.normalise(x)
        x = _pool(self.max_pool, self.relu(self.aff(self.conv(x))))
        for block in self.blocks:
            x = block(x)
        x = _pool(self.head_pool, x)
        return self.fc(x.flatten(1))

    @torch.inference_mode()
    def describe(self, chips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, 150, 150, 3) uint8 chips -> (N, 128) float32 raw descriptors (numpy)."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
            raise ValueError(f"expected (N, 150, 150, 3) uint8 chips, got {chips.shape} {chips.dtype}")
        parts = [self(torch.from_numpy(chips[s:s + batch_size])).numpy()
                 for s in range(0, len(chips), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.fc.out_features), np.float32)


def load_dlib_resnet(path: str | Path | None = None) -> DlibResNet:
    """dlib's face-recognition ResNet in torch (eval mode), read from ``path`` (default: the
    ``face-recognition-models`` package's ``dlib_face_recognition_resnet_model_v1.dat``)."""
    if path is None:
        from occbench.dlib_models import FACE_RESNET, model_path

        path = model_path(FACE_RESNET)
    return DlibResNet(read_dat(path)).eval()
