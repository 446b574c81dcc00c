"""Aligned faces with identity labels (what the trainings of ``baselines/`` learn from), and
the choice of held-out identities.

:func:`load_celeba` aligns ``<data root>/celeba`` once (through the disk cache of
:func:`occbench.align.align_dataset`) and numbers its identities; several sources together:
:func:`occbench.data.sources.load_training_faces`. numpy only (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_SET = "celeba"


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
