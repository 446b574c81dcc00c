"""Pre-activation ResNet (He et al. 2016, "Identity Mappings in Deep Residual Networks", v2)
for 112x112 aligned faces, with a bottleneck embedding and a softmax classifier head.

Configurations (``CONFIGS``):
* ``paper``: ResNet-50 v2: bottleneck blocks [3, 4, 6, 3], widths 64-128-256-512 (x4 out),
  256-d embedding (the paper's feature extractor, III-B.3).
* ``small``: basic blocks [1, 1, 1, 1], widths 16-32-64-128, 128-d embedding: trains on two
  CPU cores in minutes (the first committed ``*-small`` weights have this shape).
* ``mid``: basic blocks [1, 2, 2, 1], widths 24-48-96-192, 128-d embedding (the teacher's
  size), no dropout: the student distilled from a strong teacher on ~51k faces in about an
  hour or two on two CPU cores (``configs/distill.json``).

Face-recognition layout (as ArcFace-style ResNets): a 3x3 stride-1 stem keeps 112x112, each
stage halves the resolution (56, 28, 14, 7), then BN-ReLU, dropout, a fully connected
embedding layer and BatchNorm1d. ``features(x)`` also returns the outputs of stage 1 and
stage 3 ("block1", "block3"), the maps C2FDAN's perceptual and style losses compare.
"""

from __future__ import annotations

import torch
from torch import nn

CONFIGS: dict[str, dict] = {
    "paper": {"block": "bottleneck", "layers": (3, 4, 6, 3), "widths": (64, 128, 256, 512),
              "stem": 64, "embedding": 256, "dropout": 0.4},
    "small": {"block": "basic", "layers": (1, 1, 1, 1), "widths": (16, 32, 64, 128),
              "stem": 16, "embedding": 128, "dropout": 0.2},
    "mid": {"block": "basic", "layers": (1, 2, 2, 1), "widths": (24, 48, 96, 192),
            "stem": 24, "embedding": 128, "dropout": 0.0},
}

# Inputs: uint8 RGB faces scaled to [-1, 1].
MEAN, STD = 127.5, 127.5


class PreActBasic(nn.Module):
    """BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 with an identity (or 1x1 projection) skip."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1 (x4 channels), v2 ordering."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        out = self.conv3(torch.relu(self.bn3(out)))
        return out + skip


BLOCKS = {"basic": PreActBasic, "bottleneck": PreActBottleneck}
FEATURES = ("block1", "block2", "block3", "block4", "embedding")


class ResNetV2(nn.Module):
    """Pre-activation ResNet with an embedding layer and an optional classifier head.

    ``num_classes`` = 0 (default) builds no head: what a recognizer loads.
    """

    def __init__(self, block: str, layers, widths, stem: int, embedding: int,
                 dropout: float = 0.0, num_classes: int = 0):
        super().__init__()
        cls = BLOCKS[block]
        self.stem = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        stages, cin = [], stem
        for n, width in zip(layers, widths, strict=True):
            blocks = []
            for i in range(n):
                blocks.append(cls(cin, width, 2 if i == 0 else 1))
                cin = width * cls.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.bn = nn.BatchNorm2d(cin)
        self.dropout = nn.Dropout(dropout)
        side = 112 >> len(layers)  # each stage halves the resolution: 7 after four
        self.fc = nn.Linear(cin * side * side, embedding)
        self.bn_emb = nn.BatchNorm1d(embedding)
        self.head = nn.Linear(embedding, num_classes) if num_classes else None
        self.embedding_dim = embedding
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He et al. 2015 init, as torchvision's ResNets
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def preprocess(faces_uint8: torch.Tensor) -> torch.Tensor:
        """(N, 112, 112, 3) uint8 -> (N, 3, 112, 112) float in [-1, 1]."""
        return (faces_uint8.permute(0, 3, 1, 2).float() - MEAN) / STD

    def features(self, x: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
        """Stage outputs ``block1`` .. ``block4`` and the (un-normalised) ``embedding`` of a
        preprocessed batch ``x`` (N, 3, 112, 112) in [-1, 1].

        ``names`` (default: all) picks the outputs; the forward pass stops after the last
        one asked for, so ``names=("block1", "block3")`` skips stage 4 and the embedding.
        """
        wanted = set(FEATURES if names is None else names)
        unknown = wanted - set(FEATURES)
        if unknown:
            raise KeyError(f"unknown features {sorted(unknown)}; known: {', '.join(FEATURES)}")
        out: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        for i, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if f"block{i}" in wanted:
                out[f"block{i}"] = x
            if wanted <= out.keys():
                return out
        x = torch.relu(self.bn(x))
        out["embedding"] = self.bn_emb(self.fc(self.dropout(x).flatten(1)))
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The (un-normalised) embedding of a preprocessed batch."""
        return self.features(x, ("embedding",))["embedding"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a preprocessed batch (needs a head: ``num_classes`` > 0)."""
        if self.head is None:
            raise RuntimeError("this network has no classifier head (num_classes=0)")
        return self.head(self.embed(x))


def create(config: str = "small", num_classes: int = 0) -> ResNetV2:
    """A ResNet-v2 of a named configuration (``small`` or ``paper``)."""
    if config not in CONFIGS:
        from occbench.errors import ConfigError

        raise ConfigError(f"unknown resnet50 config {config!r}; known: {', '.join(CONFIGS)}")
    return ResNetV2(**CONFIGS[config], num_classes=num_classes)
