"""PSNR+SSIM throughput: occbench's batched torch implementation vs a scikit-image loop,
on 1,000 real aligned LFW faces with a random rectangle pasted in. Run:

    pytest benchmarks/test_bench_metrics.py --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from occbench.metrics import psnr, ssim

N = 1000


@pytest.fixture(scope="module")
def pairs(data_root):
    from occbench.align import align_dataset
    from occbench.data import load_dataset

    ds = load_dataset("lfw", data_root)
    ds.samples = ds.samples[:N]
    clean = align_dataset(ds, progress=False).images
    rng = np.random.default_rng(0)
    occ = clean.copy()
    for i in range(len(occ)):
        y, x = rng.integers(0, 70, 2)
        occ[i, y:y + 40, x:x + 30] = rng.integers(0, 256, 3)
    return clean, occ


def _skimage_loop(clean, occ):
    return [
        (peak_signal_noise_ratio(a, b, data_range=255),
         structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, channel_axis=-1, data_range=255))
        for a, b in zip(clean, occ, strict=True)
    ]


def test_bench_skimage_loop(benchmark, pairs):
    benchmark.extra_info["faces"] = len(pairs[0])
    benchmark.pedantic(_skimage_loop, args=pairs, rounds=3, iterations=1)


def test_bench_occbench_batched(benchmark, pairs):
    benchmark.extra_info["faces"] = len(pairs[0])
    benchmark.pedantic(lambda c, o: (psnr(c, o), ssim(c, o)), args=pairs, rounds=3, iterations=1)
