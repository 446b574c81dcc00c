"""The committed student weights (``resnet50``, ``resnet50-occ``: the distilled ``mid``
networks of ``baselines/resnet50/weights``) recognise real faces as well as when they were
committed: LFW verification on the first 150 same- and 150 different-person pairs of fold 1,
clean and with both faces occluded (rect a = 0.1 at the eyes), each half scored with the
threshold chosen on the other half. Each model has its own floor a little under the figure
measured when its weights were committed (written beside it), so a regression shows."""

from __future__ import annotations

import numpy as np
import pytest

from occbench.metrics.verification import verify
from occbench.models import create_recognizer
from occbench.occlusion import occlude_batch

N_PAIRS = 150  # same and different pairs each, from fold 1 of pairs.txt

# (clean, occluded) accuracy on these 300 pairs, measured with the committed weights
# (2026-12-05: resnet50 retrained 2026-12-04, resnet50-occ 2026-12-05)
MEASURED = {
    "resnet50": (0.9633, 0.9200),
    "resnet50-occ": (0.9667, 0.9533),
}
MARGIN = 0.015  # about two pairs in 300 on each side of the split


@pytest.fixture(scope="module")
def pairs(data_root):
    """(faces1, faces2, same): the aligned faces of the first N_PAIRS same and different
    pairs of fold 1 (aligned through the disk cache, as a run aligns them)."""
    from occbench.align import align_dataset
    from occbench.data import load_dataset
    from occbench.data.pairs import dataset_pairs

    ds = load_dataset("lfw", data_root)
    fold1 = [p for p in dataset_pairs(ds) if p.fold == 0]
    chosen = [p for p in fold1 if p.same][:N_PAIRS] + [p for p in fold1 if not p.same][:N_PAIRS]
    keys = {k for p in chosen for k in (p.key1, p.key2)}
    ds.samples = [s for s in ds.samples if s.key in keys]
    faces = align_dataset(ds, workers=1, progress=False)
    return (faces.subset([p.key1 for p in chosen]).images,
            faces.subset([p.key2 for p in chosen]).images,
            np.array([p.same for p in chosen]))


def _accuracy(rec, a, b, same) -> float:
    return verify(rec.embed(a), rec.embed(b), same, np.arange(len(same)) % 2).mean


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_committed_students_keep_their_accuracy(name, pairs):
    a, b, same = pairs
    rec = create_recognizer(name)
    clean = _accuracy(rec, a, b, same)
    keys = [f"pair/{i}" for i in range(len(a))]
    occ_a = occlude_batch(a, [k + "/1" for k in keys], "rect", 0.1, "eyes")[0]
    occ_b = occlude_batch(b, [k + "/2" for k in keys], "rect", 0.1, "eyes")[0]
    occluded = _accuracy(rec, occ_a, occ_b, same)
    floor_clean, floor_occ = (m - MARGIN for m in MEASURED[name])
    assert clean >= floor_clean, f"{name}: clean {clean:.4f} < {floor_clean:.4f}"
    assert occluded >= floor_occ, f"{name}: occluded {occluded:.4f} < {floor_occ:.4f}"
    assert clean > occluded  # the occlusion costs something: the test sees the faces
