"""The aligned faces of a data set and their content digests: what alignment produces and
every later stage (occlusion, completion, features, caches) consumes.

    faces = occbench.align.align_dataset(ds)     # an AlignedFaces
    faces.images, faces.digests, faces.landmarks68, faces.subset(keys)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occbench.data.base import Sample
from occbench.errors import DataError

# Bump to invalidate every cached aligned face (detector, landmarks, template or warp changed).
ALIGN_VERSION = "1"


def face_digest(face: np.ndarray) -> str:
    """Content digest of one aligned face (16 hex digits of the SHA-1 of its pixels).

    Every cached row computed from a face (features, completions) is keyed by its image key
    *and* this digest, so a file replaced under the same name is recomputed, never reused.
    """
    return hashlib.sha1(np.ascontiguousarray(face, dtype=np.uint8).tobytes()).hexdigest()[:16]


def face_digests(faces: np.ndarray) -> list[str]:
    """:func:`face_digest` of each face of an (N, 112, 112, 3) batch."""
    return [face_digest(f) for f in faces]


@dataclass
class AlignedFaces:
    """The aligned faces of a data set, in the data set's order (unreadable files left out).

    ``images`` (N, 112, 112, 3) uint8, ``aligned`` (N,) bool, ``landmarks5`` (N, 5, 2) float64
    in source pixels; ``bad`` lists ``(key, path, reason)`` of every unreadable file;
    ``hits`` and ``computed`` count cache hits and newly aligned images of this call.
    """

    name: str
    samples: list[Sample]
    images: np.ndarray
    aligned: np.ndarray
    landmarks5: np.ndarray
    bad: list[tuple[str, Path, str]] = field(default_factory=list)
    hits: int = 0
    computed: int = 0
    seconds: float = 0.0
    version: str = ALIGN_VERSION
    cache_path: Path | None = None  # the aligned cache file (also holds landmarks68)
    _index: dict[str, int] | None = field(default=None, init=False, repr=False)
    _digests: list[str] | None = field(default=None, init=False, repr=False)
    _landmarks68: np.ndarray | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def keys(self) -> list[str]:
        return [s.key for s in self.samples]

    @property
    def index(self) -> dict[str, int]:
        """Row of each key in ``images``."""
        if self._index is None:
            self._index = {s.key: i for i, s in enumerate(self.samples)}
        return self._index

    @property
    def digests(self) -> list[str]:
        """:func:`face_digest` of each face, in order (computed once)."""
        if self._digests is None:
            self._digests = face_digests(self.images)
        return self._digests

    @property
    def landmarks68(self) -> np.ndarray:
        """(N, 68, 2) dlib landmarks of each aligned face in the 112 frame (computed once,
        cached with the alignment; see :func:`occbench.landmarks68.landmarks68`)."""
        return self.landmarks68_with(progress=True)

    def landmarks68_with(self, progress: bool) -> np.ndarray:
        """:attr:`landmarks68`, with a progress bar (when over 1,000 faces) only if
        ``progress``."""
        if self._landmarks68 is None:
            from occbench.aligned_cache import cached_landmarks68

            self._landmarks68 = cached_landmarks68(self.images, self.digests, self.cache_path,
                                                   progress=progress and len(self) > 1000)
        return self._landmarks68

    def digests_of(self, keys) -> list[str]:
        """The content digests of the faces of ``keys``."""
        digests = self.digests
        return [digests[r] for r in self._rows(keys)]

    def face(self, key: str) -> np.ndarray:
        """The 112x112x3 aligned face of ``key``."""
        return self.images[self._rows([key])[0]]

    def _rows(self, keys) -> list[int]:
        rows = []
        for key in keys:
            row = self.index.get(key)
            if row is None:
                why = "unreadable" if any(b[0] == key for b in self.bad) else "not in the set"
                raise DataError(f"{key}: no aligned face in {self.name!r} ({why})")
            rows.append(row)
        return rows

    def subset(self, keys) -> AlignedFaces:
        """The faces of ``keys``, in that order (:class:`DataError` for a key without a face)."""
        keys = list(keys)
        rows = np.array(self._rows(keys), dtype=np.intp)
        wanted = set(keys)
        sub = AlignedFaces(
            name=self.name,
            samples=[self.samples[r] for r in rows],
            images=self.images[rows],
            aligned=self.aligned[rows],
            landmarks5=self.landmarks5[rows],
            bad=[b for b in self.bad if b[0] in wanted],
            version=self.version,
            cache_path=self.cache_path,
        )
        if self._digests is not None:  # what is known already is not computed again
            sub._digests = [self._digests[r] for r in rows]
        if self._landmarks68 is not None:
            sub._landmarks68 = self._landmarks68[rows]
        return sub

    def summary(self) -> str:
        """One line of counts, plus one line per unreadable file (at most 10)."""
        n = len(self)
        k = int(self.aligned.sum())
        pct = (lambda c: 100.0 * c / n) if n else (lambda c: 0.0)
        line = (
            f"{self.name}: {n} images, aligned {k} ({pct(k):.1f} %), "
            f"fallback to framing {n - k} ({pct(n - k):.1f} %), unreadable {len(self.bad)}, "
            f"cache hits {self.hits}, computed {self.computed} in {self.seconds:.1f} s "
            f"(align v{self.version})"
        )
        lines = [line] + [f"  unreadable: {key} ({reason})" for key, _, reason in self.bad[:10]]
        if len(self.bad) > 10:
            lines.append(f"  ... and {len(self.bad) - 10} more unreadable files")
        return "\n".join(lines)
