"""Training data: aligned CelebA faces with identity labels, and a seeded augmenting Dataset.

:func:`load_celeba` aligns ``celeba/`` once (through the disk cache of
:func:`occbench.align.align_dataset`) and numbers its identities; :class:`FaceDataset`
serves items by ``(epoch, index)`` keys (what :class:`occbench.train.loop.StepBatches`
yields), with a horizontal flip (p = 1/2) and, optionally, the paper's training occlusion
(:func:`occbench.occlusion.sample_training_occlusion`), drawn from a generator seeded by
(seed, epoch, index): the same key always gives the same sample, in any worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TRAIN_SET = "celeba"
REPO = Path(__file__).resolve().parents[2]  # relative sources paths start here


@dataclass
class LabelledFaces:
    """Aligned faces ``images`` (N, 112, 112, 3) uint8 with ``labels`` (N,) int64 in
    0 .. len(identities) - 1; ``keys`` name the source images."""

    name: str
    root: Path
    images: np.ndarray
    labels: np.ndarray
    identities: list[str]
    keys: list[str]
    unaligned: int = 0  # faces framed by the fallback crop (no landmarks found)

    def __len__(self) -> int:
        return len(self.images)

    def describe(self) -> dict:
        """What a provenance file records about the data."""
        return {"set": self.name, "root": str(self.root), "images": len(self.images),
                "identities": len(self.identities), "unaligned": self.unaligned}


def load_celeba(data_root: str | Path, limit: int | None = None,
                progress: bool = True) -> LabelledFaces:
    """The aligned training faces of ``<data_root>/celeba`` (the first ``limit`` images if
    given), labelled by identity in sorted identity order. Unreadable images are left out."""
    from occbench.align import align_dataset
    from occbench.data import identity_labels, load_dataset

    root = Path(data_root)
    faces = align_dataset(load_dataset(TRAIN_SET, root), limit=limit, progress=progress)
    labels, identities = identity_labels(faces.samples)
    return LabelledFaces(TRAIN_SET, root, faces.images, labels, identities, faces.keys,
                         int((~faces.aligned).sum()))


def holdout_mask(identities: list[str], labels: np.ndarray, n: int) -> np.ndarray:
    """Which faces to keep out of training: whole labelled identities (two faces or more),
    taken in the order of their names' SHA-1 until at least ``n`` faces are held out. The
    choice depends on the names and counts only, not on the order of the faces."""
    import hashlib

    labels = np.asarray(labels)
    held = np.zeros(len(labels), dtype=bool)
    if n <= 0:
        return held
    counts = np.bincount(labels[labels >= 0], minlength=len(identities))
    order = sorted((hashlib.sha1(name.encode()).hexdigest(), i)
                   for i, name in enumerate(identities) if counts[i] >= 2)
    for _, i in order:
        if held.sum() >= n:
            break
        held |= labels == i
    return held


def holdout_pairs(labels: np.ndarray, seed: int = 0, per_identity: int = 10
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verification pairs among held-out faces: up to ``per_identity`` same-person pairs per
    identity (consecutive faces) and as many different-person pairs (seeded). Returns
    (index a, index b, same) into ``labels``."""
    labels = np.asarray(labels)
    same_a, same_b = [], []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        for j in range(min(per_identity, len(idx) - 1)):
            same_a.append(idx[j])
            same_b.append(idx[j + 1])
    rng = np.random.default_rng(seed)
    diff_a, diff_b = [], []
    while len(diff_a) < len(same_a):
        i, j = rng.integers(0, len(labels), 2)
        if labels[i] != labels[j]:
            diff_a.append(i)
            diff_b.append(j)
    a = np.array(same_a + diff_a, dtype=np.int64)
    b = np.array(same_b + diff_b, dtype=np.int64)
    same = np.r_[np.ones(len(same_a), bool), np.zeros(len(diff_a), bool)]
    return a, b, same


