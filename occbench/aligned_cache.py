"""On-disk cache of aligned faces: one SQLite file per data set.

``<cache_root>/aligned/<set>.sqlite`` holds one row per (sha1 of the image file's bytes,
alignment version): the 112x112x3 face, the five source landmarks and the aligned flag.
Keying by content means a renamed or copied file is still a hit and an edited one is not;
keying by version means bumping ``occbench.faces.ALIGN_VERSION`` invalidates everything.
Rows are written in transactions, batch by batch (a killed run resumes), in WAL mode with a
busy timeout so several processes can read and write the same file. A corrupt file is moved
aside and recomputed (:mod:`occbench.cachedb`); a read-only one is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.cachedb import connect, guarded
from occbench.errors import DataError
from occbench.paths import cache_root
from occbench.template import SIZE

FACE_BYTES = SIZE * SIZE * 3
_CHUNK = 500  # keys per SELECT ... IN (...), below SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS faces (
    sha1 TEXT NOT NULL,
    version TEXT NOT NULL,
    face BLOB NOT NULL,
    landmarks BLOB NOT NULL,
    aligned INTEGER NOT NULL,
    PRIMARY KEY (sha1, version)
) WITHOUT ROWID
"""


# 68 landmarks of the aligned faces (the 112 frame), beside the faces in the same file:
# a pure function of the face's pixels, keyed by its content digest (faces.face_digest).
_POINTS_SCHEMA = ("CREATE TABLE IF NOT EXISTS landmarks68 (digest TEXT NOT NULL, version TEXT "
                  "NOT NULL, points BLOB NOT NULL, PRIMARY KEY (digest, version)) WITHOUT ROWID")
POINTS_VERSION = "dlib68-box1-up2"  # predictor, fixed face box and upsampling of landmarks68
_POINT_BYTES = 68 * 2 * 8


@dataclass(frozen=True)
class CachedFace:
    """One cached row: ``face`` 112x112x3 uint8, ``landmarks5`` (5, 2) float64, ``aligned``."""

    face: np.ndarray
    landmarks5: np.ndarray
    aligned: bool


