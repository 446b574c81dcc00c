"""Exact inner-product k-NN on faiss, over an array or a stream of chunks.

The database (the distractors: up to 1M x 512 float32) is read chunk by chunk and never
copied whole: a chunk of an array or memmap is a view, and only the few rows that need it
are copied (rows off unit norm, see below; rows picked out by ``groups``). Per chunk, faiss
returns its top k and a ``faiss.ResultHeap`` merges them into the global top k.

Device: every GPU when ``faiss.get_num_gpus() > 0`` (a chunk is split into one shard per
GPU, searched with ``faiss.knn_gpu`` on its own thread and merged), ``faiss.knn`` on the CPU
otherwise. Only :class:`Searcher` knows which; everything above it is one code path.
A GPU search returns at most :data:`GPU_MAX_K` neighbours, so a larger k (a full CMC curve
over up to 10,000 distractors) runs on the CPU.

Rows are checked as they arrive: NaN/inf values or a norm below :data:`ZERO_NORM` raise
:class:`~occbench.errors.OccbenchError` naming how many rows are at fault (a stream is read
to its end to count them). Similarities are cosine: a row whose norm differs from 1 by more
than :data:`NORM_TOL` is divided by its norm (in a copy); the others are used as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import faiss
import numpy as np

from occbench.errors import ConfigError, OccbenchError

#: Rows per chunk when the database is an array (a view, so the size costs no memory).
#: Fewer, larger chunks are faster: each faiss call pays for filling its own top-k heap.
DEFAULT_CHUNK_ROWS = 1 << 18
#: A row whose L2 norm is below this is an error (it has no direction).
ZERO_NORM = 1e-6
#: Rows whose norm is within this of 1 are used unchanged; the others are normalised.
NORM_TOL = 1e-5
#: The largest k a faiss GPU search returns; larger k runs on the CPU.
GPU_MAX_K = 2048

#: An array (a memmap too), an iterable of (m, d) blocks, or a callable returning one.
Source = np.ndarray | Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]]


# ---- checks ------------------------------------------------------------------------------
def _as_2d_float32(x, name: str, dim: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous (m, d) float32 array (a view when it already is one)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-d (rows, dim) array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ConfigError(f"{name}: expected float features, got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ConfigError(f"{name}: rows have dimension {x.shape[1]}, expected {dim}")
    return np.ascontiguousarray(x, dtype=np.float32)


class _BadRows(NamedTuple):
    nonfinite: int
    zero: int
    first: int  # index (within the block) of the first bad row, -1 if none


def _prepare(block: np.ndarray) -> tuple[np.ndarray, _BadRows]:
    """Check a float32 block's rows; return it with off-unit rows normalised (a copy then)."""
    sq = np.einsum("ij,ij->i", block, block)
    finite = np.isfinite(sq)  # NaN/inf values, or a norm that overflows float32
    norms = np.sqrt(np.where(finite, sq, 1.0))
    zero = finite & (norms < ZERO_NORM)
    bad = ~finite | zero
    if bad.any():
        return block, _BadRows(int((~finite).sum()), int(zero.sum()), int(np.argmax(bad)))
    off = np.abs(norms - 1.0) > NORM_TOL
    if off.any():
        block = block.copy()
        block[off] /= norms[off, None]
    return block, _BadRows(0, 0, -1)


def _bad_rows_error(name: str, nonfinite: int, zero: int, first: int, total: int):
    parts = []
    if nonfinite:
        parts.append(f"{nonfinite} row(s) with NaN/inf values")
    if zero:
        parts.append(f"{zero} row(s) of zero norm (< {ZERO_NORM:g})")
    return OccbenchError(f"{name}: {' and '.join(parts)} out of {total} (first: row {first})")


def check_features(x, name: str = "features", dim: int | None = None) -> np.ndarray:
    """Validate an in-memory (n, d) feature array and return it ready for search.

    Returns C-contiguous float32 with rows of unit L2 norm: ``x`` itself when it already is
    that, else a copy. Raises :class:`ConfigError` for a wrong shape/dtype and
    :class:`OccbenchError` naming the count of rows with NaN/inf values or zero norm.
    """
    x = _as_2d_float32(x, name, dim)
    out, bad = _prepare(x)
    if bad.first >= 0:
        raise _bad_rows_error(name, bad.nonfinite, bad.zero, bad.first, len(x))
    return out


