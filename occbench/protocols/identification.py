"""Identification protocols: MegaFace challenge 1 as the paper uses it, on occluded (and
completed) probes, and its clean-gallery variant.

Probes: the probe set (FaceScrub) of ``config.probes``; distractors: ``config.distractor_set``
(LFW) without the probe set's people. The ranking, TPIR / CMC and the bootstrap intervals are
the pure functions of :mod:`occbench.metrics.identification` (the exact definitions are there).
"""

from __future__ import annotations

import numpy as np

from occbench.metrics.identification import IdentificationResult, identify, megaface_tar
from occbench.protocols.base import Headline, Need, Protocol


def probe_faces(ctx):
    """The run's probe faces: the first ``limit`` images of the probe set (``config.probes``),
    aligned; shared by identification and reconstruction."""
    cfg = ctx.config
    key = ("probe-keys", cfg.probes, cfg.limit, str(ctx.data_root))
    if key not in ctx.memo:
        samples = ctx.dataset(cfg.probes).samples
        ctx.memo[key] = [s.key for s in (samples[: cfg.limit] if cfg.limit else samples)]
    return ctx.aligned(cfg.probes, ctx.memo[key])


def distractor_keys(ctx, probes) -> list[str]:
    """The distractors: ``config.distractor_set`` without the probe set's people (as the
    MegaFace organisers removed them) and without an ``exclude`` list's keys or names, in
    one seeded permutation, the first ``distractors`` (and ``limit``) of it."""
    from pathlib import Path

    from occbench.data.pairs import overlapping_identities, read_exclusion_list, remove_identities
    from occbench.errors import DataError

    cfg = ctx.config
    dis = remove_identities(ctx.dataset(cfg.distractor_set),
                            overlapping_identities(probes, ctx.dataset(cfg.distractor_set)))
    if cfg.exclude:
        excluded = read_exclusion_list(Path(cfg.exclude))
        dis.samples = [s for s in dis.samples
                       if s.key not in excluded and s.identity not in excluded]
    order = np.random.default_rng(cfg.seed).permutation(len(dis.samples))
    n = len(order) if cfg.distractors is None else min(cfg.distractors, len(order))
    if cfg.limit:
        n = min(n, cfg.limit)
    keys = [dis.samples[i].key for i in order[:n]]
    if len(keys) < 10:
        raise DataError(f"only {len(keys)} distractors; need >= 10")
    return keys


def result_rows(ctx, protocol: str, dataset: str, cond, res: IdentificationResult) -> list:
    """The rows of one identification result: TPIR@1 at every D (rank 1) and the CMC at the
    largest D (ranks 2 ..), each with its bootstrap interval; n = the pairs ranked. Beside
    them, at the largest D with rank 0, MegaFace-style verification
    (:func:`~occbench.metrics.identification.megaface_tar`): ``tar@far=F`` for each resolvable
    F of 1e-6, 1e-5, 1e-4 and ``impostor_pairs`` (probes x distractors)."""
    n = res.n_pairs
    rows = [ctx.row(protocol, dataset, cond, "tpir", value, n, *res.ci_at_D[D], D=D, rank=1)
            for D, value in res.tpir_at_D.items()]
    D_max = max(res.tpir_at_D)
    for k, value in enumerate(res.cmc[1:], start=2):  # rank 1 at D_max is written above
        lo, hi = res.ci_at_rank.get(k, (np.nan, np.nan))
        rows.append(ctx.row(protocol, dataset, cond, "tpir", value, n, lo, hi, D=D_max, rank=k))
    # MegaFace-style verification on the same data (rank 0: not a rank), where resolvable
    rows.append(ctx.row(protocol, dataset, cond, "impostor_pairs", res.n_impostors,
                        res.n_impostors, D=D_max))
    rows += [ctx.row(protocol, dataset, cond, f"tar@far={far:g}", tar, n, D=D_max)
             for far, tar in megaface_tar(res).items() if not np.isnan(tar)]
    return rows


class Identification(Protocol):
    """MegaFace challenge 1 rows: TPIR@1 at every D and the CMC at the largest D, of the
    completed probe faces against the clean distractors."""

    name = "identification"
    on_clean = True
    headlines = (Headline("tpir", "TPIR@1 %", scale=100.0, rank=1, largest_d=True, order=10),)

    def prepare(self, ctx) -> None:
        self.probes = probe_faces(ctx)
        keys = distractor_keys(ctx, ctx.dataset(self.config.probes))
        self.distractors = ctx.aligned(self.config.distractor_set, keys)
        from occbench.data import identity_labels

        self.labels = identity_labels(self.probes.samples)[0]

    def needs(self, ctx):
        return [Need(self.probes, self.config.probes),
                Need(self.distractors, "distractors", clean_only=True)]

    def _identify(self, ctx, cond) -> IdentificationResult:
        return identify(ctx.features(self.probes, cond), self.labels, self._dis, seed=ctx.seed)

    def evaluate(self, ctx, cond):
        if not hasattr(self, "_dis"):
            self._dis = ctx.clean_features(self.distractors)
        return result_rows(ctx, self.name, self.config.probes, cond, self._identify(ctx, cond))


class IdentificationCleanGallery(Identification):
    """Identification with the occluded (completed) probe p against the clean face of its
    target g (see the module docstring); the distractors are clean as always. Its clean
    condition is :class:`Identification`'s."""

    name = "identification-clean-gallery"
    headlines = (Headline("tpir", "TPIR@1 cg %", scale=100.0, rank=1, largest_d=True,
                          order=15),)

    def needs(self, ctx):
        return super().needs(ctx) + [Need(self.probes, f"{self.config.probes} clean",
                                          clean_only=True)]

    def _identify(self, ctx, cond):
        return identify(ctx.features(self.probes, cond), self.labels, self._dis, seed=ctx.seed,
                        gallery=ctx.clean_features(self.probes))
