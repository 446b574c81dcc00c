"""``occbench run``: the whole data flow for one completer and one recognizer.

data root -> data sets -> aligned faces (cached) -> for each occlusion condition:
occlude -> complete -> embed (cached) -> identification / verification / reconstruction
-> tidy rows merged into ``<out>/results.parquet``.

The clean condition (no occlusion) is always evaluated too, with the completer applied to
the clean faces, so every table holds the clean end of the gap next to the occluded one.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from occbench.data import identity_labels
from occbench.errors import ConfigError, DataError
from occbench.features import CLEAN, Condition, FeatureStore
from occbench.results import NONE, Row, mean_ci, merge_results, rows_to_frame

PROTOCOLS = ("identification", "verification", "reconstruction", "landmarks")
DEFAULT_PROTOCOLS = ("identification", "verification", "reconstruction")


@dataclass
class RunConfig:
    """What one ``occbench run`` evaluates. ``None`` sizes = the paper's sizes of each form."""

    model: str = "occluded"
    recognizer: str = "dlib"
    forms: tuple[str, ...] = ("rect", "text")
    positions: tuple[str, ...] = ("eyes", "nose", "mouth", "outside")
    sizes: tuple[float, ...] | None = None
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    distractors: int | None = None  # largest D; None = every distractor available
    probes: str = "facescrub"
    distractor_set: str = "lfw"
    exclude: str | None = None  # a noise/exclusion list file of distractor keys or names
    seed: int = 0
    limit: int | None = None  # at most this many images of each set (quick runs, tests)
    landmark_images: int = 1000  # LFW faces (a seeded sample of the pair images) for landmarks
    batch_size: int | None = None
    include_clean: bool = True  # False: only the occluded conditions (clean measured already)
    recognizer_args: dict = field(default_factory=dict)  # keyword options of the recognizer
    conditions: list[Condition] = field(default_factory=list, init=False)

    def __post_init__(self):
        from occbench.occlusion import EVAL_SIZES, canonical_form, check_spec
        from occbench.options import at_least

        for name, minimum in (("limit", 1), ("distractors", 1), ("batch_size", 1),
                              ("landmark_images", 1), ("seed", 0)):
            value = getattr(self, name)
            if value is not None:
                at_least(value, minimum, name)
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ConfigError(f"unknown protocol {unknown[0]!r}; known: {', '.join(PROTOCOLS)}")
        self.conditions = [CLEAN] if self.include_clean else []
        for form in self.forms:
            for position in self.positions:
                for size in self.sizes or EVAL_SIZES[canonical_form(form)]:
                    form_name, size = check_spec(form, size, position)
                    self.conditions.append(Condition(form_name, position, float(size), self.seed))


