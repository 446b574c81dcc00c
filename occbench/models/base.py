"""The two kinds of model adapter occbench evaluates.

A *completer* turns occluded aligned faces into completed ones and predicts where the
occlusion was; a *recognizer* turns aligned faces into L2-normalised embeddings. Both take
and give batches of 112x112 RGB uint8 faces aligned to the template in ``occbench.template``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from occbench.errors import OccbenchError


class NonFiniteOutput(OccbenchError):
    """A model returned NaN/inf for the face at ``row`` of the batch it was given."""

    def __init__(self, model: str, row: int):
        super().__init__(f"{model!r} returned NaN/inf for face {row} of its batch; "
                         "refusing to score it (are its weights finite?)")
        self.model, self.row = model, row


class Completer(ABC):
    """Occluded image -> (completed image, predicted mask).

    ``name``, ``version`` and the creation options (but those named in ``cache_neutral``) key
    the caches (:func:`occbench.models.cache_tag`): derive ``version`` from what fixes the
    output (e.g. the weight file's SHA-256), never bump it by hand.
    """

    name: str = ""
    version: str = "1"
    cache_neutral: tuple[str, ...] = ("device", "batch_size")
    # True for an oracle that returns the clean faces whatever the occlusion: the runner then
    # embeds the clean faces once and reuses them for every condition (no per-condition
    # features, and no reconstruction figures: they would be PSNR inf, SSIM 1).
    outputs_clean: bool = False
    # True for the identity (returns its input unchanged): on the clean condition its output is
    # the clean face, so the runner reuses the features of the faces as they are (the store the
    # oracle and the clean-gallery protocol use) instead of embedding them again.
    returns_input: bool = False
    # True for a completer slow enough that its outputs are worth caching on disk
    # (occbench.completions): then it runs once per image and condition, whatever the recognizer.
    cache_outputs: bool = False
    # False for a non-blind completer (classical inpainting): ``complete`` is then also given
    # the true occlusion mask (``mask=``), its rows say "(non-blind)", and it cannot run on
    # real occlusions (they have no true mask).
    blind: bool = True
    # False when the returned mask is not the completer's own prediction (a non-blind
    # completer returns the mask it was given): then no mask IoU figures are computed.
    predicts_mask: bool = True

    @abstractmethod
    def complete(
        self, occluded: np.ndarray, clean: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Complete a batch.

        occluded: (N, 112, 112, 3) uint8. clean: the same faces unoccluded; only an oracle
        may look at it. Returns (completed (N, 112, 112, 3) uint8, mask (N, 112, 112) float32
        in [0, 1], 1 = predicted occluded). A non-blind completer's ``complete`` takes a third
        argument, ``mask``: the true occlusion mask, (N, 112, 112), 1 = occluded.
        """


class Recognizer(ABC):
    """Aligned image -> L2-normalised embedding of ``dim`` float32 values (caches keyed as a
    :class:`Completer`'s)."""

    name: str = ""
    version: str = "1"
    cache_neutral: tuple[str, ...] = ("device", "batch_size", "threads")
    dim: int = 0
    batch_size: int = 64

    @abstractmethod
    def embed(self, faces: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 -> (N, dim) float32, each row of unit L2 norm."""


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); zero rows stay zero and are caught by checks."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
