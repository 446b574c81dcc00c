"""Recognizers ``resnet50`` and ``resnet50-occ``: the ResNet-v2 backbones trained here.

Weights: ``baselines/resnet50/weights/<name>-<arch>.safetensors`` (provenance in the .json
beside them), loaded with no network access.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from baselines.resnet50.model import create
from occbench.errors import OccbenchError
from occbench.models import register_recognizer
from occbench.models.base import Recognizer, l2_normalise

WEIGHTS = Path(__file__).resolve().parent / "weights"


class ResNetRecognizer(Recognizer):
    """L2-normalised embedding of the trained backbone (eval mode, CPU or ``device``)."""

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
        self.net.load_state_dict(load_file(str(path)))
        self.dim = self.net.embedding_dim
        meta = path.with_suffix(".json")
        commit = json.loads(meta.read_text()).get("git_commit", "?") if meta.exists() else "?"
        self.version = f"{arch}-{commit}"

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3):
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {faces.shape}")
        out = []
        with torch.inference_mode():
            for s in range(0, len(faces), self.batch_size):
                x = torch.as_tensor(faces[s:s + self.batch_size], device=self.device)
                out.append(self.net.features(self.net.preprocess(x))["embedding"].float().cpu())
        emb = torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)
        return l2_normalise(emb)


@register_recognizer("resnet50")
def resnet50(**kwargs) -> ResNetRecognizer:
    return ResNetRecognizer("resnet50", **kwargs)


@register_recognizer("resnet50-occ")
def resnet50_occ(**kwargs) -> ResNetRecognizer:
    return ResNetRecognizer("resnet50-occ", **kwargs)
