"""Held-out figures of a completion network during training (the completers' learning curve).

The held-out faces (whole identities kept out of training, :func:`occbench.train.data.
holdout_mask`) are occluded once with a rectangle and once with text by the training
sampler, seeded by each face's position, so every evaluation of a run sees the same inputs.
Per form: PSNR and SSIM of the completed against the clean face, the IoU of the predicted
mask, and the identity similarity: the cosine between the embedding of the completed face
and that of the clean face under a frozen recognizer (the one the identity losses use).
The occluded input's own PSNR / SSIM / cosine are the reference a completer must beat.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from occbench.metrics.iou import mask_iou
from occbench.metrics.psnr import mean_psnr, psnr
from occbench.metrics.ssim import ssim

FORMS = ("rect", "text")


def occlude_held_out(clean: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{form: (occluded uint8 (N, 112, 112, 3), mask uint8 (N, 112, 112))}``."""
    from occbench.occlusion import sample_training_occlusion

    out = {}
    for k, form in enumerate(FORMS):
        pairs = [sample_training_occlusion(face, np.random.default_rng([seed, 4211, k, i]),
                                           forms=(form,))[:2] for i, face in enumerate(clean)]
        out[form] = (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    return out


def embed(net: torch.nn.Module, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """L2-normalised embeddings of uint8 faces by a ResNet-v2 of ``baselines/resnet50``."""
    device = next(net.parameters()).device
    out = [net.embed(net.preprocess(torch.as_tensor(faces[s:s + batch], device=device)))
           .float().cpu() for s in range(0, len(faces), batch)]
    return F.normalize(torch.cat(out), dim=1).numpy()


def complete_with(generator: Callable, faces: np.ndarray, batch: int = 64, *,
                  compose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(completed uint8 faces, predicted mask (N, 112, 112) float) of a network whose forward
    maps [-1, 1] NCHW faces to (image, mask); ``compose``: blend the image into the input
    with the predicted mask, as the completer's adapter does (else the network did)."""
    from occbench.models.torch_adapter import to_uint8, to_unit

    device = next(generator.parameters()).device
    images, masks = [], []
    for s in range(0, len(faces), batch):
        x = to_unit(torch.as_tensor(faces[s:s + batch], device=device))
        image, mask = generator(x)
        image, mask = image.float(), mask.float().clamp(0, 1)
        if compose:
            image = (1 - mask) * x + mask * image
        images.append(to_uint8(image.float()).cpu())
        masks.append(mask[:, 0].cpu())
    return torch.cat(images).numpy(), torch.cat(masks).numpy()


class HeldOut:
    """The held-out faces of a completion task, occluded once; ``figures(generator)`` per
    form: ``psnr_<form>``, ``ssim_<form>``, ``iou_<form>``, ``idcos_<form>`` (``complete``
    then ``score``: one completion can be scored under several recognizers);
    ``reference`` the occluded input's own figures (what the curve should rise above)."""

    def __init__(self, clean: np.ndarray, seed: int, recognizer: torch.nn.Module):
        self.clean, self.recognizer = clean, recognizer
        self.occluded = occlude_held_out(clean, seed)
        self.clean_emb = embed(recognizer, clean)
        self.reference = {}
        for form, (occ, _) in self.occluded.items():
            self.reference.update(self._quality(form, occ))

    def _quality(self, form: str, faces: np.ndarray) -> dict[str, float]:
        cos = (embed(self.recognizer, faces) * self.clean_emb).sum(1)
        # a face completed exactly (PSNR inf) counts as 100 dB, as some papers cap it
        return {f"psnr_{form}": mean_psnr(psnr(faces, self.clean), cap=100.0).mean,
                f"ssim_{form}": float(np.mean(ssim(faces, self.clean))),
                f"idcos_{form}": float(cos.mean())}

    def complete(self, generator: Callable, compose: bool = False
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{form: (completed uint8 faces, predicted mask)}`` of the occluded faces
        (:func:`complete_with`)."""
        return {form: complete_with(generator, occ, compose=compose)
                for form, (occ, _) in self.occluded.items()}

    def score(self, completions: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """The figures of completions made by :meth:`complete` (of this set, or of another
        HeldOut of the same faces and seed judged by another recognizer)."""
        out = {}
        for form, (completed, mask) in completions.items():
            out.update(self._quality(form, completed))
            out[f"iou_{form}"] = float(mask_iou(mask, self.occluded[form][1]).mean())
        return out

    def figures(self, generator: Callable, compose: bool = False) -> dict[str, float]:
        return self.score(self.complete(generator, compose))
