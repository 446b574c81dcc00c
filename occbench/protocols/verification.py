"""Verification protocol: LFW-style pair verification of occluded (and completed) faces.

The pairs of ``config.pairs_set`` (LFW: ``pairs.txt``, 10 folds), both faces of a pair
occluded and completed; the figures (cosine scores, thresholds from the other folds, the
insightface-style accuracy, the t-interval over folds) are the pure functions of
:mod:`occbench.metrics.verification`.
"""

from __future__ import annotations

import numpy as np

from occbench.metrics.verification import (
    cosine_scores,
    insightface_accuracy,
    t_half_width,
    tar_at_far,
    tar_at_far_ci,
    verify_scores,
)
from occbench.protocols.base import Headline, Need, Protocol


def pair_faces(ctx):
    """The run's verification pairs and their aligned faces: the pairs of the data set
    ``config.pairs_set`` (LFW: ``pairs.txt``); with ``limit``, the first k = limit // 20
    same and k different pairs of every fold; pairs with an unreadable image left out.
    Shared by verification, reconstruction and landmarks."""
    from occbench.data.pairs import dataset_pairs

    cfg = ctx.config
    key = ("pairs", cfg.pairs_set, cfg.limit, str(ctx.data_root))
    if key not in ctx.memo:
        pairs = dataset_pairs(ctx.dataset(cfg.pairs_set))
        if cfg.limit:
            k = max(1, cfg.limit // 20)
            pairs = [p for f in sorted({q.fold for q in pairs}) for same in (True, False)
                     for p in [q for q in pairs if q.fold == f and q.same == same][:k]]
        faces = ctx.aligned(cfg.pairs_set, sorted({k for p in pairs for k in (p.key1, p.key2)}))
        readable = set(faces.keys)
        pairs = [p for p in pairs if p.key1 in readable and p.key2 in readable]
        ctx.memo[key] = pairs, faces
    return ctx.memo[key]


class Verification(Protocol):
    """Pair verification rows on the pairs of ``config.pairs_set``, both faces of a pair
    occluded (independent instances) and completed: ``accuracy`` (the set's folds, threshold
    from the other folds; its 95 % t-interval over the folds), the conventional
    ``accuracy_std``, ``accuracy_insightface`` (:func:`insightface_accuracy`, as
    published tables of insightface's ``.bin`` sets compute it), and the ROC curve sampled
    as ``tar@far=F`` for each F of :data:`~occbench.metrics.verification.FARS` (TAR at the
    lowest threshold whose FAR over all the pairs does not exceed F; n = same-person pairs;
    a 95 % bootstrap interval over the pairs), with ``impostor_pairs`` (their number, the
    resolution of the FAR axis: 1 / impostor_pairs)."""

    name = "verification"
    on_clean = True
    headlines = (Headline("accuracy", "LFW acc %", scale=100.0, order=20),
                 Headline("tar@far=0.001", "TAR@FAR=1e-3 %", scale=100.0, order=21))

    def prepare(self, ctx) -> None:
        self.pairs, self.faces = pair_faces(ctx)

    def needs(self, ctx):
        return [Need(self.faces, f"{self.config.pairs_set}-pairs")]

    def evaluate(self, ctx, cond):
        f1, f2 = (ctx.features(self.faces, cond, keys)
                  for keys in ([p.key1 for p in self.pairs], [p.key2 for p in self.pairs]))
        same = np.array([p.same for p in self.pairs], dtype=bool)
        scores = cosine_scores(f1, f2)  # once, for the folds' accuracy and the ROC
        res = verify_scores(scores, same, np.array([p.fold for p in self.pairs]))
        # 95 % t-interval over the folds (sample std, ddof=1; t(0.975, k - 1 dof) for k
        # folds: 2.262 for LFW's 10); the accuracy_std row is the conventional np.std
        # (ddof=0) of LFW reports.
        half = t_half_width(res.fold_accuracies)
        ds, n = ctx.dataset(self.config.pairs_set).name, len(self.pairs)  # bin:PATH -> stem
        insight = insightface_accuracy(f1, f2, same)[0]
        tars = tar_at_far(scores, same)
        cis = tar_at_far_ci(scores, same, seed=self.config.seed)
        return [ctx.row(self.name, ds, cond, "accuracy", res.mean, n,
                        max(res.mean - half, 0.0), min(res.mean + half, 1.0)),
                ctx.row(self.name, ds, cond, "accuracy_std", res.std, n),
                ctx.row(self.name, ds, cond, "accuracy_insightface", insight, n),
                ctx.row(self.name, ds, cond, "impostor_pairs", int((~same).sum()), n),
                *(ctx.row(self.name, ds, cond, f"tar@far={far:g}", tar, int(same.sum()),
                          *cis[far]) for far, tar in tars.items())]
