"""The context of one run, shared by its protocols: the loaded data sets and aligned faces,
the completer and recognizer, and the caches it fills (features of the completed faces,
completions, reconstruction figures), one condition at a time.

The runner (:mod:`occbench.runner`) creates one :class:`Context`, asks each protocol
(:mod:`occbench.protocols`) what it needs, lets the context fill the union of those needs,
and hands the context to the protocols to read back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from occbench.condition import CLEAN, Condition
from occbench.features import FeatureStore, Quality, QualityStore
from occbench.protocols.base import Need
from occbench.results import NON_BLIND, NONE, Row


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


class Context:
    """The loaded data, models and caches of one run, shared by its protocols."""

    def __init__(self, config, data_root: Path, cache: Path, completer, recognizer, *,
                 rank: int = 0, world: int = 1, progress: bool = True, memo: dict | None = None):
        from occbench.faces import ALIGN_VERSION
        from occbench.models import cache_tag

        self.config, self.data_root, self.cache = config, Path(data_root), Path(cache)
        self.completer, self.recognizer = completer, recognizer
        self.rank, self.world, self.progress = rank, world, progress
        self.seed = config.seed
        self.align_version = str(ALIGN_VERSION)
        self.completer_tag, self.recognizer_tag = cache_tag(completer), cache_tag(recognizer)
        # the model column of the rows: a completer given the true mask says so
        self.model_label = (config.model if getattr(completer, "blind", True)
                            else f"{config.model} {NON_BLIND}")
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
        return Row(model=self.model_label, recognizer=self.config.recognizer, dataset=dataset,
                   protocol=protocol, form=cond.form if not cond.clean else NONE,
                   position=cond.position if not cond.clean else NONE, size=cond.size,
                   metric=metric, value=float(value), n=int(n), ci_low=float(lo),
                   ci_high=float(hi), D=int(D), rank=int(rank))
