"""PSNR + SSIM throughput: occbench against a plain loop over scikit-image.

1,000 real LFW photos, the central 150x150 (the face) resized to 112x112, each paired with a
copy that has a rectangle of random colour pasted in. Both sides compute PSNR and SSIM of
every pair. Run:

    pytest benchmarks/test_bench_metrics.py --benchmark-only

Both tests are in one group, so the table's bracketed figures give the ratio; faces/s =
1000 x OPS (also stored as ``extra_info``). Nothing asserts on time; the values are checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from occbench.imageio import read_rgb
from occbench.metrics.psnr import psnr
from occbench.metrics.ssim import ssim

N = 1000


@pytest.fixture(scope="module")
def pairs(data_root) -> tuple[np.ndarray, np.ndarray]:
    files = sorted((data_root / "lfw").glob("*/*.jpg"))[:N]
    assert len(files) == N, f"need {N} LFW images, found {len(files)}"
    clean = np.stack([
        np.asarray(Image.fromarray(read_rgb(f)[50:200, 50:200]).resize((112, 112),
                                                                        Image.BILINEAR))
        for f in files])
    rng = np.random.default_rng(0)
    occluded = clean.copy()
    for face in occluded:
        h, w = rng.integers(20, 50, 2)
        y, x = rng.integers(0, 112 - h), rng.integers(0, 112 - w)
        face[y:y + h, x:x + w] = rng.integers(0, 256, 3)
    return occluded, clean


def _skimage_loop(occluded, clean):
    out = np.empty((2, len(clean)))
    for i, (a, b) in enumerate(zip(occluded, clean, strict=True)):
        out[0, i] = peak_signal_noise_ratio(b, a, data_range=255)
        out[1, i] = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, channel_axis=-1,
                                          data_range=255)
    return out


def _occbench(occluded, clean):
    return np.stack([psnr(occluded, clean), ssim(occluded, clean)])


_results: dict[str, np.ndarray] = {}


def _run(benchmark, fn, pairs, name):
    benchmark.group = "PSNR + SSIM, 1,000 faces of 112x112"
    _results[name] = benchmark.pedantic(fn, args=pairs, rounds=5, iterations=1,
                                        warmup_rounds=1)
    faces_per_s = N / benchmark.stats.stats.median
    benchmark.extra_info["faces_per_s"] = round(faces_per_s, 1)
    print(f"\n{name}: {faces_per_s:.0f} faces/s (median of 5 rounds)")


def test_bench_skimage_loop(benchmark, pairs):
    _run(benchmark, _skimage_loop, pairs, "skimage")


def test_bench_occbench(benchmark, pairs):
    _run(benchmark, _occbench, pairs, "occbench")
    if "skimage" in _results:  # the same numbers, so the comparison is fair
        assert np.abs(_results["occbench"] - _results["skimage"]).max() < 1e-4
