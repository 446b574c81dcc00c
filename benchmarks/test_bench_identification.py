"""Identification at MegaFace scale: occbench against a bare faiss search (one process).

    pytest -q benchmarks/test_bench_identification.py --benchmark-only -s

Synthetic data: N unit-norm 512-d float32 distractors (default 1,000,000, 2 GB; set
``OCCBENCH_BENCH_DISTRACTORS=100000`` for a quick run) and 3,530 probes of 80 identities
(MegaFace's FaceScrub probe count), noisy enough (identity centre plus ``NOISE`` times a
unit-variance vector per probe) that a pair's similarity is near the best distractor's:
ranks spread over 1 to beyond 10.

- ``test_bare_faiss``: ``faiss.IndexFlatIP`` add + ``search(probes, k=10)``; its top 10 of
  a few probes is checked against numpy.
- ``test_occbench_identify``: :func:`occbench.metrics.identification.identify` on the
  same arrays (CMC to rank 1000, TPIR@1 for every D, TPIR@1..10, bootstrap intervals);
  its ``extra_info`` holds ``ratio_to_bare`` when the bare test ran first in the session.
  Its pairs, ranks (to 10) and TPIR@1..10 are checked against the bare top 10 (the rank
  of g is 1 + the number of distractors at least as similar to p, within ``TIE_EPS``).
- ``test_peak_memory``: ``identify`` in a fresh process over the array in RAM and as a
  memmap; ``extra_info`` holds the peak resident memory (``VmHWM``, reset just before the
  call) over the distractor array's size, and the peak added by ``identify``; its TPIR@1
  is checked against the bare top 10's.
No time or memory is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import faiss
import numpy as np
import pytest

from occbench.metrics.identification import TIE_EPS, identify

N = int(os.environ.get("OCCBENCH_BENCH_DISTRACTORS", 1_000_000))
N_PROBES, N_IDS, DIM = 3530, 80, 512
NOISE = 2.0  # same-identity cosine ~1 / (1 + NOISE^2) = 0.2, near the best distractor's
TIMES: dict[str, float] = {}
BARE: dict[str, np.ndarray] = {}  # the bare search's top-10 similarities, for the checks


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    """Distractors (in RAM, also saved as .npy), probes, labels, and the files' folder."""
    root = tmp_path_factory.mktemp("bench_identification")
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(root / "distractors.npy", mode="w+", dtype=np.float32,
                                   shape=(N, DIM))
    for a in range(0, N, 1 << 16):
        b = min(N, a + (1 << 16))
        mm[a:b] = _unit_rows(rng.standard_normal((b - a, DIM), dtype=np.float32))
    mm.flush()
    del mm
    labels = np.sort(np.arange(N_PROBES) % N_IDS)
    centres = rng.standard_normal((N_IDS, DIM), dtype=np.float32)
    probes = _unit_rows(centres[labels] / np.sqrt(DIM)
                        + NOISE / np.sqrt(DIM) * rng.standard_normal((N_PROBES, DIM),
                                                                    dtype=np.float32))
    np.savez(root / "probes.npz", probes=probes, labels=labels)
    return np.load(root / "distractors.npy"), probes, labels, root


def test_bare_faiss(benchmark, arrays):
    X, probes, _, _ = arrays

    def bare():
        t = time.perf_counter()
        index = faiss.IndexFlatIP(DIM)
        index.add(X)
        out = index.search(probes, 10)
        TIMES["bare"] = time.perf_counter() - t
        return out

    sims, ids = benchmark.pedantic(bare, rounds=1, iterations=1)
    benchmark.extra_info.update(seconds=TIMES["bare"], n_distractors=N, n_probes=N_PROBES)
    BARE["top10"] = sims
    for p in (0, 1234, N_PROBES - 1):  # a few probes by numpy
        s = X @ probes[p]
        top = np.sort(s)[::-1][:10]
        np.testing.assert_allclose(sims[p], top, atol=1e-5)
        np.testing.assert_allclose(s[ids[p]], sims[p], atol=1e-5)


def _bare_top10(X, probes) -> np.ndarray:
    """The bare search's top-10 similarities (from ``test_bare_faiss`` if it ran)."""
    if "top10" not in BARE:
        index = faiss.IndexFlatIP(DIM)
        index.add(X)
        BARE["top10"] = index.search(probes, 10)[0]
    return BARE["top10"]


