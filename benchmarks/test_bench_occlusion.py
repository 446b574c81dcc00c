"""Occlusion throughput on real LFW faces (one process).

    pytest -q benchmarks/test_bench_occlusion.py --benchmark-only

Each benchmark occludes N faces with the paper's evaluation settings (every position and
size of one form) and records ``images_per_s`` in its ``extra_info``. Text masks are cached
per (word, height): ``text`` is the steady state of a long export (every word already drawn
at that height), ``text_cold`` empties the caches before each round, so every word is
rendered with FreeType first.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occbench import occlusion, occlusion_text
from occbench.occlusion import EVAL_SIZES, POSITIONS, occlude, sample_training_occlusion
from occbench.template import SIZE

N = 480  # occlusions per round (4 positions x 3 sizes x 40 faces)


@pytest.fixture(scope="module")
def faces(data_root) -> list[tuple[str, np.ndarray]]:
    """40 real LFW photos, centre-cropped to 110 px and resized to 112x112."""
    root = Path(data_root)
    files = sorted((root / "lfw").glob("*/*.jpg"))
    out = []
    for p in files[:: len(files) // 40][:40]:
        with Image.open(p) as im:
            w, h = im.size
            box = ((w - 110) // 2, (h - 110) // 2, (w + 110) // 2, (h + 110) // 2)
            face = im.convert("RGB").crop(box).resize((SIZE, SIZE), Image.BILINEAR)
        out.append((f"lfw/{p.parent.name}/{p.name}", np.asarray(face)))
    return out


def _jobs(faces, form):
    settings = list(itertools.product(POSITIONS, EVAL_SIZES[form]))
    return [(face, key, position, size)
            for (key, face), (position, size) in zip(itertools.cycle(faces),
                                                     settings * (N // len(settings)))]


def _clear_caches():
    occlusion_text.text_mask.cache_clear()
    occlusion_text.word_ink.cache_clear()
    occlusion._outside_choices.cache_clear()


@pytest.mark.parametrize("form", ["rect", "text", "text_cold"])
def test_bench_occlude(benchmark, faces, form):
    jobs = _jobs(faces, form.removesuffix("_cold"))
    name = form.removesuffix("_cold")

    def run():
        return sum(int(occlude(f, k, name, s, p).mask.any()) for f, k, p, s in jobs)

    if form.endswith("_cold"):
        done = benchmark.pedantic(run, setup=_clear_caches, rounds=3, iterations=1)
    else:
        done = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert done == len(jobs)
    benchmark.extra_info["images"] = len(jobs)
    benchmark.extra_info["images_per_s"] = len(jobs) / benchmark.stats.stats.mean


def test_bench_training_sampler(benchmark, faces):
    images = [f for _, f in faces]

    def run():
        rng = np.random.default_rng(0)
        return sum(int(sample_training_occlusion(images[i % len(images)], rng)[1].any())
                   for i in range(N))

    done = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert done == N
    benchmark.extra_info["images"] = N
    benchmark.extra_info["images_per_s"] = N / benchmark.stats.stats.mean
