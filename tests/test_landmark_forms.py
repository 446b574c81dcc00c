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


# 68 points of a real aligned face (dlib's, on lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg,
# rounded to 0.5 px), fixed here so the drawing is pinned whatever dlib's version
POINTS = np.array(
    [[16, 47], [17, 58], [19, 69], [21, 80], [25, 91], [31, 100], [39, 108], [48, 113],
     [58, 113], [68, 112], [75, 107], [82, 100], [86, 91], [89, 81], [91, 70], [92, 60],
     [92, 49], [24, 44], [30, 41], [36, 41], [42, 41], [49, 43], [64, 42], [70, 41], [76, 40],
     [82, 41], [87, 44], [56, 51], [57, 60], [57, 68], [57, 77], [49, 80], [52, 81], [56, 83],
     [60, 81], [64, 80], [32, 50], [36, 48], [41, 48], [46, 52], [41, 52], [36, 52], [65, 52],
     [70, 48], [75, 48], [80, 50], [76, 52], [71, 53], [42, 91], [47, 90], [52, 90], [56, 91],
     [61, 90], [66, 90], [71, 91], [66, 95], [62, 97], [57, 97], [52, 97], [47, 95], [44, 92],
     [52, 92], [56, 93], [61, 92], [69, 92], [61, 93], [57, 93], [52, 92]], dtype=np.float64)
LANDMARK_CASES = [("lfw/AJ_Cook/AJ_Cook_0001.jpg", "mask", s, 0) for s in FORMS["mask"]] + [
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "glasses", s, 0) for s in FORMS["glasses"]] + [
    ("k", "mask", 0.4, 3), ("k", "glasses", 1.6, 3)]
SUBPROCESS = """
import hashlib, json, sys
import numpy as np
from occbench.occlusion import occlude
face, points = np.load(sys.argv[1]), np.load(sys.argv[2])
out = []
for key, form, size, seed in json.loads(sys.argv[3]):
    occ = occlude(face, key, form, size, "none", seed=seed, landmarks=points)
    out.append(hashlib.sha256(occ.image.tobytes() + occ.mask.tobytes()).hexdigest())
print(json.dumps(out))
"""


def _digest(occ) -> str:
    import hashlib

    return hashlib.sha256(occ.image.tobytes() + occ.mask.tobytes()).hexdigest()


def _draw(face, case):
    key, form, size, seed = case
    return occlude(face, key, form, size, "none", seed=seed, landmarks=POINTS)


def test_landmark_forms_same_bytes_in_another_process(lfw_faces, tmp_path):
    import json
    import os
    import subprocess
    import sys

    face = lfw_faces[0]
    np.save(tmp_path / "face.npy", face)
    np.save(tmp_path / "points.npy", POINTS)
    here = [_digest(_draw(face, case)) for case in LANDMARK_CASES]
    assert len(set(here)) == len(here)  # every size, seed and key draws another occluder
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    res = subprocess.run([sys.executable, "-c", SUBPROCESS, str(tmp_path / "face.npy"),
                          str(tmp_path / "points.npy"), json.dumps(LANDMARK_CASES)],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert json.loads(res.stdout) == here


# Pinned masks and glasses on an all-grey face with POINTS: a change here changes every
# published mask / glasses figure.
GOLDEN = {
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "mask", 0.1, 0):
        "d6f1c66f38789c879752fffa932ad55deebc4665f34516de0ccfd519e9286390",
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "mask", 0.4, 0):
        "05f5dcb72558a825769d623b65b5521c762aa0f8d8b2d4818c8421a5481a7b31",
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "mask", 0.8, 0):
        "f05003091b2a693956e4c9b497768f75143907162d776e018827d1cf62ccd805",
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "glasses", 1.2, 0):
        "07029389327c14e1620a25580e87422ca44dbe223a37299f52a21b3a1f537aa4",
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "glasses", 1.6, 0):
        "e02bc7d68786504c145900ac4829a278ea7d17d4191288b08d91bee0a9ffa802",
    ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "glasses", 2.0, 0):
        "7b8e890bce5ac7529edd38a5afc5b726cf35fa215b79de3bf8a8db8b87bedb29",
}


@pytest.mark.parametrize("case", LANDMARK_CASES[:6])
def test_pinned_landmark_forms(case):
    occ = _draw(np.full((112, 112, 3), 128, dtype=np.uint8), case)
    assert _digest(occ) == GOLDEN[case], occ.params
