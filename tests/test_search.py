"""Exact inner-product search: brute-force agreement, chunked sources, checks, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from occbench.errors import ConfigError, OccbenchError
from occbench.search import Searcher, check_features, iter_blocks, knn_ip, knn_ip_stream


def unit(rng, n, d=24):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(q, x, k):
    s = q.astype(np.float64) @ x.astype(np.float64).T
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return unit(rng, 30), unit(rng, 1000)


@pytest.mark.parametrize("chunk_rows", [7, 100, 1 << 18])
def test_knn_matches_brute_force(data, chunk_rows):
    q, x = data
    sims, ids = knn_ip(q, x, 15, chunk_rows=chunk_rows)
    bD, bI = brute(q, x, 15)
    assert sims.shape == ids.shape == (30, 15) and sims.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_allclose(sims, bD, atol=1e-6)
    np.testing.assert_array_equal(ids, bI)  # continuous random data: no ties


def test_sources_agree(data, tmp_path):
    q, x = data
    ref = knn_ip(q, x, 10)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    mm.flush()
    sizes = [1, 300, 0, 499, 200]  # uneven blocks, an empty one too
    bounds = np.cumsum([0] + sizes)
    blocks = [x[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for src in (np.load(tmp_path / "x.npy", mmap_mode="r"), iter(blocks),
                lambda: (b for b in blocks), blocks):
        got = knn_ip(q, src, 10, chunk_rows=64)
        np.testing.assert_allclose(got[0], ref[0], atol=1e-6)
        np.testing.assert_array_equal(got[1], ref[1])


def test_k_larger_than_database(data):
    q, x = data
    sims, ids = knn_ip(q, x[:5], 10)
    assert sims.shape == (30, 5)
    assert (np.sort(ids, axis=1) == np.arange(5)).all()


def test_group_maxima(data):
    q, x = data
    rng = np.random.default_rng(1)
    groups = rng.integers(-1, 4, len(x)).astype(np.int16)
    groups[groups == 2] = -1  # an empty group
    res = knn_ip_stream(q, x, 3, groups=groups, n_groups=4, chunk_rows=77)
    s = q.astype(np.float64) @ x.astype(np.float64).T
    for g in range(4):
        if (groups == g).any():
            np.testing.assert_allclose(res.group_max[:, g], s[:, groups == g].max(1), atol=1e-6)
        else:
            assert np.isneginf(res.group_max[:, g]).all()
    assert res.n_rows == len(x)


def test_rows_are_normalised(data):
    q, x = data
    scale = np.linspace(0.5, 3, len(x), dtype=np.float32)[:, None]
    D1, I1 = knn_ip(q * 2, x * scale, 10)
    D0, I0 = knn_ip(q, x, 10)
    np.testing.assert_allclose(D1, D0, atol=1e-6)
    np.testing.assert_array_equal(I1, I0)
    assert check_features(x) is x  # unit rows: no copy


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0])
def test_bad_rows_are_counted(data, bad):
    q, x = data
    xb = x.copy()
    xb[[3, 500, 900]] = bad  # three bad rows in three different chunks
    with pytest.raises(OccbenchError, match=r"3 row\(s\).*out of 1000 \(first: row 3\)"):
        knn_ip(q, xb, 5, chunk_rows=100)
    qb = q.copy()
    qb[7] = bad
    with pytest.raises(OccbenchError, match=r"queries: 1 row\(s\).*\(first: row 7\)"):
        knn_ip(qb, x, 5)


def test_bad_shapes(data):
    q, x = data
    with pytest.raises(ConfigError, match="dimension"):
        knn_ip(q, x[:, :10], 5)
    with pytest.raises(ConfigError, match="2-d"):
        knn_ip(q[0], x, 5)
    with pytest.raises(ConfigError, match="k must be"):
        knn_ip(q, x, 0)
    with pytest.raises(ConfigError, match="chunk_rows"):
        list(iter_blocks(x, 0))


def test_streaming_does_not_copy_the_database():
    rng = np.random.default_rng(2)
    x = unit(rng, 40_000, 64)  # 10 MB
    q = unit(rng, 20, 64)
    tracemalloc.start()
    knn_ip(q, x, 10, chunk_rows=2_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes / 4, peak


def test_cpu_searcher():
    s = Searcher(n_gpus=0)
    assert s.device == "CPU"
    rng = np.random.default_rng(3)
    q, x = unit(rng, 4), unit(rng, 50)
    sims, ids = s.search(q, x, 50)
    np.testing.assert_allclose(sims, brute(q, x, 50)[0], atol=1e-6)
