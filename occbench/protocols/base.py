"""What a protocol plug-in is, and the context the runner hands it (lm-eval's ``Task``).

A :class:`Protocol` says which faces it needs and turns their features into result rows:

* :meth:`Protocol.prepare` loads and aligns its faces once (through :meth:`Context.aligned`,
  which shares them with every other protocol of the run);
* :meth:`Protocol.needs` lists the :class:`Need` s of each occlusion condition: which aligned
  faces must have cached features (the recognizer's embedding of the completed face) and
  which cached reconstruction figures. The runner fills the union of every protocol's needs
  once per condition (on every torchrun rank, each taking its share) before any protocol
  reads them;
* :meth:`Protocol.evaluate` reads them back from the :class:`Context` and returns
  :class:`~occbench.results.Row` s (rank 0 only).

Register a protocol class with ``registry.protocols.register(name, "module:Class")``; it is
created with the run's :class:`~occbench.runner.RunConfig`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.features import FeatureStore, Quality, QualityStore
from occbench.occlusion import CLEAN, Condition
from occbench.results import NONE, Row


@dataclass
class Need:
    """Cached results a protocol reads for ``faces`` under each condition: ``features`` (the
    recognizer's embedding of the completed faces) and/or ``quality`` (PSNR / SSIM / mask
    IoU). ``clean_only``: the features of the faces as they are, once for the whole run
    (e.g. the distractors). ``what`` labels the progress bar."""

    faces: object  # occbench.align.AlignedFaces
    what: str
    features: bool = True
    quality: bool = False
    clean_only: bool = False


class Protocol:
    """A protocol plug-in. ``name``: its registered name (rows' ``protocol`` column);
    ``on_clean``: evaluated on the clean condition too (reconstruction and landmarks are not:
    there is nothing to reconstruct)."""

    name = ""
    on_clean = True

    def __init__(self, config):
        self.config = config

    def prepare(self, ctx: Context) -> None:
        """Load and align this protocol's faces (once per run)."""

    def needs(self, ctx: Context) -> list[Need]:
        """The cached results :meth:`evaluate` reads, for every condition."""
        return []

    def evaluate(self, ctx: Context, cond: Condition) -> list[Row]:
        raise NotImplementedError


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


class Context:
    """The loaded data, models and caches of one run, shared by its protocols."""

    def __init__(self, config, data_root: Path, cache: Path, completer, recognizer, *,
                 rank: int = 0, world: int = 1, progress: bool = True, memo: dict | None = None):
        from occbench.align import ALIGN_VERSION
        from occbench.models import cache_tag

        self.config, self.data_root, self.cache = config, Path(data_root), Path(cache)
        self.completer, self.recognizer = completer, recognizer
        self.rank, self.world, self.progress = rank, world, progress
        self.seed = config.seed
        self.align_version = str(ALIGN_VERSION)
        self.completer_tag, self.recognizer_tag = cache_tag(completer), cache_tag(recognizer)
        # data sets and aligned faces by name (and keys), shared between the runs of a sweep
        self.memo = memo if memo is not None else {}

    # ---- data -------------------------------------------------------------------------
    def dataset(self, name: str):
        """The data set ``name`` (loaded once)."""
        from occbench.data import load_dataset

        key = ("dataset", name, str(self.data_root))
        if key not in self.memo:
            self.memo[key] = load_dataset(name, self.data_root)
        return self.memo[key]

    def aligned(self, name: str, keys: list[str] | None = None):
        """Aligned faces of data set ``name`` (only ``keys``, in the set's order, if given);
        rank 0 aligns first, the others read its cache. Unreadable files are left out with
        a warning."""
        from copy import copy

        from occbench.align import align_dataset

        key = ("aligned", name, str(self.data_root), tuple(keys) if keys is not None else None)
        if key in self.memo:
            return self.memo[key]
        ds = copy(self.dataset(name))
        if keys is not None:
            wanted = set(keys)
            ds.samples = [s for s in ds.samples if s.key in wanted]
        if self.rank == 0:
            faces = align_dataset(ds, progress=self.progress)
        _barrier(self.world)
        if self.rank != 0:
            faces = align_dataset(ds, progress=False)
        for _key, path, reason in faces.bad:
            print(f"occbench: warning: left out unreadable {path} ({reason})", file=sys.stderr)
        self.memo[key] = faces
        return faces

    # ---- caches -----------------------------------------------------------------------
    def _oracle(self) -> bool:
        return bool(self.completer.outputs_clean)

    def _outputs_faces_as_they_are(self, cond: Condition) -> bool:
        """Whether the completer's output under ``cond`` is the clean face itself: always for
        an oracle, on the clean condition for the identity (``returns_input``)."""
        c = self.completer
        return self._oracle() or (cond.clean and bool(getattr(c, "returns_input", False)))

    def _feature_store(self, cond: Condition, clean_faces: bool = False) -> FeatureStore:
        """Features of the completed faces under ``cond``, or of the faces as they are."""
        r = self.recognizer
        if clean_faces or self._outputs_faces_as_they_are(cond):
            return FeatureStore(self.cache, self.recognizer_tag, "none", CLEAN,
                                self.align_version, r.dim)
        return FeatureStore(self.cache, self.recognizer_tag, self.completer_tag, cond,
                            self.align_version, r.dim)

    def _quality_store(self, cond: Condition) -> QualityStore:
        return QualityStore(self.cache, self.completer_tag, cond, self.align_version)

    def completions(self, cond: Condition):
        """The completer's output cache for ``cond`` (None: not worth caching)."""
        from occbench.completions import CompletionStore

        if not self.completer.cache_outputs:
            return None
        return CompletionStore(self.cache, self.completer_tag, cond, self.align_version)

    def _landmarks(self, faces, cond: Condition):
        from occbench.occlusion import get_form

        if cond.clean or not get_form(cond.form).needs_landmarks:
            return None
        return faces.landmarks68_with(progress=self.progress)

    def fill(self, needs: list[Need], cond: Condition) -> None:
        """Compute what ``needs`` lack under ``cond`` (every rank its share), then wait for
        every rank."""
        from occbench.extract import extract, measure

        c, bs = self.completer, self.config.batch_size
        for need in needs:
            faces = need.faces
            common = dict(rank=self.rank, world=self.world, progress=self.progress,
                          contents=faces.digests)
            if need.features and (need.clean_only or self._outputs_faces_as_they_are(cond)):
                extract(self._feature_store(cond, clean_faces=True), faces.keys, faces.images,
                        CLEAN, None, self.recognizer, batch_size=bs,
                        desc=f"clean faces {need.what}", **common)
            elif need.features:
                extract(self._feature_store(cond), faces.keys, faces.images, cond, c,
                        self.recognizer, batch_size=bs, completions=self.completions(cond),
                        landmarks=self._landmarks(faces, cond),
                        desc=f"{c.name} {cond.tag()} {need.what}", **common)
            if need.quality and not self._oracle() and not need.clean_only:
                measure(self._quality_store(cond), faces.keys, faces.images, cond, c,
                        completions=self.completions(cond), landmarks=self._landmarks(faces, cond),
                        desc=f"{c.name} {cond.tag()} {need.what} quality", **common)
        _barrier(self.world)

    def features(self, faces, cond: Condition, keys: list[str] | None = None) -> np.ndarray:
        """(N, dim) features of the completed ``faces`` (of ``keys``, default all) under
        ``cond``, filled before by :meth:`fill`."""
        keys = faces.keys if keys is None else list(keys)
        return self._feature_store(cond).get(keys, faces.digests_of(keys))

    def clean_features(self, faces) -> np.ndarray:
        """(N, dim) features of ``faces`` as they are (a ``clean_only`` need)."""
        return self._feature_store(CLEAN, clean_faces=True).get(faces.keys, faces.digests)

    def quality(self, faces, cond: Condition) -> Quality | None:
        """Reconstruction figures of ``faces`` under ``cond`` (None for an oracle)."""
        if self._oracle():
            return None
        return self._quality_store(cond).get(faces.keys, faces.digests)

    def completed(self, faces, cond: Condition) -> np.ndarray:
        """The completer's output for ``faces`` under ``cond`` (through its cache)."""
        from occbench.completions import occlude_and_complete

        out = np.empty_like(faces.images)
        cache, bs = self.completions(cond), 256
        marks = self._landmarks(faces, cond)
        for s in range(0, len(faces), bs):
            out[s:s + bs] = occlude_and_complete(
                self.completer, cache, faces.keys[s:s + bs], faces.digests[s:s + bs],
                faces.images[s:s + bs], cond, None if marks is None else marks[s:s + bs])[1]
        return out

    # ---- rows -------------------------------------------------------------------------
    def row(self, protocol: str, dataset: str, cond: Condition, metric: str, value, n,
            lo=np.nan, hi=np.nan, D: int = 0, rank: int = 0) -> Row:
        return Row(model=self.config.model, recognizer=self.config.recognizer, dataset=dataset,
                   protocol=protocol, form=cond.form if not cond.clean else NONE,
                   position=cond.position if not cond.clean else NONE, size=cond.size,
                   metric=metric, value=float(value), n=int(n), ci_low=float(lo),
                   ci_high=float(hi), D=int(D), rank=int(rank))
