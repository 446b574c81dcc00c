"""Training task of the ResNet-v2 recognizers on aligned CelebA identities.

* ``resnet50``: horizontal flips only.
* ``resnet50-occ``: the same, plus the training occlusion sampler (rect a ~ U[0.01, 0.15],
  text h ~ U[0.05, 0.5], random position and colour) on ``occlusion_p`` of the samples.

Loss (``options.loss``): ``softmax`` (the paper's recipe: cross-entropy over the training
identities) or ``arcface`` (additive angular margin ``margin``, scale ``scale``), which
learns far better from few identities (250 here).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.resnet50.model import create
from occbench.train.loop import TrainConfig


class FaceIdentities:
    """Aligned faces with integer identity labels; ``get(i, epoch)`` applies the augmentation."""

    def __init__(self, faces: np.ndarray, labels: np.ndarray, seed: int, occlusion_p: float):
        self.faces, self.labels = faces, labels
        self.seed, self.occlusion_p = seed, occlusion_p

    def __len__(self) -> int:
        return len(self.faces)

    def get(self, i: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, i])
        face = self.faces[i]
        if rng.random() < 0.5:
            face = face[:, ::-1]
        if self.occlusion_p and rng.random() < self.occlusion_p:
            from occbench.occlusion import sample_training_occlusion

            face = sample_training_occlusion(np.ascontiguousarray(face), rng)[0]
        return np.ascontiguousarray(face), np.int64(self.labels[i])


class ArcMargin(nn.Module):
    """Additive angular margin logits: s·cos(θ + m) for the target class, s·cos θ otherwise."""

    def __init__(self, dim: int, classes: int, scale: float, margin: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1.0, 1.0)
        sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))
        target = cos * math.cos(self.margin) - sin * math.sin(self.margin)  # cos(θ + m)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        return self.scale * torch.where(onehot, target, cos)


class Recognizer(nn.Module):
    """Backbone + training head (softmax: the backbone's own head; arcface: ArcMargin)."""

    def __init__(self, cfg: TrainConfig, classes: int):
        super().__init__()
        opts = cfg.options
        self.arcface = opts.get("loss", "softmax") == "arcface"
        self.backbone = create(cfg.arch, num_classes=0 if self.arcface else classes)
        self.margin = (ArcMargin(self.backbone.embedding_dim, classes, opts.get("scale", 32.0),
                                 opts.get("margin", 0.3)) if self.arcface else None)

    def forward(self, faces: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.backbone.features(self.backbone.preprocess(faces))["embedding"]
        if self.arcface:
            return self.margin(emb, labels)
        return self.backbone.head(emb)


class ResNetTask:
    """``occbench train resnet50`` / ``resnet50-occ``."""

    def __init__(self, name: str, data_root: Path, limit: int | None = None):
        if name not in ("resnet50", "resnet50-occ"):
            raise ValueError(name)
        self.name, self.data_root, self.limit = name, Path(data_root), limit
        self._data = None

    def _faces(self):
        if self._data is None:
            from occbench.align import align_dataset
            from occbench.data import load_dataset

            ds = load_dataset("celeba", self.data_root)
            faces = align_dataset(ds, limit=self.limit)
            ids = sorted({s.identity for s in faces.samples})
            lookup = {k: i for i, k in enumerate(ids)}
            labels = np.array([lookup[s.identity] for s in faces.samples])
            self._data = (faces.images, labels, len(ids))
        return self._data

    def describe(self) -> str:
        faces, _, classes = self._faces()
        return f"celeba/ under {self.data_root}: {len(faces)} aligned faces, {classes} identities"

    def build(self, cfg: TrainConfig) -> nn.Module:
        return Recognizer(cfg, self._faces()[2])

    def dataset(self, cfg: TrainConfig) -> FaceIdentities:
        faces, labels, _ = self._faces()
        p = cfg.options.get("occlusion_p", 0.5) if self.name == "resnet50-occ" else 0.0
        return FaceIdentities(faces, labels, cfg.seed, p)

    def loss(self, model, batch, cfg):
        faces, labels = batch
        logits = model(faces, labels)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"acc": float(acc)}

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The backbone without any classifier head (all a recognizer needs)."""
        return {k: v for k, v in model.backbone.state_dict().items() if not k.startswith("head.")}