def _dist_env() -> tuple[int, int]:
    """(rank, world size) under torchrun, (0, 1) otherwise; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


class Runner:
    """Holds the loaded data, models and caches of one run."""

    def __init__(self, config: RunConfig, data_root: Path, cache: Path, progress: bool = True,
                 memo: dict | None = None):
        from occbench.align import ALIGN_VERSION
        from occbench.models import create_completer, create_recognizer

        self.config = config
        self.data_root = data_root
        self.cache = cache
        self.progress = progress
        self.completer = create_completer(config.model)
        self.recognizer = create_recognizer(config.recognizer, **config.recognizer_args)
        self.align_version = str(ALIGN_VERSION)
        self.rank, self.world = _dist_env()
        self.timings: dict[str, float] = {}
        # aligned faces by (set, keys), shared between the runs of one sweep
        self.memo = memo if memo is not None else {}

    # ---- data -------------------------------------------------------------------------
    def _aligned(self, name: str, keys: list[str] | None = None):
        """Aligned faces of a data set (rank 0 aligns first, the others read the cache)."""
        from occbench.align import align_dataset
        from occbench.data import load_dataset

        memo_key = (name, str(self.data_root), tuple(keys) if keys is not None else None)
        if memo_key in self.memo:
            return self.memo[memo_key]
        ds = load_dataset(name, self.data_root)
        if keys is not None:
            wanted = set(keys)
            ds.samples = [s for s in ds.samples if s.key in wanted]
        if self.rank == 0:
            faces = align_dataset(ds, progress=self.progress)
        _barrier(self.world)
        if self.rank != 0:
            faces = align_dataset(ds, progress=False)
        self.memo[memo_key] = faces
        return faces

    def load(self) -> None:
        from occbench.data import load_dataset
        from occbench.data.pairs import (
            overlapping_identities,
            read_exclusion_list,
            read_pairs,
            remove_identities,
        )

        cfg, t0 = self.config, time.perf_counter()
        need_id = "identification" in cfg.protocols
        need_pairs = {"verification", "landmarks"} & set(cfg.protocols)
        probe_keys: list[str] = []
        self.distractor_keys: list[str] = []
        if need_id or "reconstruction" in cfg.protocols:
            probes = load_dataset(cfg.probes, self.data_root)
            samples = probes.samples[: cfg.limit] if cfg.limit else probes.samples
            probe_keys = [s.key for s in samples]
            if need_id:
                dis = load_dataset(cfg.distractor_set, self.data_root)
                dis = remove_identities(dis, overlapping_identities(probes, dis))
                if cfg.exclude:
                    excluded = read_exclusion_list(Path(cfg.exclude))
                    dis.samples = [s for s in dis.samples
                                   if s.key not in excluded and s.identity not in excluded]
                order = np.random.default_rng(cfg.seed).permutation(len(dis.samples))
                n = len(order) if cfg.distractors is None else min(cfg.distractors, len(order))
                if cfg.limit:
                    n = min(n, cfg.limit)
                self.distractor_keys = [dis.samples[i].key for i in order[:n]]
                if len(self.distractor_keys) < 10:
                    raise DataError(f"only {len(self.distractor_keys)} distractors; need >= 10")
        self.pairs = []
        if need_pairs:
            lfw = load_dataset("lfw", self.data_root)
            pairs = read_pairs(self.data_root / "lfw" / "pairs.txt", lfw)
            if cfg.limit:  # the first k same and k different pairs of every fold
                k = max(1, cfg.limit // 20)
                pairs = [p for f in sorted({q.fold for q in pairs}) for same in (True, False)
                         for p in [q for q in pairs if q.fold == f and q.same == same][:k]]
            self.pairs = pairs
        pair_keys = sorted({k for p in self.pairs for k in (p.key1, p.key2)})
        self.probe_faces = self._aligned(cfg.probes, probe_keys) if probe_keys else None
        self.pair_faces = self._aligned("lfw", pair_keys) if pair_keys else None
        self.distractor_faces = (self._aligned(cfg.distractor_set, self.distractor_keys)
                                 if self.distractor_keys else None)
        # Unreadable files are listed by the aligner and left out here, loudly.
        self.bad = [b for f in (self.probe_faces, self.pair_faces, self.distractor_faces)
                    if f is not None for b in f.bad]
        for _key, path, reason in self.bad:
            print(f"occbench: warning: left out unreadable {path} ({reason})", file=sys.stderr)
        if self.probe_faces is not None:
            self.probe_keys = self.probe_faces.keys
            self.probe_labels = identity_labels(self.probe_faces.samples)[0]
        else:
            self.probe_keys = []
        if self.distractor_faces is not None:
            self.distractor_keys = self.distractor_faces.keys
        if self.pair_faces is not None:
            readable = set(self.pair_faces.keys)
            self.pairs = [p for p in self.pairs if p.key1 in readable and p.key2 in readable]
        self.pair_keys = self.pair_faces.keys if self.pair_faces is not None else []
        self.timings["load+align"] = time.perf_counter() - t0

    # ---- features ---------------------------------------------------------------------
    def _store(self, completer_tag: str, condition: Condition) -> FeatureStore:
        r = self.recognizer
        return FeatureStore(self.cache, f"{r.name}@{r.version}", completer_tag, condition,
                            self.align_version, r.dim)

    def _completions(self, condition: Condition):
        """The completer's output cache for ``condition`` (None: not worth caching)."""
        from occbench.completions import CompletionStore

        c = self.completer
        if not c.cache_outputs:
            return None
        return CompletionStore(self.cache, f"{c.name}@{c.version}", condition, self.align_version)

    def _fill(self, store, faces, condition, completer, desc) -> None:
        from occbench.extract import extract

        if faces is None:
            return
        extract(store, faces.keys, faces.images, condition, completer, self.recognizer,
                batch_size=self.config.batch_size, rank=self.rank, world=self.world,
                progress=self.progress, desc=desc, contents=faces.digests,
                completions=self._completions(condition) if completer is not None else None)

    def features(self, condition: Condition):
        """Stores for probe-set images and pair images under ``condition`` (computed if needed)."""
        c = self.completer
        if c.outputs_clean:  # an oracle: the clean faces' features serve every condition
            store = self._store("none", CLEAN)
            for faces, what in ((self.probe_faces, self.config.probes),
                                (self.pair_faces, "lfw-pairs")):
                self._fill(store, faces, CLEAN, None, f"clean faces {what}")
            return store
        tag = f"{c.name}@{c.version}"
        store = self._store(tag, condition)
        for faces, what in ((self.probe_faces, self.config.probes), (self.pair_faces, "lfw-pairs")):
            self._fill(store, faces, condition, c, f"{c.name} {condition.tag()} {what}")
        return store

    def distractor_store(self) -> FeatureStore:
        store = self._store("none", CLEAN)
        self._fill(store, self.distractor_faces, CLEAN, None, "distractors (clean)")
        return store

    # ---- protocols --------------------------------------------------------------------
    def _row(self, protocol, dataset, cond: Condition, metric, value, n, lo=np.nan, hi=np.nan,
             D=0, rank=0) -> Row:
        return Row(model=self.config.model, recognizer=self.config.recognizer, dataset=dataset,
                   protocol=protocol, form=cond.form if not cond.clean else NONE,
                   position=cond.position if not cond.clean else NONE, size=cond.size,
                   metric=metric, value=float(value), n=int(n), ci_low=float(lo),
                   ci_high=float(hi), D=int(D), rank=int(rank))

    def identification_rows(self, cond, probe, distractors) -> list[Row]:
        from occbench.protocols.identification import identify

        res = identify(probe.features, self.probe_labels, distractors.features,
                       seed=self.config.seed)
        rows = []
        ds = self.config.probes
        for D, value in res.tpir_at_D.items():
            lo, hi = res.ci_at_D[D]
            rows.append(self._row("identification", ds, cond, "tpir", value, res.n_pairs, lo, hi,
                                  D=D, rank=1))
        D_max = max(res.tpir_at_D)
        for k, value in enumerate(res.cmc, start=1):
            lo, hi = res.ci_at_rank.get(k, (np.nan, np.nan))
            if k == 1:
                continue  # already written above for D_max
            rows.append(self._row("identification", ds, cond, "tpir", value, res.n_pairs, lo, hi,
                                  D=D_max, rank=k))
        return rows

    def verification_rows(self, cond, store) -> list[Row]:
        from occbench.protocols.verification import verify

        f1, f2 = (store.get(k, self.pair_faces.digests_of(k)).features
                  for k in ([p.key1 for p in self.pairs], [p.key2 for p in self.pairs]))
        res = verify(f1, f2, np.array([p.same for p in self.pairs]),
                     np.array([p.fold for p in self.pairs]))
        # 95 % t-interval over the folds (sample std, ddof=1; t(0.975, 9 dof) = 2.262);
        # the accuracy_std row is the conventional np.std (ddof=0) of LFW reports.
        accs = np.asarray(res.fold_accuracies, dtype=np.float64)
        half = 2.262 * accs.std(ddof=1) / np.sqrt(len(accs)) if len(accs) > 1 else np.nan
        return [
            self._row("verification", "lfw", cond, "accuracy", res.mean, len(self.pairs),
                      max(res.mean - half, 0.0), min(res.mean + half, 1.0)),
            self._row("verification", "lfw", cond, "accuracy_std", res.std, len(self.pairs)),
        ]

    def reconstruction_rows(self, cond, probe, pairs) -> list[Row]:
        rows = []
        for dataset, stored in ((self.config.probes, probe), ("lfw", pairs)):
            if stored is None or not len(stored.keys):
                continue
            for metric, values in (("psnr", stored.psnr), ("ssim", stored.ssim),
                                   ("mask_iou", stored.iou)):
                if np.isnan(values).all():
                    continue
                mean, lo, hi = mean_ci(values, seed=self.config.seed)
                rows.append(self._row("reconstruction", dataset, cond, metric, mean,
                                      np.isfinite(values).sum(), lo, hi))
        return rows

    def landmark_rows(self, cond: Condition) -> list[Row]:
        """Paper Fig. 8: 68-point landmarks of the completed face against the clean face's."""
        from occbench.completions import complete_cached
        from occbench.extract import occlude_faces
        from occbench.protocols.landmarks import landmark_errors, landmarks68

        if not hasattr(self, "_landmark_ref"):
            keys = self.pair_keys
            n = min(self.config.landmark_images, len(keys))
            pick = np.sort(np.random.default_rng(self.config.seed).choice(len(keys), n, replace=False))
            self._landmark_faces = self.pair_faces.subset([keys[i] for i in pick])
            self._landmark_ref = landmarks68(self._landmark_faces.images)
        faces = self._landmark_faces
        completed = np.empty_like(faces.images)
        cache, bs = self._completions(cond), 256
        for s in range(0, len(faces), bs):
            keys, clean = faces.keys[s:s + bs], faces.images[s:s + bs]
            occluded, _ = occlude_faces(clean, keys, cond)
            completed[s:s + bs] = complete_cached(self.completer, cache, keys,
                                                  faces.digests[s:s + bs], occluded, clean)[0]
        errors = landmark_errors(self._landmark_ref, landmarks68(completed))
        rows = []
        for metric, values in errors.items():
            mean, lo, hi = mean_ci(values, seed=self.config.seed)
            rows.append(self._row("landmarks", "lfw", cond, metric, mean, len(values), lo, hi))
        return rows

    def run(self) -> list[Row]:
        cfg = self.config
        self.load()
        rows: list[Row] = []
        t0 = time.perf_counter()
        dis = None
        if "identification" in cfg.protocols:
            dstore = self.distractor_store()
            _barrier(self.world)
            if self.rank == 0:
                dis = dstore.get(self.distractor_keys, self.distractor_faces.digests)
        need_features = {"identification", "verification", "reconstruction"} & set(cfg.protocols)
        for cond in cfg.conditions:
            if need_features:
                store = self.features(cond)
                _barrier(self.world)
            if self.rank != 0:
                continue
            if need_features:
                probe = (store.get(self.probe_keys, self.probe_faces.digests)
                         if self.probe_keys else None)
                pairs = (store.get(self.pair_keys, self.pair_faces.digests)
                         if self.pair_keys else None)
            if "identification" in cfg.protocols:
                rows += self.identification_rows(cond, probe, dis)
            if "verification" in cfg.protocols:
                rows += self.verification_rows(cond, store)
            if "reconstruction" in cfg.protocols and not cond.clean:
                rows += self.reconstruction_rows(cond, probe, pairs)
            if "landmarks" in cfg.protocols and not cond.clean:
                rows += self.landmark_rows(cond)
        self.timings["features+protocols"] = time.perf_counter() - t0
        return rows


def run(config: RunConfig, data_root: Path, out: Path, *, cache: Path | None = None,
        progress: bool = True, memo: dict | None = None) -> pd.DataFrame | None:
    """Run, merge the rows into ``out/results.parquet`` and return this run's rows (rank 0).

    ``memo``: a dict shared between runs of one process (a sweep) to align/load each set once.
    """
    from occbench.paths import check_cache, writable_folder

    # Both folders are checked before any work: a run that cannot write its rows at the end
    # would lose an hour of computing.
    writable_folder(out, "results folder (--out)", "choose another folder with --out")
    cache = check_cache(cache)
    runner = Runner(config, data_root, cache, progress=progress, memo=memo)
    rows = runner.run()
    if runner.rank != 0:
        return None
    cfg = asdict(config)
    cfg.pop("conditions")
    frame = rows_to_frame(rows, cfg)
    merge_results(Path(out) / "results.parquet", frame)
    frame.attrs["timings"] = runner.timings
    return frame
