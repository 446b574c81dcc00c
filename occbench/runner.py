"""``occbench run``: the whole data flow for one completer and one recognizer.

data root -> data sets -> aligned faces (cached) -> for each occlusion condition:
occlude -> complete -> embed (cached) -> each protocol's rows (identification, verification,
reconstruction, landmarks, or a plug-in's) -> tidy rows, stored as a new part of the results
folder ``<out>``.

Protocols are plug-ins (:mod:`occbench.protocols.base`): the runner prepares each one, fills
the union of what they need per condition into the caches, and collects their rows. The clean
condition (no occlusion) is always evaluated too, with the completer applied to the clean
faces, so every table holds the clean end of the gap next to the occluded one.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from occbench import registry
from occbench.condition import CLEAN, Condition
from occbench.results import Row, append_results, rows_to_frame


def default_protocols() -> tuple[str, ...]:
    """The protocols run when none are named: those registered with ``default=<k>``, in
    the order of k."""
    entries = [e for e in registry.protocols.entries() if e.meta.get("default")]
    return tuple(e.name for e in sorted(entries, key=lambda e: e.meta["default"]))


@dataclass
class RunConfig:
    """What one ``occbench run`` evaluates. ``None`` sizes = the paper's sizes of each form."""

    model: str = "occluded"
    recognizer: str = "dlib"
    forms: tuple[str, ...] = ("rect", "text")
    positions: tuple[str, ...] = ("eyes", "nose", "mouth", "outside")
    sizes: tuple[float, ...] | None = None
    protocols: tuple[str, ...] | None = None  # None: default_protocols()
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
    model_args: dict = field(default_factory=dict)  # keyword options of the completer
    pairs_set: str = "lfw"  # the data set whose pairs verification uses
    real_set: str | None = None  # real occluded images of the probes' people (identification-real)
    conditions: list[Condition] = field(default_factory=list, init=False)

    def __post_init__(self):
        from occbench.occlusion import conditions
        from occbench.options import at_least

        for name, minimum in (("limit", 1), ("distractors", 1), ("batch_size", 1),
                              ("landmark_images", 1), ("seed", 0)):
            value = getattr(self, name)
            if value is not None:
                at_least(value, minimum, name)
        self.protocols = tuple(registry.protocols.canonical(p)
                               for p in (self.protocols or default_protocols()))
        self.conditions = [CLEAN] if self.include_clean else []
        self.conditions += conditions(self.forms, self.positions, self.sizes, self.seed)


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


class Runner:
    """One run: its models, its protocols and their shared
    :class:`~occbench.context.Context`."""

    def __init__(self, config: RunConfig, data_root: Path, cache: Path, progress: bool = True,
                 memo: dict | None = None):
        from occbench.context import Context
        from occbench.models import create_completer, create_recognizer

        self.config = config
        self.rank, self.world = _dist_env()
        self.ctx = Context(config, data_root, cache, create_completer(config.model,
                                                                      **config.model_args),
                           create_recognizer(config.recognizer, **config.recognizer_args),
                           rank=self.rank, world=self.world, progress=progress, memo=memo)
        self.protocols = [registry.protocols.create(name, config) for name in config.protocols]
        self.timings: dict[str, float] = {}

    def run(self) -> list[Row]:
        ctx, t0 = self.ctx, time.perf_counter()
        for p in self.protocols:
            p.prepare(ctx)
        self.timings["load+align"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # what every protocol needs: clean features once, the rest per condition
        ctx.fill([n for p in self.protocols for n in p.needs(ctx) if n.clean_only], CLEAN)
        rows: list[Row] = []
        for cond in self.config.conditions:
            active = [p for p in self.protocols if p.on_clean or not cond.clean]
            ctx.fill([n for p in active for n in p.needs(ctx)
                      if not n.clean_only and (cond.clean or not n.clean_condition_only)], cond)
            if self.rank == 0:
                for p in active:
                    rows += p.evaluate(ctx, cond)
        self.timings["features+protocols"] = time.perf_counter() - t0
        return rows


def run(config: RunConfig, data_root: Path, out: Path, *, cache: Path | None = None,
        progress: bool = True, memo: dict | None = None) -> pd.DataFrame | None:
    """Run, store the rows as a new part of the results folder ``out`` and return this run's
    rows (rank 0; ``attrs["part"]``: the part's path).

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
    frame.attrs["part"] = append_results(out, frame)
    frame.attrs["timings"] = runner.timings
    return frame
