"""Alignment throughput on real LFW photos (one process) and aligned-cache read throughput.

    pytest -q benchmarks/test_bench_align.py --benchmark-only

Each benchmark records ``images_per_s`` in its ``extra_info`` (shown with
``--benchmark-json``); divide the batch size by the reported mean time to get the same figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from occbench.align import _models, align_dataset, align_face
from occbench.aligned_cache import default_cache_path
from occbench.data.base import Dataset, Sample
from occbench.imageio import read_rgb

N_ALIGN = 50  # photos per alignment round
N_CACHE = 2000  # photos per cache-read round


@pytest.fixture(scope="module")
def lfw_files(data_root) -> list[Path]:
    root = Path(data_root)
    files = sorted((root / "lfw").glob("*/*.jpg"))
    return files


def _dataset(files: list[Path]) -> Dataset:
    samples = [Sample(f"lfw/{p.parent.name}/{p.name}", p.parent.name, p) for p in files]
    return Dataset("lfw-bench", files[0].parents[1], sorted(samples))


def test_bench_align_face(benchmark, lfw_files):
    """Detection + 68 landmarks + similarity fit + warp, decoded images, one process."""
    images = [read_rgb(p) for p in lfw_files[:: len(lfw_files) // N_ALIGN][:N_ALIGN]]
    _models()  # model loading is not part of the throughput

    def run():
        return [align_face(img).aligned for img in images]

    flags = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    assert np.mean(flags) > 0.9
    benchmark.extra_info["images"] = len(images)
    benchmark.extra_info["images_per_s"] = len(images) / benchmark.stats.stats.mean


def test_bench_cache_read(benchmark, lfw_files, tmp_path_factory, monkeypatch):
    """A fully cached ``align_dataset`` call: hashing the files + reading the SQLite rows."""
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    ds = _dataset(lfw_files[:N_CACHE])
    align_dataset(ds, workers=os.cpu_count(), progress=False)  # fill (not timed)
    assert default_cache_path(ds.name).is_file()

    faces = benchmark.pedantic(
        lambda: align_dataset(ds, progress=False), rounds=5, iterations=1, warmup_rounds=1
    )
    assert faces.hits == len(ds) and faces.computed == 0
    benchmark.extra_info["images"] = len(ds)
    benchmark.extra_info["images_per_s"] = len(ds) / benchmark.stats.stats.mean
