"""Recognizers ``resnet50`` and ``resnet50-occ``: the ResNet-v2 backbones trained here.

Weights: ``baselines/resnet50/weights/<name>-<arch>.safetensors`` (default arch ``small``;
provenance in the .json beside them), loaded with no network access; ``weights=PATH``
loads another file. A missing file raises OccbenchError naming the training command.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from baselines.resnet50.model import create
from occbench.errors import OccbenchError
from occbench.models import register_recognizer
from occbench.models.base import Recognizer, l2_normalise

WEIGHTS = Path(__file__).resolve().parent / "weights"


class ResNetRecognizer(Recognizer):
    """L2-normalised embedding of the trained backbone (eval mode; ``device`` default: CUDA
    when present, else CPU; ``version`` = arch + SHA-256 prefix of the weight file)."""

    batch_size = 256

    def __init__(self, name: str, arch: str = "small", weights: str | Path | None = None,
                 device: str | None = None):
        from safetensors.torch import load_file

        path = Path(weights) if weights else WEIGHTS / f"{name}-{arch}.safetensors"
        if not path.is_file():
            raise OccbenchError(
                f"no trained weights at {path}; train them with "
                f"`occbench train {name} --config {arch} --data ROOT`")
        self.name, self.arch = name, arch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net = create(arch).to(self.device).eval()
        try:
            self.net.load_state_dict(load_file(str(path)))
        except RuntimeError as exc:  # other architecture: say which file and config
            raise OccbenchError(f"{path} does not hold {name} --config {arch} weights: "
                                f"{str(exc).splitlines()[0]}") from None
        self.net.to(memory_format=torch.channels_last)  # uint8 NHWC input stays NHWC
        self.dim = self.net.embedding_dim
        # keys the feature cache: new weights, new version
        self.version = f"{arch}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3) or faces.dtype != np.uint8:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {faces.shape} "
                             f"{faces.dtype}")
        out = []
        with torch.inference_mode():
            for s in range(0, len(faces), self.batch_size):
                x = torch.as_tensor(faces[s:s + self.batch_size], device=self.device)
                out.append(self.net.embed(self.net.preprocess(x)).float().cpu())
        emb = torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)
        return l2_normalise(emb)


@register_recognizer("resnet50")
def resnet50(**kwargs) -> ResNetRecognizer:
    return ResNetRecognizer("resnet50", **kwargs)


@register_recognizer("resnet50-occ")
def resnet50_occ(**kwargs) -> ResNetRecognizer:
    return ResNetRecognizer("resnet50-occ", **kwargs)
