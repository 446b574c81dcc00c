"""Training data: the faces a training task uses, and a seeded augmenting Dataset.

:class:`CelebATask` holds a task's labelled faces (:mod:`occbench.data.labelled`: ``celeba/``
of the data root, or a sources file of :mod:`occbench.data.sources`) and its held-out split;
:class:`FaceDataset`
serves items by ``(epoch, index)`` keys (what :class:`occbench.train.loop.StepBatches`
yields), with a horizontal flip (p = 1/2) and, optionally, the paper's training occlusion
(:func:`occbench.occlusion.sample_training_occlusion`), drawn from a generator seeded by
(seed, epoch, index): the same key always gives the same sample, in any worker process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from occbench.data.labelled import LabelledFaces, holdout_mask, load_celeba

REPO = Path(__file__).resolve().parents[2]  # relative sources paths start here


class CelebATask:
    """What every training task of ``baselines/`` shares: its name and the aligned faces it
    trains on, loaded on first use: ``<data_root>/celeba`` (the first ``limit`` images if
    given), the ``faces`` passed in, or those of the config's ``options.sources`` (a sources
    file of :mod:`occbench.data.sources`, relative to the repository or absolute; call
    :meth:`use_sources` from ``build``/``dataset``); ``describe()`` for the provenance file.
    ``OPTIONS``: the options a config may set and their defaults; the training command
    refuses any other (:func:`occbench.train.loop.check_options`)."""

    # every key a config's ``options`` may set, with its default (subclasses add their own)
    OPTIONS: dict = {"sources": None}

    def __init__(self, name: str, data_root: str | Path, limit: int | None = None,
                 faces: LabelledFaces | None = None):
        self.name, self.data_root, self.limit = name, Path(data_root), limit
        self._faces = faces

    def options(self, cfg) -> dict:
        """The config's ``options`` over the task's defaults (:attr:`OPTIONS`)."""
        return {**self.OPTIONS, **cfg.options}

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
        from occbench.data.sources import load_training_faces

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
