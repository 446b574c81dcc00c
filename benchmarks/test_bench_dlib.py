"""The ``dlib`` recognizer's engines: raw descriptors of the same 128 real chips (the first 128
LFW faces occbench aligns, warped to dlib's 150x150 chip frame once), each engine at its
defaults.

    pytest -q benchmarks/test_bench_dlib.py --benchmark-only

* ``torch``: dlib's network in torch, in-process, every core torch uses, batches of 64,
  channels-last, bf16 autocast where the CPU runs bf16 natively (else fp32; CUDA when present).
* ``dlib``: dlib's C++ ``compute_face_descriptor``, one process per CPU, 32 chips each.

``extra_info`` records ``images_per_s`` (from the fastest of 3 rounds), ``threads`` (torch's
threads, or dlib's worker processes of one thread each), ``precision`` and ``device``. The torch
engine's descriptors are checked against dlib's on the same chips (cosine >= 0.9999 each).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occbench.models.dlib_recognizer import DlibRecognizer

N_CHIPS = 128
_DESCRIPTORS: dict[str, np.ndarray] = {}  # engine -> descriptors of the chips, from this run


@pytest.fixture(scope="module")
def chips(data_root) -> np.ndarray:
    from occbench.align import align_dataset
    from occbench.data import load_dataset

    faces = align_dataset(load_dataset("lfw", data_root), limit=N_CHIPS + 16, workers=1,
                          progress=False).images[:N_CHIPS]
    assert len(faces) == N_CHIPS
    return DlibRecognizer(engine="dlib", workers=1).chips(faces)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("engine", ["dlib", "torch"])
def test_describe(benchmark, chips, engine):
    rec = DlibRecognizer(engine=engine)
    rec.describe(chips[:rec.batch_size])  # warm-up: loads the network, starts dlib's workers
    desc = benchmark.pedantic(rec.describe, args=(chips,), rounds=3, iterations=1)
    assert desc.shape == (N_CHIPS, 128) and np.isfinite(desc).all()
    _DESCRIPTORS[engine] = desc
    threads = torch.get_num_threads() if engine == "torch" else rec.workers
    benchmark.extra_info.update(images_per_s=round(N_CHIPS / benchmark.stats.stats.min, 1),
                                threads=threads, precision=rec.precision,
                                device=str(rec.device) if rec.device is not None else "cpu")
    if engine == "torch":
        if "dlib" not in _DESCRIPTORS:  # run alone (-k torch): dlib's reference, untimed
            _DESCRIPTORS["dlib"] = DlibRecognizer(engine="dlib", workers=1).describe(chips)
        cos = _cosine(desc, _DESCRIPTORS["dlib"])
        benchmark.extra_info["min_cosine_to_dlib"] = round(float(cos.min()), 8)
        assert cos.min() >= 0.9999, cos.min()
