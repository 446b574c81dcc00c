"""On-disk cache of completed faces, so a slow completer runs once per (image, condition).

A trained completer (C2FDAN, BVMR) costs more CPU time per face than any recognizer. Its
output depends only on the image key, the occlusion condition and the weights, never on the
recognizer, so the runs of one completer with several recognizers (and the identification,
verification and landmark protocols, and a resumed run) share one cache here.

Layout: ``<cache>/completions/<completer>@<version>/align-<v>/<condition>/`` with
``meta.json`` and one SQLite shard per writer (``shard-<rank>.sqlite``), one row per (image
key, content digest of the aligned face):
the completed face (112x112x3 uint8, exact) and the predicted mask thresholded at 0.5 (bit
packed). The mask is stored binary because the only figure computed from it, the mask IoU,
thresholds it at 0.5 anyway: figures from cached and fresh completions are identical.

Disk use: about 39 KB per face (LFW verification, 7.7k faces: about 300 MB per condition).
Delete the ``completions`` folder to free it; it is rebuilt on demand.
"""

from __future__ import annotations

import numpy as np

from occbench.cachedb import RowStore
from occbench.condition import Condition
from occbench.errors import OccbenchError
from occbench.models.base import Completer, NonFiniteOutput

SHAPE = (112, 112, 3)
_MASK_BYTES = (SHAPE[0] * SHAPE[1] + 7) // 8


class CompletionStore(RowStore):
    """Completed faces of one (completer, condition) in the cache under ``root``, keyed by
    (image key, content digest of the aligned face)."""

    def __init__(self, root, completer: str, condition: Condition, align_version: str):
        meta = {"kind": "completions", "completer": completer,
                "condition": condition.tag(), "align": align_version}
        super().__init__(root, ("completions", completer, f"align-{align_version}",
                                condition.tag()), meta,
                         (("image", "BLOB NOT NULL"), ("mask", "BLOB NOT NULL")))

    def valid(self, values: tuple) -> bool:
        image, mask = values
        return len(image) == np.prod(SHAPE) and len(mask) == _MASK_BYTES

    def get(self, keys: list[str], contents: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The cached (image, binary mask) of those ``keys`` stored for these contents."""
        n_pixels = SHAPE[0] * SHAPE[1]
        found = {}
        for key, (image, mask) in self.read(keys, contents).items():
            img = np.frombuffer(image, np.uint8).reshape(SHAPE)
            bits = np.unpackbits(np.frombuffer(mask, np.uint8))[:n_pixels]
            found[key] = img, bits.reshape(SHAPE[:2]).astype(np.float32)
        return found

    def put(self, keys: list[str], contents: list[str], images: np.ndarray, masks: np.ndarray,
            rank: int = 0) -> None:
        """Commit one batch (one transaction) to this writer's shard."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        bits = np.packbits((np.asarray(masks) > 0.5).reshape(len(keys), -1), axis=1)
        self.write(keys, contents, [(images[i].tobytes(), bits[i].tobytes())
                                    for i in range(len(keys))], rank)


def run_completer(completer: Completer, keys: list[str], occluded: np.ndarray,
                  clean: np.ndarray | None = None, true_mask: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``completer.complete(occluded, clean)`` (a non-blind completer also gets
    ``mask=true_mask``), refusing output that would give wrong numbers silently: NaN/inf
    (e.g. from weights that hold NaN) or arrays of the wrong shape. The error names the
    completer and the first image at fault."""
    name = completer.name or type(completer).__name__
    extra = {}
    if not getattr(completer, "blind", True):
        if true_mask is None:
            raise OccbenchError(f"completer {name!r} is non-blind (it needs the true occlusion "
                                f"mask), and none is known for {keys[0]}")
        extra["mask"] = true_mask
    try:
        images, masks = completer.complete(occluded, clean, **extra)
    except NonFiniteOutput as exc:
        raise OccbenchError(f"completer {name!r} returned NaN/inf for {keys[exc.row]}; "
                            "refusing to score it (are its weights finite?)") from None
    images, masks = np.asarray(images), np.asarray(masks)
    if images.shape != occluded.shape or images.dtype != np.uint8:
        raise OccbenchError(f"completer {name!r} returned images of {images.shape} "
                            f"{images.dtype}, expected {occluded.shape} uint8")
    if masks.shape != occluded.shape[:3]:
        raise OccbenchError(f"completer {name!r} returned masks of {masks.shape}, "
                            f"expected {occluded.shape[:3]}")
    bad = np.flatnonzero(~np.isfinite(masks.reshape(len(masks), -1)).all(axis=1))
    if bad.size:
        raise OccbenchError(f"completer {name!r} returned a NaN/inf mask for {keys[bad[0]]} "
                            f"({bad.size} of {len(keys)} images); refusing to score it "
                            "(are its weights finite?)")
    return images, masks.astype(np.float32, copy=False)


def complete_cached(completer: Completer, store: CompletionStore | None, keys: list[str],
                    contents: list[str], occluded: np.ndarray, clean: np.ndarray,
                    rank: int = 0, true_mask: np.ndarray | None = None):
    """:func:`run_completer`, reading and filling ``store`` (if given) for faces of these
    ``contents`` (their :func:`~occbench.faces.face_digest`)."""
    if store is None:
        return run_completer(completer, keys, occluded, clean, true_mask)
    found = store.get(keys, contents)
    todo = [i for i, k in enumerate(keys) if k not in found]
    images = np.empty(occluded.shape, np.uint8)
    masks = np.empty(occluded.shape[:3], np.float32)
    if todo:
        new_images, new_masks = run_completer(
            completer, [keys[i] for i in todo], occluded[todo], clean[todo],
            None if true_mask is None else true_mask[todo])
        store.put([keys[i] for i in todo], [contents[i] for i in todo], new_images, new_masks,
                  rank=rank)
        images[todo] = new_images
        masks[todo] = (new_masks > 0.5)
    for i, k in enumerate(keys):
        if k in found:
            images[i], masks[i] = found[k]
    return images, masks


def occlude_faces(faces: np.ndarray, keys: list[str], condition: Condition,
                  landmarks: np.ndarray | None = None):
    """Occluded copies of ``faces`` and their true masks (the clean condition: unchanged,
    empty). ``landmarks`` (N, 68, 2): for a form drawn from them."""
    if condition.clean:
        return faces, np.zeros(faces.shape[:3], dtype=np.uint8)
    from occbench.occlusion import occlude_batch

    occluded, masks, _ = occlude_batch(faces, keys, condition.form, condition.size,
                                       condition.position, seed=condition.seed,
                                       landmarks=landmarks)
    return occluded, masks


def occlude_and_complete(completer: Completer, store: CompletionStore | None, keys: list[str],
                         contents: list[str], clean: np.ndarray, condition: Condition,
                         landmarks: np.ndarray | None = None, rank: int = 0):
    """The one occlude-then-complete step of every stage (features, reconstruction figures,
    landmarks, grids): returns (occluded, completed, predicted mask, true mask)."""
    occluded, true_mask = occlude_faces(clean, keys, condition, landmarks)
    completed, pred_mask = complete_cached(completer, store, keys, contents, occluded, clean,
                                           rank=rank, true_mask=true_mask)
    return occluded, completed, pred_mask, true_mask
