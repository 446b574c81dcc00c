"""Per-image work of a run: occlude -> complete -> embed (+ PSNR/SSIM/mask IoU), into the cache.

``extract`` fills a :class:`~occbench.features.FeatureStore` for a list of aligned faces,
skipping faces already stored under the same key and content (resume), in batches committed
one at a time. With
``world > 1`` (torchrun), rank ``r`` handles the images whose index is ``r`` modulo ``world``
and writes its own shard.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from occbench.completions import CompletionStore, complete_cached
from occbench.errors import OccbenchError
from occbench.features import Condition, FeatureStore
from occbench.models.base import Completer, Recognizer


def check_embeddings(feats: np.ndarray, recognizer: str, keys: list[str]) -> None:
    """Refuse NaN/inf or zero embeddings: they would silently give wrong numbers."""
    bad_finite = ~np.isfinite(feats).all(axis=1)
    bad_zero = np.linalg.norm(np.nan_to_num(feats), axis=1) < 1e-6
    bad = np.flatnonzero(bad_finite | bad_zero)
    if bad.size:
        kind = "NaN/inf" if bad_finite[bad[0]] else "zero"
        raise OccbenchError(
            f"recognizer {recognizer!r} returned {bad.size} invalid embeddings "
            f"({kind} for {keys[bad[0]]}); refusing to score them"
        )


def mask_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-image IoU of ``pred > 0.5`` against the true binary mask (1 where both are empty)."""
    p = np.asarray(pred) > 0.5
    t = np.asarray(true).astype(bool)
    inter = (p & t).reshape(len(p), -1).sum(1)
    union = (p | t).reshape(len(p), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def occlude_faces(faces: np.ndarray, keys: list[str], condition: Condition):
    """Occluded copies of ``faces`` and their true masks (the clean condition: unchanged, empty)."""
    if condition.clean:
        return faces, np.zeros(faces.shape[:3], dtype=np.uint8)
    from occbench.occlusion import occlude_batch

    occluded, masks, _ = occlude_batch(faces, keys, condition.form, condition.size,
                                       condition.position, seed=condition.seed)
    return occluded, masks


def extract(
    store: FeatureStore,
    keys: list[str],
    faces: np.ndarray,
    condition: Condition,
    completer: Completer | None,
    recognizer: Recognizer,
    *,
    batch_size: int | None = None,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
    desc: str = "",
    completions: CompletionStore | None = None,
    contents: list[str] | None = None,
) -> int:
    """Fill ``store`` for ``keys``/``faces``; returns the number of images computed now.

    ``completer=None`` embeds the faces as they are (clean distractors) and skips the
    reconstruction figures. ``completions``: the completer's output cache (read and filled).
    ``contents``: the faces' :func:`~occbench.align.face_digests` when the caller has them
    already (e.g. :attr:`AlignedFaces.digests`); computed here otherwise.
    """
    from occbench.align import face_digests
    from occbench.metrics import psnr, ssim

    if contents is None:  # rows are keyed by what produced them, not just the name
        contents = face_digests(faces)
    done = store.done_keys(keys, contents)
    todo = [i for i in range(len(keys)) if i % world == rank and keys[i] not in done]
    if not todo:
        return 0
    bs = batch_size or recognizer.batch_size
    bar = tqdm(total=len(todo), desc=desc or store.dir.name, unit="img", disable=not progress,
               leave=False)
    for start in range(0, len(todo), bs):
        idx = np.asarray(todo[start:start + bs])
        batch_keys = [keys[i] for i in idx]
        batch_contents = [contents[i] for i in idx]
        clean = faces[idx]
        if completer is None:
            completed, quality = clean, None
        else:
            occluded, true_mask = occlude_faces(clean, batch_keys, condition)
            completed, pred_mask = complete_cached(completer, completions, batch_keys,
                                                   batch_contents, occluded, clean, rank=rank)
            iou = mask_iou(pred_mask, true_mask) if not condition.clean else None
            quality = (psnr(completed, clean), ssim(completed, clean), iou)
        feats = recognizer.embed(completed)
        check_embeddings(feats, recognizer.name, batch_keys)
        store.put(batch_keys, batch_contents, feats, *(quality or (None, None, None)),
                  rank=rank)
        bar.update(len(idx))
    bar.close()
    return len(todo)
