"""C2FDAN's losses (Hörmann et al., FG 2021, section III-C), each in float32.

* :func:`mask_bce` (Eq. 5): binary cross-entropy of the predicted mask (from its logits, for
  stability) against the true mask, mean over pixels and the batch.
* :func:`normalised_l1` (Eq. 6, 7): ||(I_c - I_gt) * M||_1 / ||M||_1 per image (the norm of
  the image difference sums the 3 channels, ||M||_1 counts mask pixels, at least 1), averaged
  over the batch; ``invert=True`` uses 1 - M (the non-occluded area).
* :func:`perceptual` (Eq. 8): sum over the feature maps d (``block1``, ``block3`` of the
  frozen recognizer) of the mean absolute difference (||.||_1 / number of elements).
* :func:`gram` (Eq. 10): Phi^T Phi / N(Psi) per image, Phi the (H W) x C reshaping of a
  feature map Psi of N(Psi) = C H W elements; :func:`style` is :func:`perceptual` on Grams.
* :func:`log_prob` / :func:`log_prob_fake`: log D and log (1 - D) of a discriminator whose
  probability is the mean of its pixel-wise sigmoids (a single logit for the global one),
  computed stably as logsumexp of log-sigmoids.
* :func:`generator_adversarial` (Eq. 11): -mean over the discriminators of log D(fake);
  :func:`discriminator_adversarial` (Eq. 12): -mean of log (1 - D(fake)) + log D(real).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mask_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 5 from mask logits (N, 1, H, W) and the true mask in {0, 1}."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def normalised_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                  invert: bool = False) -> torch.Tensor:
    """Eq. 6 (``invert=False``) or Eq. 7 (``invert=True``), averaged over the batch."""
    area = (1 - mask.float()) if invert else mask.float()
    n = pred.shape[0]
    diff = ((pred.float() - target.float()).abs() * area).reshape(n, -1).sum(1)
    return (diff / area.reshape(n, -1).sum(1).clamp_min(1.0)).mean()


def perceptual(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 8: sum over the maps of ``b`` (the target's) of mean |a_d - b_d|."""
    return sum(F.l1_loss(a[d].float(), b[d].float()) for d in b)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Eq. 10: (N, C, H, W) -> (N, C, C) = Phi^T Phi / (C H W)."""
    n, c, h, w = f.shape
    phi = f.float().reshape(n, c, h * w)  # Phi^T, i.e. C x HW
    return torch.bmm(phi, phi.transpose(1, 2)) / (c * h * w)


def style(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 8 with every feature map replaced by its Gram matrix."""
    return sum(F.l1_loss(gram(a[d]), gram(b[d])) for d in b)


def log_prob(logits: torch.Tensor) -> torch.Tensor:
    """log of the mean pixel-wise sigmoid of each image's logits (N, ...) -> (N,)."""
    z = logits.float().flatten(1)
    return torch.logsumexp(F.logsigmoid(z), dim=1) - math.log(z.shape[1])


def log_prob_fake(logits: torch.Tensor) -> torch.Tensor:
    """log (1 - D): 1 - mean sigmoid(z) = mean sigmoid(-z)."""
    return log_prob(-logits)


def generator_adversarial(fake: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 11: -1/K sum_i log D_i(C_i(I_f,r) + C_i(I)), batch mean."""
    return -torch.stack([log_prob(z).mean() for z in fake.values()]).mean()


def discriminator_adversarial(real: dict[str, torch.Tensor],
                              fake: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 12: -1/K sum_i [log (1 - D_i(fake)) + log D_i(real)], batch mean."""
    return -torch.stack([log_prob_fake(fake[k]).mean() + log_prob(real[k]).mean()
                         for k in real]).mean()
