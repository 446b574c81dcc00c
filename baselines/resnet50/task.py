"""Training task of the ResNet-v2 recognizers on aligned CelebA identities.

* ``resnet50``: horizontal flips only.
* ``resnet50-occ``: the same, plus the training occlusion sampler (rect a ~ U[0.01, 0.15],
  text h ~ U[0.05, 0.5], random position and colour) on ``occlusion_p`` of the samples
  (default 0.5).

Loss (``options.loss``, default ``softmax``): ``softmax`` is the paper's recipe (a linear
classifier over the training identities, cross-entropy); ``arcface`` puts an additive
angular margin (``margin``, default 0.3; ``scale``, default 32) on normalised embeddings and
class centres, which learns far better from few identities (250 here); ``distill`` trains
the embedding to reproduce a teacher's embedding of the *clean* face (loss 1 - cosine):

* ``options.teacher``: ``{"name": <registered recognizer>, "args": {...}}``; its embeddings
  of the clean training faces are computed once and cached (occbench's feature cache, keyed
  by the face's content). Use a flip-invariant teacher (``flip`` = flip-sum for ``onnx``): the
  student sees mirrored faces and learns the same target. The student's embedding size must
  equal the teacher's.
* ``options.sources``: a sources file (:mod:`occbench.data.sources`; a path relative to the
  repository, or absolute) instead of ``<data root>/celeba``; unlabelled faces are fine.
* ``resnet50-occ`` sees the face with the training occlusions (``occlusion_p``) and still
  learns the teacher's embedding of the clean face.

Configs beyond ``small`` / ``paper``: ``distill`` (the ``mid`` student from the ONNX teacher on
the ~51k faces), ``distill-long`` (22,000 more steps at full CPU speed, issue 30), and
``distill-occ`` for ``resnet50-occ``: the same schedule started from the retrained clean
student's weights with ``occlusion_p`` 0.7, written as ``resnet50-occ-mid-distill-occ`` (config
``tag``) until it is measured against the committed ``resnet50-occ-mid``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.resnet50.model import create
from occbench.data.labelled import LabelledFaces
from occbench.errors import ConfigError
from occbench.train.data import CelebATask, FaceDataset
from occbench.train.loop import TrainConfig

NAMES = ("resnet50", "resnet50-occ")
LOSSES = ("softmax", "arcface", "distill")


class ArcMargin(nn.Module):
    """Additive angular margin logits: s·cos(θ + m) for the target class, s·cos θ otherwise
    (computed in float32, also under autocast)."""

    def __init__(self, dim: int, classes: int, scale: float = 32.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(emb.device.type, enabled=False):
            cos = F.linear(F.normalize(emb.float()), F.normalize(self.weight.float()))
            cos = cos.clamp(-1.0, 1.0)
            sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))
            target = cos * math.cos(self.margin) - sin * math.sin(self.margin)  # cos(θ + m)
            onehot = F.one_hot(labels, cos.shape[1]).bool()
            return self.scale * torch.where(onehot, target, cos)


class TrainNet(nn.Module):
    """Backbone + training head: the backbone's own linear head (softmax) or ArcMargin."""

    def __init__(self, cfg: TrainConfig, classes: int, opts: dict):
        super().__init__()
        loss = opts["loss"]
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        self.arcface, self.distill = loss == "arcface", loss == "distill"
        self.backbone = create(cfg.arch, num_classes=0 if loss != "softmax" else classes)
        self.margin = (ArcMargin(self.backbone.embedding_dim, classes, opts["scale"],
                                 opts["margin"]) if self.arcface else None)

    def forward(self, faces: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits of uint8 faces (N, 112, 112, 3) (distill: the embedding itself)."""
        emb = self.backbone.embed(self.backbone.preprocess(faces))
        if self.distill:
            return emb
        if self.arcface:
            return self.margin(emb, labels)
        return self.backbone.head(emb)


class ResNetTask(CelebATask):
    """``occbench train resnet50`` / ``resnet50-occ`` on ``<data_root>/celeba``."""

    # occlusion_p applies to resnet50-occ only (resnet50 never sees an occluder)
    OPTIONS = {**CelebATask.OPTIONS, "loss": "softmax", "scale": 32.0, "margin": 0.3,
               "occlusion_p": 0.5, "teacher": None}

    def __init__(self, name: str, data_root: str | Path, limit: int | None = None,
                 faces: LabelledFaces | None = None):
        if name not in NAMES:
            raise ConfigError(f"unknown resnet task {name!r}; known: {', '.join(NAMES)}")
        super().__init__(name, data_root, limit, faces)

    def build(self, cfg: TrainConfig) -> nn.Module:
        self.use_sources(cfg)
        return TrainNet(cfg, len(self.faces.identities), self.options(cfg))

    def dataset(self, cfg: TrainConfig) -> FaceDataset:
        self.use_sources(cfg)
        p = self.options(cfg)["occlusion_p"] if self.name == "resnet50-occ" else 0.0
        train, self.held = self.split(cfg)
        if self.options(cfg)["loss"] == "distill":
            self.targets = self.teacher_embeddings(cfg)
            # the item's "label" is its index: the loss looks its teacher embedding up
            return FaceDataset(self.faces.images, np.arange(len(self.faces)), cfg.seed,
                               occlusion_p=p, subset=train)
        return FaceDataset(self.faces.images, self.faces.labels, cfg.seed, occlusion_p=p,
                           subset=train)

    def _held_out_set(self, cfg: TrainConfig) -> dict:
        """The held-out faces, clean and occluded (one training occlusion each, seeded by the
        face's position), and their verification pairs; built once."""
        if getattr(self, "_held_set", None) is None:
            from occbench.data.labelled import holdout_pairs
            from occbench.occlusion import sample_training_occlusion

            clean = self.faces.images[self.held]
            occluded = np.stack([sample_training_occlusion(
                f, np.random.default_rng([cfg.seed, 7919, i]))[0] for i, f in enumerate(clean)])
            a, b, same = holdout_pairs(self.faces.labels[self.held], cfg.seed)
            self._held_set = {"clean": clean, "occluded": occluded, "pairs": (a, b, same)}
            if getattr(self, "targets", None) is not None:
                t = self.targets[self.held].numpy()
                self.held_out["reference"] = {"acc_clean": round(_pair_accuracy(t, a, b, same), 5)}
        return self._held_set

    def evaluate(self, model: nn.Module, cfg: TrainConfig) -> dict[str, float]:
        """Held-out figures of the student: verification accuracy on pairs of held-out
        identities (10 folds, threshold from the other nine) of clean and of occluded faces,
        and (distillation) the mean cosine to the teacher's embedding of the clean face."""
        from occbench.train.heldout import embed

        held = self._held_out_set(cfg)
        out = {}
        for kind in ("clean", "occluded"):
            emb = embed(model.backbone, held[kind])
            out[f"acc_{kind}"] = _pair_accuracy(emb, *held["pairs"])
            if getattr(self, "targets", None) is not None:
                t = self.targets[self.held].numpy()
                out[f"cos_{kind}"] = float((emb * t).sum(1).mean())
        return out

    def teacher_embeddings(self, cfg: TrainConfig) -> torch.Tensor:
        """The teacher's L2-normalised embeddings of the clean training faces (N, dim), from the
        feature cache (computed there once)."""
        from occbench.condition import CLEAN
        from occbench.extract import extract
        from occbench.faces import face_digests
        from occbench.features import FeatureStore
        from occbench.models import create_recognizer
        from occbench.paths import cache_root

        spec = self.options(cfg)["teacher"] or {}
        if "name" not in spec:
            raise ConfigError("loss 'distill' needs options.teacher = {\"name\": ..., \"args\": {...}}")
        from occbench.data.sources import expand_vars

        args = {k: expand_vars(v, "options.teacher") if isinstance(v, str) else v
                for k, v in spec.get("args", {}).items()}
        teacher = create_recognizer(spec["name"], **args)
        self.teacher = {"name": spec["name"], "version": teacher.version,
                        "args": spec.get("args", {})}
        store = FeatureStore(cache_root(), f"{teacher.name}@{teacher.version}", "none", CLEAN,
                             f"train-{self.faces.name}", teacher.dim)
        keys, images = self.faces.keys, self.faces.images
        digests = face_digests(images)
        extract(store, keys, images, CLEAN, None, teacher, desc=f"teacher {spec['name']}",
                contents=digests)
        feats = store.get(keys, digests)
        return torch.from_numpy(np.ascontiguousarray(feats))

    def loss(self, model: nn.Module, batch: dict, cfg: TrainConfig):
        if self.options(cfg)["loss"] == "distill":
            emb = model(batch["face"], batch["label"])
            target = self.targets.to(emb.device)[batch["label"]]
            cos = F.cosine_similarity(emb.float(), target, dim=1)
            return (1.0 - cos).mean(), {"cos": cos.mean().item()}
        logits = model(batch["face"], batch["label"])
        loss = F.cross_entropy(logits.float(), batch["label"])
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        return loss, {"acc": acc.item()}

    def describe(self) -> dict:
        out = super().describe()
        if getattr(self, "teacher", None):
            out["teacher"] = self.teacher
        return out

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The backbone without any classifier head (all a recognizer needs)."""
        return {k: v for k, v in model.backbone.state_dict().items() if not k.startswith("head.")}

    def load_weights(self, model: nn.Module, tensors: dict[str, torch.Tensor]):
        """The inverse of :meth:`weights` (config ``init``): (missing, unexpected) keys."""
        return model.backbone.load_state_dict(tensors, strict=False)


def _pair_accuracy(emb: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray) -> float:
    """10-fold verification accuracy of cosine scores of pairs (a[i], b[i])."""
    from occbench.metrics.verification import verify_scores

    scores = (emb[a] * emb[b]).sum(1)
    return verify_scores(scores, same, np.arange(len(same)) % 10).mean


def make_task(name: str, data_root: str | Path, limit: int | None = None) -> ResNetTask:
    """The factory ``occbench.train.cli`` calls."""
    return ResNetTask(name, data_root, limit=limit)
