"""On-disk cache of per-image results of (occlusion -> completer -> recognizer).

One folder per (recognizer, completer, alignment version, occlusion condition) holds
``meta.json`` and one SQLite shard per writer (``shard-<rank>.sqlite``: torchrun ranks write
their own). Each row is keyed by the image key and holds the embedding and the
reconstruction figures of that image (PSNR, SSIM, mask IoU). Rows are committed batch by
batch, so a run killed half-way resumes where it stopped; every row is a pure function of
its key, so the resumed result is identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.errors import DataError
from occbench.imageio import atomic_write

FORMAT_VERSION = 1


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
        except (OSError, ValueError):
            found = None
        if found == meta:
            return folder
        print(f"occbench: cache {folder} was written by another version ({found}); "
              "recomputing", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    return folder


class FeatureStore:
    """The cache folder of one (recognizer, completer, condition)."""

    def __init__(self, root: Path, recognizer: str, completer: str, condition: Condition,
                 align_version: str, dim: int):
        self.dim = dim
        self.meta = {
            "recognizer": recognizer, "completer": completer,
            "condition": condition.tag(), "align": align_version, "dim": dim,
        }
        self.dir = cache_folder(root, ("features", recognizer, completer,
                                       f"align-{align_version}", condition.tag()), self.meta)

    def _connect(self, path: Path) -> sqlite3.Connection:
        con = sqlite3.connect(path, timeout=60)
        con.execute(
            "CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, feature BLOB NOT NULL,"
            " psnr REAL, ssim REAL, iou REAL)"
        )
        return con

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.sqlite"))

    def done_keys(self) -> set[str]:
        done: set[str] = set()
        for shard in self._shards():
            with self._connect(shard) as con:
                done.update(k for (k,) in con.execute("SELECT key FROM rows"))
        return done

    def put(self, keys, features, psnr=None, ssim=None, iou=None, rank: int = 0) -> None:
        """Commit one batch (one transaction) to this writer's shard."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.shape != (len(keys), self.dim):
            raise ValueError(f"features of shape {features.shape}, expected ({len(keys)}, {self.dim})")
        nan = [float("nan")] * len(keys)
        cols = [list(map(float, c)) if c is not None else nan for c in (psnr, ssim, iou)]
        con = self._connect(self.dir / f"shard-{rank}.sqlite")
        try:
            with con:
                con.executemany(
                    "INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?)",
                    [(k, features[i].tobytes(), cols[0][i], cols[1][i], cols[2][i])
                     for i, k in enumerate(keys)],
                )
        finally:
            con.close()

    def get(self, keys: list[str]) -> Stored:
        """Read rows for ``keys`` (all must be present)."""
        found: dict[str, tuple] = {}
        wanted = set(keys)
        for shard in self._shards():
            con = self._connect(shard)
            try:
                for row in con.execute("SELECT key, feature, psnr, ssim, iou FROM rows"):
                    if row[0] in wanted:
                        found[row[0]] = row[1:]
            finally:
                con.close()
        missing = [k for k in keys if k not in found]
        if missing:
            raise DataError(f"feature cache {self.dir} lacks {len(missing)} images (e.g. {missing[0]})")
        feats = np.stack([np.frombuffer(found[k][0], dtype=np.float32) for k in keys]) if keys \
            else np.zeros((0, self.dim), np.float32)
        def col(j):
            return np.array([np.nan if found[k][j] is None else found[k][j] for k in keys],
                            dtype=np.float64)
        return Stored(list(keys), feats, col(1), col(2), col(3))
