"""Recognizers ``resnet50`` and ``resnet50-occ``: the ResNet-v2 backbones trained here.

Weights: ``baselines/resnet50/weights/<name>-<arch>.safetensors``, provenance in the .json
beside them, loaded with no network access; ``weights=PATH`` loads another file. A missing
file raises OccbenchError naming the training command.

Default arch ``mid``: the students distilled from the ONNX MobileFaceNet on ~51k faces
(``occbench train resnet50 --config distill``). ``arch="small"`` (``--recognizer-args
arch=small``) loads the first weights, trained with an ArcFace head on the 5,797 shared
CelebA faces; the committed sweep names their rows ``resnet50-small`` / ``resnet50-small-occ``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from baselines.resnet50.model import create
from occbench.models.base import Recognizer, l2_normalise
from occbench.models.torch_adapter import default_device, load_weights

WEIGHTS = Path(__file__).resolve().parent / "weights"
# the training config that makes each arch's committed weights (named in error messages)
TRAIN_CONFIG = {"mid": "distill", "small": "small", "paper": "paper"}


class ResNetRecognizer(Recognizer):
    """L2-normalised embedding of the trained backbone (eval mode; ``device`` default: CUDA
    when present, else CPU; ``version`` = arch + SHA-256 prefix of the weight file)."""

    batch_size = 256
    cache_neutral = ("arch", "weights", "device")  # arch and weight digest are the version

    def __init__(self, name: str, arch: str = "mid", weights: str | Path | None = None,
                 device: str | None = None, flip: bool | str = False):
        self.name, self.arch = name, arch
        # flip-sum (as the ONNX teacher's): embed the face and its mirror, add, normalise;
        # a creation option, so it keys the feature cache
        self.flip = str(flip).lower() in ("1", "true", "yes") if isinstance(flip, str) else flip
        self.device = default_device(device)
        net = create(arch)
        # keys the feature cache: new weights, new version
        self.version = load_weights(net, WEIGHTS, name, arch, weights,
                                    config=TRAIN_CONFIG.get(arch))
        self.net = net.to(self.device).eval()
        self.net.to(memory_format=torch.channels_last)  # uint8 NHWC input stays NHWC
        self.dim = self.net.embedding_dim

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3) or faces.dtype != np.uint8:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 faces, got {faces.shape} "
                             f"{faces.dtype}")
        out = []
        with torch.inference_mode():
            for s in range(0, len(faces), self.batch_size):
                x = self.net.preprocess(torch.as_tensor(faces[s:s + self.batch_size],
                                                        device=self.device))
                emb = self.net.embed(x)
                if self.flip:
                    emb = emb + self.net.embed(x.flip(3))
                out.append(emb.float().cpu())
        emb = torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)
        return l2_normalise(emb)


def resnet50(**kwargs) -> ResNetRecognizer:
    return ResNetRecognizer("resnet50", **kwargs)


def resnet50_occ(**kwargs) -> ResNetRecognizer:
    return ResNetRecognizer("resnet50-occ", **kwargs)


def resnet50_small(**kwargs) -> ResNetRecognizer:
    """The first weights (ArcFace head, 5,797 shared CelebA faces): ``resnet50`` arch small."""
    return ResNetRecognizer("resnet50", **{"arch": "small", **kwargs})


def resnet50_small_occ(**kwargs) -> ResNetRecognizer:
    return ResNetRecognizer("resnet50-occ", **{"arch": "small", **kwargs})


def load_frozen(arch: str = "small", weights: str | Path | None = None) -> torch.nn.Module:
    """The committed ResNet-v2 backbone of ``arch`` (or ``weights``), frozen: eval mode, no
    gradients to its parameters (the identity losses' and held-out curves' recognizer)."""
    net = create(arch)
    load_weights(net, WEIGHTS, "resnet50", arch, weights, config=TRAIN_CONFIG.get(arch))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
