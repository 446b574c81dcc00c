"""Real occlusions against their synthetic twins (issue 33): does a synthetic mask or pair of
sunglasses predict what a real one does to identification?

On the people who have both neutral images (``config.probes``, e.g. ``rof:neutral``) and
real occluded images (``config.real_set``, e.g. ``rof:masked``), ranked
among the clean distractors of ``config.distractor_set`` (without the people of either set,
as identification removes the probe set's people), three kinds of rows, each MegaFace-style
(TPIR@1 at every D, the CMC at the largest D; :func:`~occbench.metrics.identification.identify`):

* **real** (rows with form ``real``, dataset = the real set): every (probe, target) pair of
  one person where the probe is a real occluded image, completed by the completer (the clean
  condition: no synthetic occluder is added), and the target one of that person's neutral
  images, as it is;
* **clean baseline** (the clean condition, dataset = the neutral set of the real set's people,
  :func:`occbench.results.neutral_of`): every ordered pair of
  two neutral images of one person, the probe completed, the target as it is;
* **synthetic twin** (each occluded condition of the run, e.g. ``--form mask,glasses``): the
  probe is a neutral image with the synthetic occluder, completed, the target another
  neutral image as it is (the clean-gallery setting: a synthetic occluder does not also
  cover the target, as a real one does not).

There are no reconstruction figures for real probes (no clean truth exists).
"""

from __future__ import annotations

import numpy as np

from occbench.condition import Condition
from occbench.errors import ConfigError
from occbench.metrics.identification import identify
from occbench.protocols.base import Headline, Need, Protocol
from occbench.protocols.identification import distractor_keys, result_rows
from occbench.results import REAL as REAL_FORM
from occbench.results import neutral_of

#: The pseudo-condition of the real rows (form ``real``: the occlusion is in the images).
REAL = Condition(REAL_FORM)


class RealOcclusion(Protocol):
    name = "identification-real"
    on_clean = True
    headlines = (Headline("tpir", "TPIR@1 real/twin %", scale=100.0, rank=1, largest_d=True,
                          order=16),)

    def prepare(self, ctx) -> None:
        from occbench.data import identity_labels
        from occbench.data.base import Dataset

        cfg = self.config
        if not cfg.real_set:
            raise ConfigError(f"protocol {self.name} needs --real-set: the real occluded images "
                              f"of the probe set's people (e.g. --probes rof:neutral "
                              f"--real-set rof:masked)")
        if not getattr(ctx.completer, "blind", True):
            raise ConfigError(f"protocol {self.name}: completer {cfg.model!r} is non-blind (it "
                              "needs the true occlusion mask), and real occlusions have none; "
                              "run it on synthetic occlusions")
        real_ds = ctx.dataset(cfg.real_set)
        neutral = ctx.dataset(cfg.probes).samples
        real = real_ds.samples[: cfg.limit] if cfg.limit else real_ds.samples
        neutral = neutral[: cfg.limit] if cfg.limit else neutral
        # the people of both sets: the baseline and the twin are measured on them only
        people = {s.identity for s in neutral} & {s.identity for s in real}
        if not people:
            raise ConfigError(f"{cfg.real_set}: none of its people has an image in "
                              f"{cfg.probes}, so no real image has a target")
        self.probes = ctx.aligned(cfg.probes, [s.key for s in neutral if s.identity in people])
        # a person whose neutral images were all unreadable has no target: drop their real ones
        people &= {s.identity for s in self.probes.samples}
        self.real = ctx.aligned(cfg.real_set, [s.key for s in real if s.identity in people])
        # the distractors lose the people of both sets
        both = Dataset("probes+real", real_ds.root,
                       sorted(ctx.dataset(cfg.probes).samples + real_ds.samples))
        self.distractors = ctx.aligned(cfg.distractor_set, distractor_keys(ctx, both))
        self.labels, names = identity_labels(self.probes.samples)
        index = {n: i for i, n in enumerate(names)}
        real_labels = np.array([index[s.identity] for s in self.real.samples])
        n_real = len(real_labels)
        # rows 0 .. n_real - 1: the real probes; then the neutral images (their targets)
        self.all_labels = np.r_[real_labels, self.labels]
        probe, target = np.nonzero(real_labels[:, None] == self.labels[None, :])
        self.real_pairs = (probe, n_real + target)

    def needs(self, ctx):
        return [Need(self.probes, self.config.probes),
                Need(self.probes, f"{self.config.probes} clean", clean_only=True),
                Need(self.real, self.config.real_set, clean_condition_only=True),
                Need(self.distractors, "distractors", clean_only=True)]

    def evaluate(self, ctx, cond):
        if not hasattr(self, "_dis"):
            self._dis = ctx.clean_features(self.distractors)
            self._neutral = ctx.clean_features(self.probes)
        probes = ctx.features(self.probes, cond)
        res = identify(probes, self.labels, self._dis, seed=ctx.seed, gallery=self._neutral)
        rows = self._rows(ctx, neutral_of(self.config.probes, self.config.real_set), cond, res)
        if not cond.clean:  # the synthetic twin
            return rows
        real = ctx.features(self.real, cond)
        features = np.concatenate([real, self._neutral])
        res = identify(features, self.all_labels, self._dis, seed=ctx.seed, gallery=features,
                       pairs=self.real_pairs)
        return rows + self._rows(ctx, self.config.real_set, REAL, res)

    def _rows(self, ctx, dataset: str, cond, res) -> list:
        """The identification rows, and (rank 0, at the largest D) how many people and
        probe images the pairs come from: ``people`` and ``probes``."""
        d_max = max(res.tpir_at_D)
        n = res.n_pairs
        return result_rows(ctx, self.name, dataset, cond, res) + [
            ctx.row(self.name, dataset, cond, "people", len(np.unique(res.pair_identity)), n,
                    D=d_max),
            ctx.row(self.name, dataset, cond, "probes", len(np.unique(res.pair_probe)), n,
                    D=d_max)]