def default_cache_path(set_name: str) -> Path:
    """``<cache_root>/aligned/<set_name>.sqlite`` (odd characters in the name become ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", set_name).strip("._") or "default"
    return cache_root() / "aligned" / f"{safe}.sqlite"


class AlignedCache:
    """The aligned faces of one data set, by (content sha1, alignment version)."""

    def __init__(self, path: str | Path, version: str):
        self.path = Path(path)
        self.version = str(version)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the cache folder {self.path.parent} "
                            f"({exc.strerror or exc}); set OCCBENCH_CACHE to a writable folder") from None
        self._open()

    def _open(self) -> None:
        self._db = connect(self.path, _SCHEMA, wal=True, timeout=120.0)
        with self._db:
            self._db.execute(_POINTS_SCHEMA)

    def _reopen(self) -> None:
        """After the file was found corrupt and moved aside: a fresh, empty file."""
        self._db.close()
        self._open()

    def _select_in(self, sql: str, lead: tuple, keys: list[str]) -> list[tuple]:
        """The rows of ``sql`` (ending ``IN ({marks})``) for ``keys``, ``_CHUNK`` at a time."""
        rows: list[tuple] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            rows += self._db.execute(sql.format(marks=",".join("?" * len(chunk))),
                                     (*lead, *chunk)).fetchall()
        return rows

    def _fresh(self) -> dict:
        self._reopen()
        return {}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AlignedCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        """Rows of this version."""
        (n,) = self._db.execute(
            "SELECT COUNT(*) FROM faces WHERE version = ?", (self.version,)
        ).fetchone()
        return int(n)

    def get_many(self, sha1s: Iterable[str]) -> dict[str, CachedFace]:
        """The cached rows among ``sha1s`` (missing or malformed rows are simply absent; a
        corrupt file is moved aside and everything in it recomputed)."""
        wanted = list(dict.fromkeys(sha1s))

        def read() -> dict[str, CachedFace]:
            found: dict[str, CachedFace] = {}
            for sha1, face, lm, aligned in self._select_in(
                    "SELECT sha1, face, landmarks, aligned FROM faces "
                    "WHERE version = ? AND sha1 IN ({marks})", (self.version,), wanted):
                if len(face) != FACE_BYTES or len(lm) != 5 * 2 * 8:
                    continue  # a row from a foreign writer: recompute it
                found[sha1] = CachedFace(
                    face=np.frombuffer(face, dtype=np.uint8).reshape(SIZE, SIZE, 3),
                    landmarks5=np.frombuffer(lm, dtype="<f8").reshape(5, 2).copy(),
                    aligned=bool(aligned),
                )
            return found

        return guarded(self.path, read, self._fresh)

    def get_points(self, digests: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached 68 landmarks among the face ``digests`` (malformed rows absent; a corrupt
        file is moved aside and recomputed, as for the faces)."""
        wanted = list(dict.fromkeys(digests))

        def read() -> dict[str, np.ndarray]:
            return {d: np.frombuffer(p, dtype="<f8").reshape(68, 2)
                    for d, p in self._select_in(
                        "SELECT digest, points FROM landmarks68 WHERE version = ? AND digest "
                        "IN ({marks})", (POINTS_VERSION,), wanted)
                    if len(p) == _POINT_BYTES}

        return guarded(self.path, read, self._fresh)

    def put_points(self, digests: list[str], points: np.ndarray) -> None:
        """Insert or replace the (N, 68, 2) landmarks of N face digests in one transaction."""
        values = [(d, POINTS_VERSION, np.ascontiguousarray(p, "<f8").tobytes())
                  for d, p in zip(digests, points, strict=True)]

        def insert() -> None:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO landmarks68 VALUES (?, ?, ?)", values)

        def into_fresh() -> None:
            self._reopen()
            insert()

        guarded(self.path, insert, into_fresh)

    def put_many(self, rows: Iterable[tuple[str, CachedFace]]) -> int:
        """Insert or replace rows ``(sha1, CachedFace)`` in one transaction; returns the count."""
        values = [
            (
                sha1,
                self.version,
                np.ascontiguousarray(r.face, dtype=np.uint8).tobytes(),
                np.ascontiguousarray(r.landmarks5, dtype="<f8").tobytes(),
                int(bool(r.aligned)),
            )
            for sha1, r in rows
        ]
        for _, _, face, _, _ in values:
            if len(face) != FACE_BYTES:
                raise ValueError(f"a cached face must be {SIZE}x{SIZE}x3 uint8")
        def insert() -> None:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO faces (sha1, version, face, landmarks, aligned) "
                    "VALUES (?, ?, ?, ?, ?)",
                    values,
                )

        def into_fresh() -> None:
            self._reopen()
            insert()

        guarded(self.path, insert, into_fresh)
        return len(values)

    def drop_other_versions(self) -> int:
        """Delete the rows of every other alignment version (after a bump); returns the count."""
        with self._db:
            cur = self._db.execute("DELETE FROM faces WHERE version != ?", (self.version,))
        self._db.execute("VACUUM")
        return cur.rowcount


def cached_landmarks68(faces: np.ndarray, digests: list[str], path: Path | None,
                       progress: bool = False) -> np.ndarray:
    """(N, 68, 2) float64 landmarks of aligned faces (:func:`occbench.landmarks68.
    landmarks68`), read from and written to the aligned cache file ``path`` (None: computed,
    not stored)."""
    from tqdm import tqdm

    from occbench.landmarks68 import landmarks68

    cache = AlignedCache(path, POINTS_VERSION) if path else None
    try:
        found = cache.get_points(digests) if cache is not None else {}
        todo = [i for i, d in enumerate(digests) if d not in found]
        bar = tqdm(total=len(todo), desc="landmarks", unit="img", disable=not progress or not todo,
                   leave=False)
        for s in range(0, len(todo), 256):
            rows = todo[s:s + 256]
            pts = landmarks68(faces[rows])
            found.update(zip([digests[r] for r in rows], pts, strict=True))
            if cache is not None:
                cache.put_points([digests[r] for r in rows], pts)
            bar.update(len(rows))
        bar.close()
    finally:
        if cache is not None:
            cache.close()
    return np.stack([found[d] for d in digests]) if digests else np.zeros((0, 68, 2))
