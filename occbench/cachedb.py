"""SQLite cache files: open, read and write them, telling a corrupt file from a read-only one.

Every on-disk cache of occbench (aligned faces, features, completed faces) is a set of SQLite
files that hold nothing that cannot be recomputed. So a file SQLite finds corrupt (garbage
bytes, a torn page: ``file is not a database``, ``database disk image is malformed``) is moved
aside to ``<name>.corrupt`` with one warning naming it, and a fresh file takes its place: its
rows are recomputed, nothing else changes. A file that cannot be written (read-only) is not
repaired: it is a :class:`~occbench.errors.DataError` naming it.

:class:`ShardFiles` is the folder of one cache entry written by several processes (torchrun
ranks): one ``shard-<rank>.sqlite`` per writer, every shard read back.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from occbench.errors import DataError

T = TypeVar("T")

_CORRUPT_WORDS = ("malformed", "not a database", "corrupt")
_READ_ONLY_WORDS = ("readonly", "read-only", "unable to open")


def is_corrupt(exc: sqlite3.Error) -> bool:
    """True for SQLite's 'this file is damaged' errors (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    name = getattr(exc, "sqlite_errorname", "") or ""  # Python >= 3.11
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return any(w in str(exc).lower() for w in _CORRUPT_WORDS)


def is_read_only(exc: sqlite3.Error) -> bool:
    """True for 'cannot write / cannot open' errors (SQLITE_READONLY, SQLITE_CANTOPEN)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name:
        return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"))
    return any(w in str(exc).lower() for w in _READ_ONLY_WORDS)


def cache_error(path: Path, exc: sqlite3.Error) -> DataError:
    """The one-line error for a cache file SQLite refused for another reason than corruption."""
    if is_read_only(exc):
        return DataError(f"cache file {path} is read-only or cannot be opened ({exc}); make "
                         "it writable, or set OCCBENCH_CACHE to a writable folder")
    return DataError(f"cache file {path} is unusable ({exc})")


def quarantine(path: Path, exc: BaseException) -> Path:
    """Move a corrupt cache file (and its -wal/-shm/-journal files) aside; returns the new path."""
    path = Path(path)
    dest = path.with_name(path.name + ".corrupt")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.corrupt-{n}")
    try:
        path.replace(dest)
    except FileNotFoundError:  # another process moved it first
        pass
    except OSError as err:
        raise DataError(f"cache file {path} is corrupt ({exc}) and cannot be moved aside "
                        f"({err.strerror or err}); delete it") from None
    for suffix in ("-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    print(f"occbench: warning: cache file {path} is corrupt ({exc}); moved it to {dest.name} "
          "and recomputing its rows", file=sys.stderr)
    return dest


def connect(path: Path, schema: str, *, wal: bool = False, timeout: float = 60.0
            ) -> sqlite3.Connection:
    """Open (or create) ``path`` with ``schema`` applied; a corrupt file is moved aside and a
    fresh one opened in its place."""
    path = Path(path)
    for attempt in (0, 1):
        con = None
        try:
            con = sqlite3.connect(path, timeout=timeout)
            if wal:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
            with con:
                con.execute(schema)
            return con
        except sqlite3.DatabaseError as exc:
            if con is not None:
                con.close()
            if attempt == 0 and is_corrupt(exc):
                quarantine(path, exc)
                continue
            raise cache_error(path, exc) from None
    raise AssertionError("unreachable")


def guarded(path: Path, action: Callable[[], T], on_corrupt: Callable[[], T]) -> T:
    """``action()``; if SQLite finds ``path`` corrupt on the way, move it aside and return
    ``on_corrupt()`` instead (e.g. 'no rows': they will be recomputed)."""
    try:
        return action()
    except sqlite3.DatabaseError as exc:
        if not is_corrupt(exc):
            raise cache_error(path, exc) from None
        quarantine(path, exc)
        return on_corrupt()


class ShardFiles:
    """The SQLite shards of one cache folder: ``shard-<rank>.sqlite``, one per writer."""

    def __init__(self, folder: Path, schema: str):
        self.folder = Path(folder)
        self.schema = schema

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.sqlite"))

    def read(self, query: str, params: Iterable = ()) -> list[tuple]:
        """The rows ``query`` returns from every shard (those of a corrupt shard: none)."""
        params = tuple(params)
        rows: list[tuple] = []
        for path in self.paths():
            def fetch(path=path):
                con = connect(path, self.schema)
                try:
                    return con.execute(query, params).fetchall()
                finally:
                    con.close()
            rows += guarded(path, fetch, list)
        return rows

    def write(self, rank: int, statement: str, rows: list[tuple]) -> None:
        """``executemany(statement, rows)`` in one transaction on this writer's shard."""
        path = self.folder / f"shard-{rank}.sqlite"

        def insert():
            con = connect(path, self.schema)
            try:
                with con:
                    con.executemany(statement, rows)
            finally:
                con.close()

        guarded(path, insert, insert)  # a shard found corrupt on the way: into a fresh one


