"""Training task of BVMR (``occbench train bvmr``) on aligned CelebA faces.

Data: every face is flipped (p = 1/2) and occluded by the shared training sampler
(:func:`occbench.occlusion.sample_training_occlusion`: rect a ~ U[0.01, 0.15] or text
h ~ U[0.05, 0.5], random position and colour) with probability ``options.occlusion_p``
(default 1.0: every training face occluded, as in C2FDAN's training and as BVMR's own
data, where every image carries a motif). The motif is the occluder: the occluded face's
pixels inside the mask.

Losses, as in the authors' ``train/train_main.py`` (M = true mask, 1 = occluded):

* image: L1 between predicted and clean face inside M, per face summed over pixels and
  channels and divided by the mask's area (pixels, at least 1), averaged over the batch;
* motif: the same L1 between the predicted motif and the occluded face inside M;
* mask: binary cross-entropy of the predicted against the true mask (mean over pixels);
* total = ``image_weight`` (gamma1, default 2) * image + ``motif_weight`` (gamma2,
  default 1) * motif + mask.

Optimiser (configs): Adam, lr 1e-3, default betas, no weight decay, constant rate, batch 32
(the authors give each sub-network its own Adam with the same settings, which is the same
as one Adam over all parameters).

Configs: ``paper`` = the published recipe (batch 32, 200 epochs: 36,200 steps of the 5,797
CelebA faces here; mixed precision on a GPU). ``small`` = the same optimiser and loss,
batch 32, 1,500 steps (about 8 epochs). Measured 1.07 s/step with one thread on a busy
2-core machine (occlusion sampling included), so about 0.55-0.7 s/step, 14-18 min in all, on
two free cores. On a busy machine run it with ``OMP_NUM_THREADS=1``: two threads on
contended cores stall (6.8 s/step measured). ``faces51k`` = ``small`` continued (``init``: the
committed ``bvmr-small``) for 2,400 steps (1.5 epochs) on the ~51k faces of
``baselines/data/faces-51k.json`` (``options.sources``); weights ``bvmr-small-faces51k``
(config ``tag``), the completer ``bvmr-51k``. ``campaign`` (issue 30) = ``faces51k`` continued
from those weights for 7 epochs (10,997 steps x 32: C2FDAN's campaign sees 7 epochs, 2 of
stage 1 and 5 of stage 2), 1,000 held-out faces measured every 500 steps; its weights are
``bvmr-small-campaign`` until the run is complete, so ``bvmr-51k`` does not change half-way.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from baselines.bvmr.model import create
from occbench.models.torch_adapter import to_unit
from occbench.train.data import CelebATask, FaceDataset
from occbench.train.loop import TrainConfig

NAME = "bvmr"


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum(|pred - target| * mask) / max(area, 1) per image.

    pred, target: (N, C, H, W); mask: (N, 1, H, W) in {0, 1}; area = sum of the mask.
    """
    n = pred.shape[0]
    per = ((pred - target).abs() * mask).reshape(n, -1).sum(1)
    area = mask.reshape(n, -1).sum(1).clamp_min(1.0)
    return (per / area).mean()


def bvmr_losses(image: torch.Tensor, mask_pred: torch.Tensor, motif: torch.Tensor,
                clean: torch.Tensor, occluded: torch.Tensor, mask: torch.Tensor,
                image_weight: float = 2.0, motif_weight: float = 1.0
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The published loss (float32). Images in [-1, 1] (N, 3, H, W); masks (N, 1, H, W).

    Returns the total and its parts ``l1_image``, ``l1_motif``, ``bce_mask``.
    """
    image, mask_pred, motif = image.float(), mask_pred.float(), motif.float()
    parts = {
        "l1_image": masked_l1(image, clean, mask),
        "l1_motif": masked_l1(motif, occluded, mask),
        "bce_mask": F.binary_cross_entropy(mask_pred, mask),
    }
    total = (image_weight * parts["l1_image"] + motif_weight * parts["l1_motif"]
             + parts["bce_mask"])
    return total, parts


class BVMRTask(CelebATask):
    """``occbench train bvmr`` on ``<data_root>/celeba`` (or the given ``faces``)."""

    OPTIONS = {**CelebATask.OPTIONS, "occlusion_p": 1.0, "recognizer": "mid",
               "image_weight": 2.0, "motif_weight": 1.0}

    def build(self, cfg: TrainConfig) -> nn.Module:
        self.use_sources(cfg)
        return create(cfg.arch)

    def dataset(self, cfg: TrainConfig) -> FaceDataset:
        self.use_sources(cfg)
        train, self.held = self.split(cfg)
        return FaceDataset(self.faces.images, self.faces.labels, cfg.seed,
                           occlusion_p=self.options(cfg)["occlusion_p"], with_clean=True,
                           subset=train)

    def evaluate(self, model: nn.Module, cfg: TrainConfig) -> dict[str, float]:
        """Held-out PSNR / SSIM / mask IoU / identity cosine per form, as C2FDAN's
        (:class:`occbench.train.heldout.HeldOut`; identity under ``options.recognizer``,
        default the ``mid`` student); the output blended into the input with the predicted
        mask, as the completer does."""
        from baselines.resnet50.adapter import load_frozen

        held = self.completion_held_out(
            cfg, lambda: load_frozen(self.options(cfg)["recognizer"]))
        return held.figures(model, compose=True)

    def loss(self, model: nn.Module, batch: dict, cfg: TrainConfig):
        occluded, clean = to_unit(batch["face"]), to_unit(batch["clean"])
        mask = batch["mask"].unsqueeze(1).float()
        image, mask_pred, motif = model(occluded, motif=True)
        opts = self.options(cfg)
        with torch.autocast(occluded.device.type, enabled=False):  # BCE is unsafe in fp16
            loss, parts = bvmr_losses(image, mask_pred, motif, clean, occluded, mask,
                                      opts["image_weight"], opts["motif_weight"])
        return loss, {k: v.item() for k, v in parts.items()}

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The whole network (the adapter builds the same one, motif decoder included)."""
        return dict(model.state_dict())


def make_task(name: str, data_root: str | Path, limit: int | None = None) -> BVMRTask:
    """The factory ``occbench.train.cli`` calls."""
    return BVMRTask(name, data_root, limit=limit)
