"""Shared fixtures: the real data root and small sets of real aligned faces.

The data root is ``$OCCBENCH_DATA``, else ``../shared/data`` beside the repository. Tests
fail (never skip) when it is missing: they are about the real data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    value = os.environ.get("OCCBENCH_DATA")
    root = Path(value) if value else REPO.parent / "shared" / "data"
    if not (root / "lfw").is_dir():
        pytest.fail(f"real data not found at {root}: set OCCBENCH_DATA to the data root", pytrace=False)
    return root.resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _data_root()


@pytest.fixture(scope="session")
def lfw_root(data_root) -> Path:
    """The real LFW folder (``<data root>/lfw``: one folder a person, ``pairs.txt``)."""
    return Path(data_root) / "lfw"


@pytest.fixture(scope="session")
def lfw_faces(data_root, tmp_path_factory) -> np.ndarray:
    """60 real LFW faces aligned to 112x112 (first image of 60 people, seeded choice)."""
    from occbench.align import align_dataset
    from occbench.data import load_dataset

    ds = load_dataset("lfw", data_root)
    firsts = {}
    for s in ds.samples:
        firsts.setdefault(s.identity, s)
    people = sorted(firsts)
    pick = np.random.default_rng(0).choice(len(people), 60, replace=False)
    ds.samples = sorted(firsts[people[i]] for i in pick)
    faces = align_dataset(ds, workers=1, progress=False)
    return faces.images


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny networks gain nothing from threads, and threads
    stall on a busy machine); the previous setting is restored after it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Fixtures that need the real data (directly or through another fixture): every test that
# uses one is in the slow lane. The fast lane (`pytest -m "not slow"`) is what runs without
# ../shared: the fake recognizer, the in-memory toy sets, synthetic arrays, hand-built tables.
REAL_DATA_FIXTURES = {"data_root", "lfw_root", "lfw_faces"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