class CelebATask:
    """What every training task of ``baselines/`` shares: its name and the aligned faces it
    trains on, loaded on first use: ``<data_root>/celeba`` (the first ``limit`` images if
    given), the ``faces`` passed in, or those of the config's ``options.sources`` (a sources
    file of :mod:`occbench.train.sources`, relative to the repository or absolute; call
    :meth:`use_sources` from ``build``/``dataset``); ``describe()`` for the provenance file."""

    def __init__(self, name: str, data_root: str | Path, limit: int | None = None,
                 faces: LabelledFaces | None = None):
        self.name, self.data_root, self.limit = name, Path(data_root), limit
        self._faces = faces

    @property
    def faces(self) -> LabelledFaces:
        if self._faces is None:
            self._faces = load_celeba(self.data_root, limit=self.limit)
        return self._faces

    def use_sources(self, cfg) -> None:
        """Load the faces of ``cfg.options["sources"]`` (once), if the config names a sources
        file, instead of ``<data root>/celeba``."""
        if self._faces is not None or not cfg.options.get("sources"):
            return
        from occbench.train.sources import load_training_faces

        path = Path(cfg.options["sources"])
        self._faces, self.report = load_training_faces(path if path.is_absolute() else REPO / path,
                                                       limit=self.limit)

    def split(self, cfg) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training faces and of the held-out faces (``cfg.holdout``, whole
        identities, see :func:`holdout_mask`)."""
        held = holdout_mask(self.faces.identities, self.faces.labels, cfg.holdout)
        self.held_out = {"faces": int(held.sum()),
                         "identities": int(len(np.unique(self.faces.labels[held])))}
        return np.flatnonzero(~held), np.flatnonzero(held)

    def completion_held_out(self, cfg, recognizer):
        """The held-out faces as a completion task measures them
        (:class:`occbench.train.heldout.HeldOut`), built once (``recognizer``: a callable
        returning the frozen recognizer of the identity figures); its reference figures go
        to the provenance."""
        if getattr(self, "_held_set", None) is None:
            from occbench.train.heldout import HeldOut

            self._held_set = HeldOut(self.faces.images[self.held], cfg.seed, recognizer())
            self.held_out["reference"] = {k: round(v, 5)
                                          for k, v in self._held_set.reference.items()}
        return self._held_set

    def describe(self) -> dict:
        out = self.faces.describe()
        if getattr(self, "report", None):
            out["sources"] = self.report
        if getattr(self, "held_out", None):
            out["held_out"] = self.held_out
        return out


class FaceDataset(torch.utils.data.Dataset):
    """Augmented training items of labelled faces.

    ``dataset[(epoch, i)]`` (or ``dataset[i]``, epoch 0) is a dict of numpy arrays:
    ``face`` (112, 112, 3) uint8, the network input (flipped, then occluded with
    probability ``occlusion_p``); ``label`` int64; and with ``with_clean=True`` also
    ``clean`` (the flipped face before occlusion) and ``mask`` (112, 112) uint8, 1 = occluded
    (all zero when not occluded), as a completion network needs.

    Defaults: ``flip=True``, ``occlusion_p=0.0`` (no occlusion), ``with_clean=False``.
    ``subset``: item i is face ``subset[i]`` of ``images`` / ``labels`` (no copy of the faces).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int = 0, *,
                 flip: bool = True, occlusion_p: float = 0.0, with_clean: bool = False,
                 subset: np.ndarray | None = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.subset = None if subset is None else np.asarray(subset, dtype=np.int64)
        self.seed, self.flip = seed, flip
        self.occlusion_p, self.with_clean = occlusion_p, with_clean

    def __len__(self) -> int:
        return len(self.images) if self.subset is None else len(self.subset)

    def __getitem__(self, key) -> dict[str, np.ndarray]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, i])
        if self.subset is not None:
            i = int(self.subset[i])
        face = self.images[i]
        if self.flip and rng.random() < 0.5:
            face = face[:, ::-1]
        face = np.ascontiguousarray(face)
        clean, mask = face, None
        if self.occlusion_p and rng.random() < self.occlusion_p:
            from occbench.occlusion import sample_training_occlusion

            face, mask, _ = sample_training_occlusion(face, rng)
        item = {"face": face, "label": self.labels[i]}
        if self.with_clean:
            item["clean"] = clean
            item["mask"] = mask if mask is not None else np.zeros(face.shape[:2], np.uint8)
        return item