# ---- chunked sources ---------------------------------------------------------------------
def iter_blocks(source: Source, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_row, block)`` over ``source``.

    An array (a ``np.memmap`` too) is cut into views of ``chunk_rows`` rows (default
    :data:`DEFAULT_CHUNK_ROWS`); an iterable's blocks, or those of the iterable a callable
    returns, are passed on as they come (any sizes). Blocks are not yet checked or converted.
    """
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if not isinstance(source, np.ndarray) and hasattr(source, "__array__") \
            and getattr(source, "ndim", None) == 2:
        source = np.asarray(source)  # e.g. a CPU torch tensor: a view
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise ConfigError(f"database: expected a 2-d (rows, dim) array, got shape {source.shape}")
        for a in range(0, len(source), chunk_rows):
            yield a, source[a:a + chunk_rows]
        return
    blocks = source() if callable(source) else source
    start = 0
    for block in blocks:
        yield start, block
        start += len(block)


# ---- the device ----------------------------------------------------------------------------
class Searcher:
    """Exact top-k inner product of a query block against a database block.

    Uses every GPU faiss sees (one shard per GPU, in parallel), else ``faiss.knn`` on the
    CPU. Get the shared instance with :func:`get_searcher`.
    """

    def __init__(self, n_gpus: int | None = None):
        self.n_gpus = faiss.get_num_gpus() if n_gpus is None else n_gpus
        self._res = [faiss.StandardGpuResources() for _ in range(self.n_gpus)]
        self._pool = ThreadPoolExecutor(self.n_gpus) if self.n_gpus > 1 else None

    @property
    def device(self) -> str:
        return f"{self.n_gpus} GPU(s)" if self.n_gpus else "CPU"

    def search(self, queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k <= len(block)`` similarities (descending) and row indices into ``block``."""
        ip = faiss.METRIC_INNER_PRODUCT
        if not self.n_gpus or k > GPU_MAX_K:
            return faiss.knn(queries, block, k, metric=ip)
        if self.n_gpus == 1 or len(block) < 2 * self.n_gpus:
            return faiss.knn_gpu(self._res[0], queries, block, k, metric=ip, device=0)
        bounds = np.linspace(0, len(block), self.n_gpus + 1).astype(int)

        def shard(g):
            a, b = bounds[g], bounds[g + 1]
            return faiss.knn_gpu(self._res[g], queries, block[a:b], min(k, b - a), metric=ip,
                                 device=g)

        heap = faiss.ResultHeap(len(queries), k, keep_max=True)
        for g, (sims, ids) in enumerate(self._pool.map(shard, range(self.n_gpus))):
            heap.add_result(sims, ids + bounds[g])
        heap.finalize()
        return heap.D, heap.I


@functools.lru_cache(maxsize=1)
def get_searcher() -> Searcher:
    """The process-wide :class:`Searcher` (GPU resources are made once)."""
    return Searcher()


# ---- streaming search ----------------------------------------------------------------------
class StreamResult(NamedTuple):
    """Result of :func:`knn_ip_stream`.

    ``sims``/``ids``: (nq, k') top similarities, descending, and database row indices, with
    k' = min(k, n_rows). ``group_max``: (nq, n_groups) best similarity per query within each
    group (-inf for an empty group). ``n_rows``: rows read.
    """

    sims: np.ndarray
    ids: np.ndarray
    group_max: np.ndarray
    n_rows: int


def knn_ip_stream(queries, source: Source, k: int, *, groups: np.ndarray | None = None,
                  n_groups: int = 0, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                  name: str = "database", searcher: Searcher | None = None) -> StreamResult:
    """Exact top-k inner-product search of ``queries`` over a chunked database.

    ``queries``: (nq, d), checked with :func:`check_features`. ``source``: see
    :func:`iter_blocks`. ``groups`` (optional, one int per database row, -1 = none) assigns
    rows to ``n_groups`` groups; the best similarity per query within each group comes back
    in ``group_max`` (each group is searched on a gathered copy of its rows of a chunk).
    Memory: one chunk, at most a copy of it, and O(nq * k) results.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    q = check_features(queries, "queries")
    nq, dim = q.shape
    searcher = searcher or get_searcher()
    heap = faiss.ResultHeap(nq, k, keep_max=True)
    group_max = np.full((nq, n_groups), -np.inf, dtype=np.float32)
    n_rows, bad_nonfinite, bad_zero, first_bad = 0, 0, 0, -1
    for start, raw in iter_blocks(source, chunk_rows):
        block = _as_2d_float32(raw, name, dim)
        block, bad = _prepare(block)
        n_rows = start + len(block)
        if bad.first >= 0 or first_bad >= 0:  # keep reading to count every bad row
            if first_bad < 0:
                first_bad = start + bad.first
            bad_nonfinite += bad.nonfinite
            bad_zero += bad.zero
            continue
        if not len(block):
            continue
        sims, ids = searcher.search(q, block, min(k, len(block)))
        heap.add_result(sims, ids + start)
        if groups is not None:
            _group_maxima(q, block, groups[start:n_rows], group_max, searcher)
    if first_bad >= 0:
        raise _bad_rows_error(name, bad_nonfinite, bad_zero, first_bad, n_rows)
    if groups is not None and len(groups) != n_rows:
        raise ConfigError(f"{name}: {n_rows} rows read but groups has {len(groups)} entries")
    heap.finalize()
    kk = min(k, n_rows)
    return StreamResult(heap.D[:, :kk], heap.I[:, :kk], group_max, n_rows)


def _group_maxima(q, block, g, group_max, searcher) -> None:
    """Update ``group_max`` with each group's best similarity within this block."""
    rows = np.flatnonzero(g >= 0)
    if not rows.size:
        return
    rows = rows[np.argsort(g[rows], kind="stable")]
    sub = block[rows]  # only the grouped rows are copied
    ids, starts = np.unique(g[rows], return_index=True)
    ends = np.append(starts[1:], len(rows))
    for gid, a, b in zip(ids, starts, ends, strict=True):
        sims, _ = searcher.search(q, sub[a:b], 1)
        np.maximum(group_max[:, gid], sims[:, 0], out=group_max[:, gid])


def knn_ip(queries, database, k: int, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner product: ``(D, I)`` of shape (nq, min(k, N)), D descending.

    ``database`` is an (N, d) array (memmap welcome) or any :data:`Source`; it is searched
    in chunks of ``chunk_rows`` (default :data:`DEFAULT_CHUNK_ROWS`) and never copied whole.
    Rows are checked and cosine-normalised as described in the module docstring.
    """
    res = knn_ip_stream(queries, database, k, chunk_rows=chunk_rows)
    return res.sims, res.ids
