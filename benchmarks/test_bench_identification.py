"""Identification at MegaFace scale: occbench against a bare faiss search (one process).

    pytest -q benchmarks/test_bench_identification.py --benchmark-only -s

Synthetic data: N unit-norm 512-d float32 distractors (default 1,000,000, 2 GB; set
``OCCBENCH_BENCH_DISTRACTORS=100000`` for a quick run) and 3,530 probes of 80 identities
(MegaFace's FaceScrub probe count).

- ``test_bare_faiss``: ``faiss.IndexFlatIP`` add + ``search(probes, k=10)``.
- ``test_occbench_identify``: :func:`occbench.protocols.identification.identify` on the
  same arrays (CMC to rank 1000, TPIR@1 for every D, TPIR@1..10, bootstrap intervals);
  its ``extra_info`` holds ``ratio_to_bare`` when the bare test ran first in the session.
- ``test_peak_memory``: ``identify`` in a fresh process over the array in RAM and as a
  memmap; ``extra_info`` holds the peak resident memory (``VmHWM``, reset just before the
  call) over the distractor array's size, and the peak added by ``identify``.
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

from occbench.protocols.identification import identify

N = int(os.environ.get("OCCBENCH_BENCH_DISTRACTORS", 1_000_000))
N_PROBES, N_IDS, DIM = 3530, 80, 512
TIMES: dict[str, float] = {}


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
    probes = _unit_rows(centres[labels] + rng.standard_normal((N_PROBES, DIM), dtype=np.float32))
    np.savez(root / "probes.npz", probes=probes, labels=labels)
    return np.load(root / "distractors.npy"), probes, labels, root


def test_bare_faiss(benchmark, arrays):
    X, probes, _, _ = arrays

    def bare():
        t = time.perf_counter()
        index = faiss.IndexFlatIP(DIM)
        index.add(X)
        index.search(probes, 10)
        TIMES["bare"] = time.perf_counter() - t

    benchmark.pedantic(bare, rounds=1, iterations=1)
    benchmark.extra_info.update(seconds=TIMES["bare"], n_distractors=N, n_probes=N_PROBES)


def test_occbench_identify(benchmark, arrays):
    X, probes, labels, _ = arrays

    def run():
        t = time.perf_counter()
        res = identify(probes, labels, X, seed=0)
        TIMES["occbench"] = time.perf_counter() - t
        return res

    res = benchmark.pedantic(run, rounds=1, iterations=1)
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
    from occbench.protocols.identification import identify

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
    identify(probes, labels, X)
    print(json.dumps(dict(before=before, peak=rss()[1], array=X.nbytes)))
""")


@pytest.mark.parametrize("mode", ["ram", "memmap"])
def test_peak_memory(benchmark, arrays, mode):
    root = arrays[3]

    def child():
        out = subprocess.run([sys.executable, "-c", _CHILD, str(root), mode], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    m = benchmark.pedantic(child, rounds=1, iterations=1)
    info = dict(peak_over_array=m["peak"] / m["array"],
                added_by_identify_over_array=(m["peak"] - m["before"]) / m["array"],
                peak_gib=m["peak"] / 2**30, array_gib=m["array"] / 2**30)
    benchmark.extra_info.update(info)
    print(f"\n{mode}: peak RSS {info['peak_gib']:.2f} GiB = {info['peak_over_array']:.2f} x the "
          f"array; identify added {info['added_by_identify_over_array']:.2f} x")