def _reference_ranks(top10, probes, pair_probe, pair_target):
    """Rank of each pair's target (11 = beyond 10) from the top 10 of its probe, and whether
    a distractor lies so near the tie margin that float32 rounding may decide it."""
    s = np.einsum("ij,ij->i", probes[pair_probe].astype(np.float64),
                  probes[pair_target].astype(np.float64))
    t = top10[pair_probe].astype(np.float64)
    ranks = 1 + (t >= (s - TIE_EPS)[:, None]).sum(axis=1)
    unsure = (np.abs(t - (s - TIE_EPS)[:, None]) < 1e-6).any(axis=1)
    return ranks, unsure


def test_occbench_identify(benchmark, arrays):
    X, probes, labels, _ = arrays

    def run():
        t = time.perf_counter()
        res = identify(probes, labels, X, seed=0)
        TIMES["occbench"] = time.perf_counter() - t
        return res

    res = benchmark.pedantic(run, rounds=1, iterations=1)
    # the pairs: every ordered pair of two images of one identity
    counts = np.bincount(labels)
    assert res.n_pairs == int((counts * (counts - 1)).sum())
    assert (labels[res.pair_probe] == labels[res.pair_target]).all()
    assert (res.pair_probe != res.pair_target).all()
    assert len(set(zip(res.pair_probe.tolist(), res.pair_target.tolist(), strict=True))
               ) == res.n_pairs
    # ranks to 10 and TPIR@1..10 at D = N, against the bare search's top 10
    ref, unsure = _reference_ranks(_bare_top10(X, probes), probes, res.pair_probe,
                                   res.pair_target)
    got = np.minimum(res.ranks, 11)
    assert unsure.mean() < 0.001 and (got == ref)[~unsure].all()
    assert res.sizes[-1] == N and res.tpir_at_D[N] == res.cmc[0]
    for k in range(1, 11):
        assert abs(res.tpir_at_rank[k - 1] - (ref <= k).mean()) <= unsure.mean() + 1e-12
    if N >= 10_000:  # ranks spread (NOISE): the check above is not all rank 1
        assert 0.05 < res.cmc[0] < 0.95 and res.cmc[9] > res.cmc[0]
    lo, hi = res.ci_at_D[N]
    assert lo <= res.tpir_at_D[N] <= hi
    info = dict(seconds=TIMES["occbench"], n_distractors=N, n_pairs=res.n_pairs,
                sizes=list(res.sizes), cmc_length=len(res.cmc), device=res.settings["device"])
    if "bare" in TIMES:
        info["ratio_to_bare"] = TIMES["occbench"] / TIMES["bare"]
    benchmark.extra_info.update(info)
    print(f"\noccbench {TIMES['occbench']:.1f} s, bare faiss {TIMES.get('bare', float('nan')):.1f} s, "
          f"ratio {info.get('ratio_to_bare', float('nan')):.2f}")


_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from occbench.metrics.identification import identify

    def rss():  # current and peak resident set, bytes
        d = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in open("/proc/self/status")
             if l.startswith(("VmRSS", "VmHWM"))}
        return d["VmRSS"], d["VmHWM"]

    root, mode = sys.argv[1], sys.argv[2]
    X = np.load(root + "/distractors.npy", mmap_mode="r" if mode == "memmap" else None)
    p = np.load(root + "/probes.npz")
    probes, labels = p["probes"], p["labels"]
    if mode == "memmap":
        X.sum(axis=1)  # page the file in (it counts in RSS), as in RAM mode
    try:
        open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to now
    except OSError:
        pass
    before = rss()[0]
    res = identify(probes, labels, X)
    print(json.dumps(dict(before=before, peak=rss()[1], array=X.nbytes, tpir1=res.cmc[0],
                          n_pairs=res.n_pairs)))
""")


@pytest.mark.parametrize("mode", ["ram", "memmap"])
def test_peak_memory(benchmark, arrays, mode):
    root = arrays[3]

    def child():
        out = subprocess.run([sys.executable, "-c", _CHILD, str(root), mode], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    m = benchmark.pedantic(child, rounds=1, iterations=1)
    X, probes, labels, _ = arrays
    p, g = np.nonzero((labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool))
    ref, unsure = _reference_ranks(_bare_top10(X, probes), probes, p, g)
    assert m["n_pairs"] == len(p) and m["array"] == X.nbytes and m["peak"] >= m["before"] > 0
    assert abs(m["tpir1"] - (ref == 1).mean()) <= unsure.mean() + 1e-12
    info = dict(peak_over_array=m["peak"] / m["array"],
                added_by_identify_over_array=(m["peak"] - m["before"]) / m["array"],
                peak_gib=m["peak"] / 2**30, array_gib=m["array"] / 2**30)
    benchmark.extra_info.update(info)
    print(f"\n{mode}: peak RSS {info['peak_gib']:.2f} GiB = {info['peak_over_array']:.2f} x the "
          f"array; identify added {info['added_by_identify_over_array']:.2f} x")
