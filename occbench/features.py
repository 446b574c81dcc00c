"""On-disk caches of per-image results of a run, on :class:`occbench.cachedb.RowStore`.

* :class:`FeatureStore`: the recognizer's embedding of each (completed) face, one folder per
  (recognizer, completer, alignment version, occlusion condition);
* :class:`QualityStore`: PSNR, SSIM and mask IoU of each completed face, one folder per
  (completer, alignment version, condition): they do not depend on the recognizer, so they
  are computed once whatever the recognizers a completer is evaluated with.

Each row is keyed by the image key and the content digest of its aligned face, and rows are
committed batch by batch: a run killed half-way resumes where it stopped, with the same
result, and a file replaced under the same name is recomputed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occbench.cachedb import RowStore
from occbench.condition import CLEAN, Condition
from occbench.errors import DataError

__all__ = ["CLEAN", "Condition", "FeatureStore", "Quality", "QualityStore"]


def _missing(store: RowStore, keys: list[str], found: dict) -> None:
    missing = [k for k in keys if k not in found]
    if missing:
        raise DataError(f"cache {store.dir} lacks {len(missing)} images (e.g. {missing[0]})")


class FeatureStore(RowStore):
    """Embeddings of one (recognizer, completer, condition); a row of the wrong length (a
    damaged row) is recomputed."""

    def __init__(self, root: Path, recognizer: str, completer: str, condition: Condition,
                 align_version: str, dim: int):
        self.dim = dim
        meta = {"recognizer": recognizer, "completer": completer,
                "condition": condition.tag(), "align": align_version, "dim": dim}
        super().__init__(root, ("features", recognizer, completer, f"align-{align_version}",
                                condition.tag()), meta, (("feature", "BLOB NOT NULL"),))

    def valid(self, values: tuple) -> bool:
        return isinstance(values[0], bytes) and len(values[0]) == 4 * self.dim

    def put(self, keys: list[str], contents: list[str], features: np.ndarray,
            rank: int = 0) -> None:
        """Commit one batch of (N, dim) features."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.shape != (len(keys), self.dim):
            raise ValueError(f"features of shape {features.shape}, expected ({len(keys)}, {self.dim})")
        self.write(keys, contents, [(f.tobytes(),) for f in features], rank)

    def get(self, keys: list[str], contents: list[str]) -> np.ndarray:
        """(N, dim) float32 features of ``keys`` (all must be stored for these contents)."""
        found = self.read(keys, contents)
        _missing(self, keys, found)
        if not keys:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([np.frombuffer(found[k][0], dtype=np.float32) for k in keys])


class Quality:
    """Reconstruction figures of faces read from a :class:`QualityStore`: ``psnr``, ``ssim``
    and ``iou`` (N,) float64 arrays (NaN where not defined, e.g. the IoU of the clean
    condition), in the order of the keys asked for."""

    def __init__(self, psnr: np.ndarray, ssim: np.ndarray, iou: np.ndarray):
        self.psnr, self.ssim, self.iou = psnr, ssim, iou

    def items(self):
        return (("psnr", self.psnr), ("ssim", self.ssim), ("mask_iou", self.iou))


class QualityStore(RowStore):
    """PSNR / SSIM / mask IoU of one (completer, condition)'s completed faces."""

    def __init__(self, root: Path, completer: str, condition: Condition, align_version: str):
        meta = {"kind": "quality", "completer": completer, "condition": condition.tag(),
                "align": align_version}
        super().__init__(root, ("quality", completer, f"align-{align_version}",
                                condition.tag()), meta,
                         (("psnr", "REAL"), ("ssim", "REAL"), ("iou", "REAL")))

    def put(self, keys, contents, psnr, ssim, iou=None, rank: int = 0) -> None:
        nan = [float("nan")] * len(keys)
        cols = [list(map(float, c)) if c is not None else nan for c in (psnr, ssim, iou)]
        self.write(keys, contents, list(zip(*cols, strict=True)), rank)

    def get(self, keys: list[str], contents: list[str]) -> Quality:
        found = self.read(keys, contents)
        _missing(self, keys, found)

        def col(j):
            return np.array([np.nan if found[k][j] is None else found[k][j] for k in keys],
                            dtype=np.float64)
        return Quality(col(0), col(1), col(2))
