"""Per-image work of a run, into the caches: occlude -> complete -> embed (:func:`extract`) or
-> PSNR / SSIM / mask IoU (:func:`measure`).

Both skip faces already stored under the same key and content (resume) and commit batch by
batch. With ``world > 1`` (torchrun), rank ``r`` handles the images whose index is ``r``
modulo ``world`` and writes its own shard.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from occbench.cachedb import RowStore
from occbench.completions import CompletionStore, occlude_and_complete
from occbench.condition import Condition
from occbench.errors import OccbenchError
from occbench.features import FeatureStore, QualityStore
from occbench.metrics.iou import mask_iou
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


def _fill(store: RowStore, keys: list[str], faces: np.ndarray, contents: list[str] | None,
          batch_size: int, step: Callable[[np.ndarray, list[str], list[str]], None], *,
          rank: int, world: int, progress: bool, desc: str) -> int:
    """Call ``step(rows, keys, contents)`` on batches of the faces ``store`` lacks."""
    from occbench.faces import face_digests

    if contents is None:  # rows are keyed by what produced them, not just the name
        contents = face_digests(faces)
    done = store.done_keys(keys, contents)
    todo = [i for i in range(len(keys)) if i % world == rank and keys[i] not in done]
    bar = tqdm(total=len(todo), desc=desc or store.dir.name, unit="img", disable=not progress
               or not todo, leave=False)
    for start in range(0, len(todo), batch_size):
        idx = np.asarray(todo[start:start + batch_size])
        step(idx, [keys[i] for i in idx], [contents[i] for i in idx])
        bar.update(len(idx))
    bar.close()
    return len(todo)


def extract(store: FeatureStore, keys: list[str], faces: np.ndarray, condition: Condition,
            completer: Completer | None, recognizer: Recognizer, *,
            batch_size: int | None = None, rank: int = 0, world: int = 1, progress: bool = True,
            desc: str = "", completions: CompletionStore | None = None,
            contents: list[str] | None = None, landmarks: np.ndarray | None = None) -> int:
    """Fill ``store`` with the embeddings of the completed ``faces``; returns the number of
    images computed now.

    ``completer=None`` embeds the faces as they are (clean distractors). ``completions``: the
    completer's output cache (read and filled). ``contents``: the faces'
    :func:`~occbench.faces.face_digests` when the caller has them already (e.g.
    :attr:`AlignedFaces.digests`); computed here otherwise. ``landmarks``: (N, 68, 2), for a
    form drawn from them.
    """
    def step(idx, batch_keys, batch_contents):
        clean = faces[idx]
        completed = clean
        if completer is not None:
            completed = occlude_and_complete(
                completer, completions, batch_keys, batch_contents, clean, condition,
                None if landmarks is None else landmarks[idx], rank=rank)[1]
        feats = recognizer.embed(completed)
        check_embeddings(feats, recognizer.name, batch_keys)
        store.put(batch_keys, batch_contents, feats, rank=rank)

    return _fill(store, keys, faces, contents, batch_size or recognizer.batch_size, step,
                 rank=rank, world=world, progress=progress, desc=desc)


def measure(store: QualityStore, keys: list[str], faces: np.ndarray, condition: Condition,
            completer: Completer, *, batch_size: int = 256, rank: int = 0, world: int = 1,
            progress: bool = True, desc: str = "", completions: CompletionStore | None = None,
            contents: list[str] | None = None, landmarks: np.ndarray | None = None) -> int:
    """Fill ``store`` with PSNR / SSIM of each completed face against the clean one and the
    IoU of the predicted mask with the true one (NaN for the clean condition)."""
    from occbench.metrics.psnr import psnr
    from occbench.metrics.ssim import ssim

    def step(idx, batch_keys, batch_contents):
        clean = faces[idx]
        _, completed, pred_mask, true_mask = occlude_and_complete(
            completer, completions, batch_keys, batch_contents, clean, condition,
            None if landmarks is None else landmarks[idx], rank=rank)
        # no IoU on the clean condition, nor for a mask the completer was given (non-blind)
        scored = not condition.clean and getattr(completer, "predicts_mask", True)
        iou = mask_iou(pred_mask, true_mask) if scored else None
        store.put(batch_keys, batch_contents, psnr(completed, clean), ssim(completed, clean),
                  iou, rank=rank)

    return _fill(store, keys, faces, contents, batch_size, step, rank=rank, world=world,
                 progress=progress, desc=desc)
