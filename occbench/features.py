"""On-disk cache of per-image results of (occlusion -> completer -> recognizer).

One folder per (recognizer, completer, alignment version, occlusion condition) holds
``meta.json`` and one SQLite shard per writer (``shard-<rank>.sqlite``: torchrun ranks write
their own). Each row is keyed by the image key and the content digest of its aligned face,
and holds the embedding and the reconstruction figures of that image (PSNR, SSIM, mask IoU).
Rows are committed batch by batch, so a run killed half-way resumes where it stopped; every
row is a pure function of its key and content, so the resumed result is identical to an
uninterrupted one, and a file replaced under the same name is recomputed.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.cachedb import ShardFiles
from occbench.errors import DataError
from occbench.imageio import atomic_write

# 2: rows keyed by (image key, content digest of the aligned face)
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Condition:
    """An occlusion setting: ``form='none'`` is the clean (unoccluded) condition."""

    form: str = "none"
    position: str = "none"
    size: float = 0.0
    seed: int = 0

    @property
    def clean(self) -> bool:
        return self.form == "none"

    def tag(self) -> str:
        if self.clean:
            return "clean"
        return f"{self.form}-{self.position}-{self.size:g}-s{self.seed}"


CLEAN = Condition()


@dataclass
class Stored:
    """Rows read back from a store, in the order of the keys asked for."""

    keys: list[str]
    features: np.ndarray  # (N, dim) float32
    psnr: np.ndarray  # (N,) float64, nan where not computed
    ssim: np.ndarray
    iou: np.ndarray


def cache_folder(root: Path, parts: tuple[str, ...], meta: dict) -> Path:
    """The cache folder ``root/parts...`` holding ``meta.json`` = ``meta``.

    A folder written under other meta data (another format or model version) is removed and
    started afresh, with a note on stderr.
    """
    folder = Path(root).joinpath(*parts)
    meta = {"format": FORMAT_VERSION, **meta}
    meta_path = folder / "meta.json"
    if meta_path.exists():
        try:
            found = json.loads(meta_path.read_text())
            why = f"was written by another version ({found})"
        except (OSError, ValueError):
            found, why = None, "has an unreadable meta.json"
        if found == meta:
            return folder
        print(f"occbench: cache {folder} {why}; recomputing", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    return folder


_SCHEMA = ("CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, content TEXT NOT NULL,"
           " feature BLOB NOT NULL, psnr REAL, ssim REAL, iou REAL)")


class FeatureStore:
    """The cache folder of one (recognizer, completer, condition).

    Every row is keyed by the image key *and* the content digest of the aligned face it was
    computed from (:func:`occbench.align.face_digest`): a row whose face has changed since (a
    file replaced under the same name) or whose feature has the wrong length (a damaged row)
    is not found, and so recomputed.
    """

    def __init__(self, root: Path, recognizer: str, completer: str, condition: Condition,
                 align_version: str, dim: int):
        self.dim = dim
        self.meta = {
            "recognizer": recognizer, "completer": completer,
            "condition": condition.tag(), "align": align_version, "dim": dim,
        }
        self.dir = cache_folder(root, ("features", recognizer, completer,
                                       f"align-{align_version}", condition.tag()), self.meta)
        self.shards = ShardFiles(self.dir, _SCHEMA)

    def _valid(self, keys: list[str], contents: list[str], columns: str) -> dict[str, tuple]:
        """The stored rows of ``keys`` whose content digest matches and whose feature is whole."""
        if len(keys) != len(contents):
            raise ValueError(f"{len(keys)} keys but {len(contents)} content digests")
        wanted = dict(zip(keys, contents, strict=True))
        found: dict[str, tuple] = {}
        size = 4 * self.dim
        for row in self.shards.read(f"SELECT key, content, feature{columns} FROM rows"):
            key, content, feature = row[:3]
            if wanted.get(key) == content and isinstance(feature, bytes) and len(feature) == size:
                found[key] = row[2:]
        return found

    def done_keys(self, keys: list[str], contents: list[str]) -> set[str]:
        """Those of ``keys`` stored with a valid row for this content."""
        return set(self._valid(keys, contents, ""))

    def put(self, keys, contents, features, psnr=None, ssim=None, iou=None, rank: int = 0) -> None:
        """Commit one batch (one transaction) to this writer's shard."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.shape != (len(keys), self.dim):
            raise ValueError(f"features of shape {features.shape}, expected ({len(keys)}, {self.dim})")
        if len(contents) != len(keys):
            raise ValueError(f"{len(keys)} keys but {len(contents)} content digests")
        nan = [float("nan")] * len(keys)
        cols = [list(map(float, c)) if c is not None else nan for c in (psnr, ssim, iou)]
        self.shards.write(rank, "INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?, ?)",
                          [(k, contents[i], features[i].tobytes(), cols[0][i], cols[1][i],
                            cols[2][i]) for i, k in enumerate(keys)])

    def get(self, keys: list[str], contents: list[str]) -> Stored:
        """Read the rows of ``keys`` (all must be stored for these contents)."""
        found = self._valid(keys, contents, ", psnr, ssim, iou")
        missing = [k for k in keys if k not in found]
        if missing:
            raise DataError(f"feature cache {self.dir} lacks {len(missing)} images (e.g. {missing[0]})")
        feats = np.stack([np.frombuffer(found[k][0], dtype=np.float32) for k in keys]) if keys \
            else np.zeros((0, self.dim), np.float32)
        def col(j):
            return np.array([np.nan if found[k][j] is None else found[k][j] for k in keys],
                            dtype=np.float64)
        return Stored(list(keys), feats, col(1), col(2), col(3))