# 3: one row store for every per-image cache (features, completions, reconstruction
#    figures), reconstruction figures apart from the recognizer's features
FORMAT_VERSION = 3


def cache_folder(root: Path, parts: tuple[str, ...], meta: dict) -> Path:
    """The cache folder ``root/parts...`` holding ``meta.json`` = ``meta``.

    A folder written under other meta data (another format or model version) is removed and
    started afresh, with a note on stderr.
    """
    import json
    import shutil
    import sys

    from occbench.imageio import atomic_write

    folder = Path(root).joinpath(*parts)
    meta = {"format": FORMAT_VERSION, **meta}
    meta_path = folder / "meta.json"
    if meta_path.exists():
        try:
            found = json.loads(meta_path.read_text())
            why = f"was written by another version ({found})"
        except (OSError, ValueError):
            found, why = None, "has an unreadable meta.json"
        if found == meta:
            return folder
        print(f"occbench: cache {folder} {why}; recomputing", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    return folder


class RowStore:
    """Per-image rows of one cache folder, keyed by (image key, content digest of the aligned
    face): a row whose face has changed since (a file replaced under the same name) is not
    found, and so recomputed. ``columns``: ``(name, SQL type)`` of the stored values.
    Subclasses check a row's values with :meth:`valid` (a damaged row: recomputed).

    Rows are committed batch by batch into the writer's shard (torchrun ranks write their
    own), so an interrupted run resumes where it stopped.
    """

    def __init__(self, root: Path, parts: tuple[str, ...], meta: dict,
                 columns: tuple[tuple[str, str], ...]):
        self.meta = meta
        self.columns = tuple(c for c, _ in columns)
        schema = ("CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, content TEXT NOT NULL, "
                  + ", ".join(f"{c} {t}" for c, t in columns) + ")")
        self.dir = cache_folder(root, parts, meta)
        self.shards = ShardFiles(self.dir, schema)

    def valid(self, values: tuple) -> bool:
        return True

    def read(self, keys: list[str], contents: list[str]) -> dict[str, tuple]:
        """The stored values of those ``keys`` whose row matches their content digest."""
        if len(keys) != len(contents):
            raise ValueError(f"{len(keys)} keys but {len(contents)} content digests")
        if not keys:
            return {}
        wanted = dict(zip(keys, contents, strict=True))
        cols = ", ".join(self.columns)
        if len(keys) <= 900:  # SQLite's parameter limit: else scan (cheaper for big sets anyway)
            marks = ",".join("?" * len(keys))
            rows = self.shards.read(f"SELECT key, content, {cols} FROM rows WHERE key IN ({marks})",
                                    keys)
        else:
            rows = self.shards.read(f"SELECT key, content, {cols} FROM rows")
        return {r[0]: r[2:] for r in rows if wanted.get(r[0]) == r[1] and self.valid(r[2:])}

    def done_keys(self, keys: list[str], contents: list[str]) -> set[str]:
        """Those of ``keys`` stored with a valid row for this content."""
        return set(self.read(keys, contents))

    def write(self, keys: list[str], contents: list[str], values: list[tuple],
              rank: int = 0) -> None:
        """Commit one batch (one transaction) to this writer's shard."""
        if not (len(keys) == len(contents) == len(values)):
            raise ValueError(f"{len(keys)} keys, {len(contents)} content digests and "
                             f"{len(values)} rows")
        marks = ", ".join("?" * (2 + len(self.columns)))
        self.shards.write(rank, f"INSERT OR REPLACE INTO rows VALUES ({marks})",
                          [(k, c, *v) for k, c, v in zip(keys, contents, values, strict=True)])
