"""Landmark protocol (Fig. 8): error normalisation by hand, and dlib's predictor on real faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from occbench.align import derive_face_box
from occbench.landmarks68 import FACE_BOX, landmarks68
from occbench.metrics.landmarks import interocular, landmark_errors
from occbench.protocols.landmarks import evaluate_landmarks
from occbench.template import LEFT_EYE, RIGHT_EYE

N_FACES = 20


# ----------------------------------------------------------------------------- arithmetic


def test_errors_hand_computed():
    ref = np.zeros((1, 68, 2))
    ref[0, :, 0] = np.arange(68)  # any layout; only 36 and 45 set the scale
    ref[0, 36] = (0.0, 0.0)
    ref[0, 45] = (10.0, 0.0)  # iod = 10
    other = ref.copy()
    other[0, ::2] += (3.0, 4.0)  # 34 points moved by 5 px, 34 not at all
    err = landmark_errors(ref, other)
    assert err["nme"].shape == (1,) and err["nmse"].shape == (1,)
    np.testing.assert_allclose(err["nme"], [2.5 / 10])  # mean distance 2.5
    np.testing.assert_allclose(err["nmse"], [12.5 / 100])  # mean squared distance 12.5


def test_errors_are_normalised_per_image_by_the_reference():
    ref = np.zeros((2, 68, 2))
    ref[:, 45] = [(20.0, 0.0), (0.0, 40.0)]  # iod 20 and 40
    err = landmark_errors(ref, ref + (2.0, 0.0))
    np.testing.assert_allclose(err["nme"], [2 / 20, 2 / 40])
    np.testing.assert_allclose(err["nmse"], [4 / 400, 4 / 1600])
    np.testing.assert_allclose(interocular(ref), [20, 40])
    # the other points' own eye distance plays no part: swapping roles changes the result
    other = ref.copy()
    other[:, 45] *= 2
    assert not np.allclose(landmark_errors(ref, other)["nme"], landmark_errors(other, ref)["nme"])


def test_errors_reject_bad_shapes():
    with pytest.raises(ValueError):
        landmark_errors(np.zeros((2, 68, 2)), np.zeros((3, 68, 2)))
    with pytest.raises(ValueError):
        landmark_errors(np.zeros((2, 5, 2)), np.zeros((2, 5, 2)))


# ----------------------------------------------------------------------------- real faces


@pytest.fixture(scope="module")
def photos(lfw_root):
    """The first photo of N_FACES people drawn with seed 2."""
    people = sorted(p for p in lfw_root.iterdir() if p.is_dir())
    pick = np.random.default_rng(2).choice(len(people), N_FACES, replace=False)
    return [np.asarray(Image.open(sorted(people[i].glob("*.jpg"))[0]).convert("RGB")) for i in sorted(pick)]


@pytest.fixture(scope="module")
def faces(photos):
    from occbench.align import align_face

    return np.stack([align_face(p).face for p in photos])


@pytest.fixture(scope="module")
def clean_pts(faces):
    return landmarks68(faces)


def _occlude_eyes(faces, width, height, grey=128):
    """A grey width x height rectangle centred between the template's eye centres."""
    cx, cy = (LEFT_EYE + RIGHT_EYE) / 2
    x0, y0 = int(round(cx - width / 2)), int(round(cy - height / 2))
    out = faces.copy()
    out[:, y0 : y0 + height, x0 : x0 + width] = grey
    return out


def test_landmarks_shape_and_plausibility(faces, clean_pts):
    assert clean_pts.shape == (N_FACES, 68, 2) and clean_pts.dtype == np.float64
    # outer eye corners sit outside the template's eye centres, at their height
    assert (clean_pts[:, 36, 0] < LEFT_EYE[0]).all() and (clean_pts[:, 45, 0] > RIGHT_EYE[0]).all()
    assert np.abs(clean_pts[:, [36, 45], 1] - LEFT_EYE[1]).max() < 8
    iod = interocular(clean_pts)
    assert (iod > 38).all() and (iod < 60).all()
    # a single face is a batch of one
    np.testing.assert_array_equal(landmarks68(faces[0]), clean_pts[:1])


def test_clean_twice_gives_zero_error(faces, clean_pts):
    again = landmarks68(faces)
    err = landmark_errors(clean_pts, again)
    assert (err["nme"] == 0).all() and (err["nmse"] == 0).all()


def test_upsampling_keeps_112_frame_coordinates(faces, clean_pts):
    """The upsample offset is undone: upsample 1 and 2 agree to within about a pixel."""
    coarse = landmarks68(faces[:8], upsample=1)
    assert np.abs((coarse - clean_pts[:8]).mean(axis=(0, 1))).max() < 0.5
    assert np.linalg.norm(coarse - clean_pts[:8], axis=-1).mean() < 1.5


def test_points_shifted_2px_give_the_expected_error(clean_pts):
    err = landmark_errors(clean_pts, clean_pts + (2.0, 0.0))
    iod = interocular(clean_pts)
    np.testing.assert_allclose(err["nme"], 2 / iod)
    np.testing.assert_allclose(err["nmse"], 4 / iod**2)


def test_face_shifted_2px_moves_the_landmarks_2px(faces, clean_pts):
    """The predictor follows the image, not the fixed box: a 2 px shift costs about 2 / iod."""
    shifted = faces.copy()
    shifted[:, :, 2:] = faces[:, :, :-2]
    shifted[:, :, :2] = faces[:, :, :1]
    pts = landmarks68(shifted)
    disp = (pts - clean_pts).mean(1)  # per face, measured (2.0, -0.1) +- 0.15
    assert np.abs(disp[:, 0] - 2).max() < 0.5 and np.abs(disp[:, 1]).max() < 0.5
    ratio = landmark_errors(clean_pts, pts)["nme"] / (2 / interocular(clean_pts))
    assert 0.85 < np.median(ratio) < 1.15 and ratio.min() > 0.7 and ratio.max() < 1.5


def test_occluded_eyes_error_grows_with_the_rectangle(faces):
    small = evaluate_landmarks(faces, _occlude_eyes(faces, 56, 16))["occluded"]
    big = evaluate_landmarks(faces, _occlude_eyes(faces, 80, 30))["occluded"]
    # measured mean NME 0.047 and 0.060
    assert (small["nme"] > 0).all() and small["nme"].mean() > 0.02
    assert big["nme"].mean() > small["nme"].mean()
    assert big["nmse"].mean() > small["nmse"].mean()


def test_evaluate_landmarks(faces):
    occluded = _occlude_eyes(faces[:6], 56, 16)
    res = evaluate_landmarks(faces[:6], occluded, completed=faces[:6])
    assert set(res) == {"occluded", "completed"}
    for name in res:
        assert set(res[name]) == {"nme", "nmse"}
        assert res[name]["nme"].shape == (6,)
    assert (res["completed"]["nme"] == 0).all()  # a perfect completion
    assert res["occluded"]["nme"].mean() > 0
    assert set(evaluate_landmarks(faces[:2], faces[:2])) == {"occluded"}
    with pytest.raises(ValueError):
        evaluate_landmarks(faces[:3], faces[:2])
    with pytest.raises(ValueError):
        landmarks68(np.zeros((1, 150, 150, 3), np.uint8))


def test_face_box_derivation(photos):
    """The derivation on these photos lands near the hard-coded box (per-photo std ~5 px)."""
    boxes = derive_face_box(photos[:10])
    assert len(boxes) >= 9
    assert np.abs(boxes.mean(0) - np.array(FACE_BOX)).max() < 6
