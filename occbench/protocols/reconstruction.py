"""Reconstruction protocol (paper Table I, PSNR / SSIM): how close the completed face is to
the clean one, and how well the completer found the occlusion (mask IoU).

Per condition, on the probe faces and on the verification pairs' faces: the mean over faces
of PSNR (dB, peak 255) and SSIM (:mod:`occbench.metrics`) of the completed face against the
clean face, and of the IoU of the predicted mask (> 0.5) with the true occlusion mask, each
with a 95 % bootstrap interval. A completed face equal to the clean one has an infinite PSNR:
it is left out of the PSNR mean (the row's ``n`` counts the faces averaged) and the share of
such faces is its own row, ``psnr_identical`` (only where there are any). The figures depend
on the completer only: they are cached per
(completer, condition) and shared by every recognizer. Not evaluated on the clean condition,
nor for an oracle completer (its output is the clean face).
"""

from __future__ import annotations

import numpy as np

from occbench.metrics.bootstrap import mean_ci
from occbench.protocols.base import Headline, Need, Protocol


class Reconstruction(Protocol):
    name = "reconstruction"
    on_clean = False
    # the probe set (FaceScrub) is the paper's reconstruction set (MegaFace); LFW's pair
    # faces are measured too, but are not the headline
    headlines = (Headline("psnr", "PSNR dB", digits=2, exclude_datasets=("lfw",), order=30),
                 Headline("ssim", "SSIM", digits=4, exclude_datasets=("lfw",), order=31),
                 Headline("mask_iou", "mask IoU", digits=3, exclude_datasets=("lfw",), order=32))

    def prepare(self, ctx) -> None:
        from occbench.protocols.identification import probe_faces
        from occbench.protocols.verification import pair_faces

        self.sets = [(ctx.dataset(self.config.probes).name, probe_faces(ctx))]
        if self.config.pairs_set != self.config.probes:  # one row per data set
            self.sets.append((ctx.dataset(self.config.pairs_set).name, pair_faces(ctx)[1]))

    def needs(self, ctx):
        return [Need(faces, name, features=False, quality=True) for name, faces in self.sets]

    def evaluate(self, ctx, cond):
        rows = []
        for dataset, faces in self.sets:
            quality = ctx.quality(faces, cond) if len(faces) else None
            if quality is None:
                continue
            for metric, values in quality.items():
                if np.isnan(values).all():
                    continue
                mean, lo, hi = mean_ci(values, seed=self.config.seed)
                rows.append(ctx.row(self.name, dataset, cond, metric, mean,
                                    np.isfinite(values).sum(), lo, hi))
                identical = int(np.isposinf(values).sum()) if metric == "psnr" else 0
                if identical:  # PSNR inf: left out of the mean (n above), counted here
                    rows.append(ctx.row(self.name, dataset, cond, "psnr_identical",
                                        identical / len(values), len(values)))
        return rows
