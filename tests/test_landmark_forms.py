"""``mask`` and ``glasses``: occlusion forms drawn from the 68 landmarks of real faces."""

from __future__ import annotations

import numpy as np
import pytest

from occbench import registry
from occbench.errors import ConfigError
from occbench.export import condition_dir
from occbench.occlusion import check_spec, occlude, occlude_batch, training_forms

FORMS = {"mask": (0.1, 0.4, 0.8), "glasses": (1.2, 1.6, 2.0)}


def test_registered_without_positions_and_not_trained_by_default(tmp_path):
    for name, sizes in FORMS.items():
        form = registry.forms.load(name)
        assert form.positions == () and form.needs_landmarks and form.eval_sizes == sizes
        assert check_spec(name, sizes[1], "none") == (name, sizes[1])
    assert registry.forms.canonical("sunglasses") == "glasses"
    assert registry.forms.canonical("face-mask") == "mask"
    assert "mask" not in training_forms() and "glasses" not in training_forms()
    with pytest.raises(ConfigError, match="unknown occlusion position 'eyes' for mask"):
        check_spec("mask", 0.4, "eyes")
    with pytest.raises(ConfigError, match=r"nose coverage s must be in \(0, 1\]"):
        check_spec("mask", 1.5, "none")
    with pytest.raises(ConfigError, match="drawn from the face's 68 landmarks"):
        occlude(np.zeros((112, 112, 3), np.uint8), "k", "glasses", 1.6, "none")
    # export layout of a form without positions: <form>/<size>/
    assert condition_dir(tmp_path, "mask", "none", 0.4) == tmp_path / "mask" / "0.4"


@pytest.fixture(scope="module")
def points(lfw_faces):
    from occbench.landmarks68 import landmarks68

    return landmarks68(lfw_faces[:16])


def _covered(masks, pts, idx) -> np.ndarray:
    """Share of faces whose landmarks ``idx`` all lie under the mask."""
    p = np.rint(pts[:, idx]).astype(int).clip(0, 111)
    return np.array([m[q[:, 1], q[:, 0]].all() for m, q in zip(masks, p, strict=True)])


def test_mask_sits_on_nose_and_chin(lfw_faces, points):
    faces, keys = lfw_faces[:16], [f"lfw/k{i}" for i in range(16)]
    heights = []
    for size in FORMS["mask"]:
        _, masks, params = occlude_batch(faces, keys, "mask", size, "none", landmarks=points)
        assert _covered(masks, points, list(range(48, 68))).all()  # the whole mouth
        assert _covered(masks, points, [8]).mean() >= 0.9  # the chin (contour point 8)
        assert not _covered(masks, points, list(range(36, 48))).any()  # never the eyes
        heights.append(masks.sum())
        if size >= 0.4:
            assert _covered(masks, points, [30, 33]).all()  # the nose tip too
        else:
            assert _covered(masks, points, [33]).mean() >= 0.9
        assert len({p["colour"] for p in params}) > 8  # random colour per face
    assert heights[0] < heights[1] < heights[2]


def test_glasses_cover_both_eyes(lfw_faces, points):
    faces, keys = lfw_faces[:16], [f"lfw/k{i}" for i in range(16)]
    areas = []
    for size in FORMS["glasses"]:
        _, masks, _ = occlude_batch(faces, keys, "glasses", size, "none", landmarks=points)
        assert _covered(masks, points, list(range(36, 48))).all()
        assert not _covered(masks, points, [33, 51, 57]).any()  # nose bottom and mouth free
        areas.append(masks.sum())
    assert areas[0] < areas[1] < areas[2]
    again, _, _ = occlude_batch(faces, keys, "glasses", 1.6, "none", landmarks=points)
    first, _, _ = occlude_batch(faces, keys, "glasses", 1.6, "none", landmarks=points)
    assert np.array_equal(again, first)  # deterministic per key
