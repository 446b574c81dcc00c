"""On-disk cache of completed faces, so a slow completer runs once per (image, condition).

A trained completer (C2FDAN, BVMR) costs more CPU time per face than any recognizer. Its
output depends only on the image key, the occlusion condition and the weights, never on the
recognizer, so the runs of one completer with several recognizers (and the identification,
verification and landmark protocols, and a resumed run) share one cache here.

Layout: ``<cache>/completions/<completer>@<version>/align-<v>/<condition>/`` with
``meta.json`` and one SQLite shard per writer (``shard-<rank>.sqlite``), one row per image:
the completed face (112x112x3 uint8, exact) and the predicted mask thresholded at 0.5 (bit
packed). The mask is stored binary because the only figure computed from it, the mask IoU,
thresholds it at 0.5 anyway: figures from cached and fresh completions are identical.

Disk use: about 39 KB per face (LFW verification, 7.7k faces: about 300 MB per condition).
Delete the ``completions`` folder to free it; it is rebuilt on demand.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from occbench.features import Condition, cache_folder
from occbench.models.base import Completer

SHAPE = (112, 112, 3)


class CompletionStore:
    """Completed faces of one (completer, condition) in the cache under ``root``."""

    def __init__(self, root, completer: str, condition: Condition, align_version: str):
        meta = {"kind": "completions", "completer": completer,
                "condition": condition.tag(), "align": align_version}
        self.dir = cache_folder(root, ("completions", completer, f"align-{align_version}",
                                       condition.tag()), meta)

    def _connect(self, rank: int | None = None, path=None) -> sqlite3.Connection:
        con = sqlite3.connect(path or self.dir / f"shard-{rank}.sqlite", timeout=60)
        con.execute("CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, image BLOB NOT NULL,"
                    " mask BLOB NOT NULL)")
        return con

    def get(self, keys: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The cached (image, binary mask) of those ``keys`` that are stored."""
        found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if not keys:
            return found
        n_pixels = SHAPE[0] * SHAPE[1]
        marks = ",".join("?" * len(keys))
        for shard in sorted(self.dir.glob("shard-*.sqlite")):
            con = self._connect(path=shard)
            try:
                for key, image, mask in con.execute(
                        f"SELECT key, image, mask FROM rows WHERE key IN ({marks})", keys):
                    img = np.frombuffer(image, np.uint8).reshape(SHAPE)
                    bits = np.unpackbits(np.frombuffer(mask, np.uint8))[:n_pixels]
                    found[key] = img, bits.reshape(SHAPE[:2]).astype(np.float32)
            finally:
                con.close()
        return found

    def put(self, keys: list[str], images: np.ndarray, masks: np.ndarray, rank: int = 0) -> None:
        """Commit one batch (one transaction) to this writer's shard."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        bits = np.packbits((np.asarray(masks) > 0.5).reshape(len(keys), -1), axis=1)
        con = self._connect(rank)
        try:
            with con:
                con.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)",
                                [(k, images[i].tobytes(), bits[i].tobytes())
                                 for i, k in enumerate(keys)])
        finally:
            con.close()


def complete_cached(completer: Completer, store: CompletionStore | None, keys: list[str],
                    occluded: np.ndarray, clean: np.ndarray, rank: int = 0):
    """``completer.complete(occluded, clean)``, reading and filling ``store`` (if given)."""
    if store is None:
        return completer.complete(occluded, clean)
    found = store.get(keys)
    todo = [i for i, k in enumerate(keys) if k not in found]
    images = np.empty(occluded.shape, np.uint8)
    masks = np.empty(occluded.shape[:3], np.float32)
    if todo:
        new_images, new_masks = completer.complete(occluded[todo], clean[todo])
        store.put([keys[i] for i in todo], new_images, new_masks, rank=rank)
        images[todo] = new_images
        masks[todo] = (np.asarray(new_masks) > 0.5)
    for i, k in enumerate(keys):
        if k in found:
            images[i], masks[i] = found[k]
    return images, masks
