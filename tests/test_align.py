"""Alignment to the 112x112 template and the aligned-face cache, on real LFW photos.

Every test that writes the cache points ``OCCBENCH_CACHE`` at its own temporary folder.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import occbench.align as align_mod
from occbench.align import (
    FRAMING_5,
    AlignResult,
    align_dataset,
    align_face,
    apply_transform,
    detect_landmarks5,
    framing_landmarks5,
    similarity_transform,
    warp_face,
)
from occbench.aligned_cache import AlignedCache, CachedFace, default_cache_path
from occbench.data.base import Dataset, Sample
from occbench.dlib_models import SHAPE_68, model_path, models_dir
from occbench.errors import DataError, OccbenchError
from occbench.imageio import read_rgb
from occbench.template import SIZE, TEMPLATE_5

N_REAL = 40
# An LFW photo in which the HOG detector finds no face centred in the frame (found by
# aligning all of LFW); its alignment must fall back to the framing.
NO_FACE_LFW = "Jon_Stewart/Jon_Stewart_0001.jpg"


def _dataset(name: str, root: Path, paths: list[Path]) -> Dataset:
    samples = [Sample(f"{name}/{p.parent.name}/{p.name}", p.parent.name, p) for p in paths]
    return Dataset(name, root, sorted(samples))


@pytest.fixture(scope="module")
def lfw_paths(lfw_root) -> list[Path]:
    """N_REAL photos spread evenly over LFW's sorted file list."""
    files = sorted(lfw_root.glob("*/*.jpg"))
    return files[:: len(files) // N_REAL][:N_REAL]


@pytest.fixture(scope="module")
def lfw_results(lfw_paths) -> list[tuple[np.ndarray, AlignResult]]:
    return [(img, align_face(img)) for img in (read_rgb(p) for p in lfw_paths)]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ----------------------------------------------------------------------------- geometry


def test_similarity_transform_hand_case():
    # (0,0)->(1,1) and (1,0)->(1,3): scale 2, rotation +90 degrees, translation (1, 1).
    m = similarity_transform([[0, 0], [1, 0]], [[1, 1], [1, 3]])
    np.testing.assert_allclose(m, [[0, -2, 1], [2, 0, 1]], atol=1e-12)


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 250, size=(5, 2))
    a, s, t = np.deg2rad(-17.0), 0.43, np.array([-12.5, 30.25])
    true = np.array([[s * np.cos(a), -s * np.sin(a), t[0]], [s * np.sin(a), s * np.cos(a), t[1]]])
    m = similarity_transform(src, apply_transform(true, src))
    np.testing.assert_allclose(m, true, atol=1e-10)


def test_similarity_transform_never_reflects():
    src = np.array([[0.0, 0], [1, 0], [0, 1]])
    m = similarity_transform(src, src * [-1, 1])  # a mirror image: best proper similarity
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError):
        similarity_transform([[1, 1], [1, 1]], [[0, 0], [1, 1]])


def test_warp_sends_a_point_where_the_transform_says():
    # A smooth blob at a sub-pixel position must land at m @ position (centroid to 0.05 px).
    yy, xx = np.mgrid[0:250, 0:250]
    c = np.array([130.3, 90.7])
    blob = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * 6.0**2))
    img = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    a, s = np.deg2rad(20.0), 0.5
    m = np.array([[s * np.cos(a), -s * np.sin(a), -5.0], [s * np.sin(a), s * np.cos(a), 3.0]])
    out = warp_face(img, m)
    assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8
    w = out[..., 0].astype(float) ** 2
    oy, ox = np.mgrid[0:SIZE, 0:SIZE]
    got = np.array([(w * ox).sum(), (w * oy).sum()]) / w.sum()
    np.testing.assert_allclose(got, apply_transform(m, [c])[0], atol=0.05)


def test_framing_fallback_scales_with_image_size():
    np.testing.assert_allclose(framing_landmarks5(250, 250), FRAMING_5)
    half = framing_landmarks5(125, 500)  # x scaled by 2, y by 0.5, about pixel centres
    np.testing.assert_allclose(half[:, 0], (FRAMING_5[:, 0] + 0.5) * 2 - 0.5)
    np.testing.assert_allclose(half[:, 1], (FRAMING_5[:, 1] + 0.5) * 0.5 - 0.5)


# ----------------------------------------------------------------------------- real faces


def test_real_lfw_faces_align_onto_template(lfw_results):
    faces = np.array([r.face for _, r in lfw_results])
    assert faces.shape == (N_REAL, SIZE, SIZE, 3) and faces.dtype == np.uint8
    flags = np.array([r.aligned for _, r in lfw_results])
    assert flags.sum() >= N_REAL - 2, f"only {flags.sum()} of {N_REAL} LFW photos had a face"
    for _, r in lfw_results:
        assert r.landmarks5.shape == (5, 2) and np.isfinite(r.landmarks5).all()
        # inside the frame, left eye left of the right eye, eyes above the mouth
        assert (r.landmarks5 >= 0).all() and (r.landmarks5 < 250).all()
        assert r.landmarks5[0, 0] < r.landmarks5[1, 0]
        assert r.landmarks5[:2, 1].max() < r.landmarks5[3:, 1].min()
        assert r.face.std() > 10  # a face, not a black frame


def test_eyes_land_on_template_after_warping(lfw_results):
    # The detected eye centres, mapped by the alignment, within ~3 px of the template's.
    errs = []
    for _, r in lfw_results:
        if r.aligned:
            m = similarity_transform(r.landmarks5, TEMPLATE_5)
            errs.append(np.linalg.norm(apply_transform(m, r.landmarks5[:2]) - TEMPLATE_5[:2], axis=1))
    errs = np.array(errs)
    assert np.median(errs) < 3.0, np.median(errs)
    assert errs.max() < 6.0, errs.max()


def test_eyes_redetected_in_warped_faces_sit_on_template(lfw_results):
    # Pixel-level check of the warp: the landmarks found again in the aligned face (x2 upscaled
    # for the detector) are where the template says.
    errs = []
    for _, r in lfw_results[:20]:
        if not r.aligned:
            continue
        big = np.asarray(Image.fromarray(r.face).resize((2 * SIZE, 2 * SIZE), Image.Resampling.BICUBIC))
        again = detect_landmarks5(big)
        assert again is not None, "no face found in an aligned face"
        errs.append(np.linalg.norm((again[:2] + 0.5) / 2 - 0.5 - TEMPLATE_5[:2], axis=1))
    assert np.median(errs) < 3.0, np.median(errs)
    assert np.max(errs) < 6.0, np.max(errs)


def test_framing_constants_agree_with_detections(lfw_results):
    lm = np.array([r.landmarks5 for _, r in lfw_results if r.aligned])
    assert np.abs(lm.mean(0) - FRAMING_5).max() < 5.0


def test_fallback_on_images_without_a_face(lfw_root):
    real = read_rgb(lfw_root / NO_FACE_LFW)
    r = align_face(real)
    assert r.aligned is False
    np.testing.assert_allclose(r.landmarks5, FRAMING_5)
    assert r.face.shape == (SIZE, SIZE, 3) and r.face.std() > 10
    noise = np.random.default_rng(0).integers(0, 256, size=(160, 120, 3), dtype=np.uint8)
    r = align_face(noise)
    assert r.aligned is False
    np.testing.assert_allclose(r.landmarks5, framing_landmarks5(160, 120))
    assert align_face(np.full((250, 250, 3), 128, np.uint8)).aligned is False


def test_align_face_rejects_non_rgb():
    with pytest.raises(ValueError):
        align_face(np.zeros((250, 250), np.uint8))
    with pytest.raises(ValueError):
        align_face(np.zeros((250, 250, 3), np.float32))


# ----------------------------------------------------------------------------- data sets + cache


def test_align_dataset_then_everything_from_cache(lfw_root, lfw_paths, lfw_results, cache_dir):
    ds = _dataset("lfw-test", lfw_root, lfw_paths)
    first = align_dataset(ds, workers=2, progress=False)
    assert (first.computed, first.hits, first.bad) == (N_REAL, 0, [])
    assert first.keys == [s.key for s in ds.samples]
    assert first.images.shape == (N_REAL, SIZE, SIZE, 3) and first.images.dtype == np.uint8
    assert default_cache_path("lfw-test").is_file()
    assert str(default_cache_path("lfw-test")).startswith(str(cache_dir))
    # same as aligning one by one (lfw_results is in lfw_paths order, as is the sorted ds)
    by_path = {str(p): r for p, (_, r) in zip(lfw_paths, lfw_results, strict=True)}
    for s, face, flag in zip(first.samples, first.images, first.aligned, strict=True):
        np.testing.assert_array_equal(face, by_path[str(s.path)].face)
        assert flag == by_path[str(s.path)].aligned

    second = align_dataset(ds, workers=2, progress=False)
    assert (second.computed, second.hits) == (0, N_REAL)  # no detection at all
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.landmarks5, first.landmarks5)
    np.testing.assert_array_equal(second.aligned, first.aligned)
    line = second.summary()
    assert f"{N_REAL} images" in line and f"cache hits {N_REAL}" in line and "computed 0" in line


def test_limit_resume_and_version_bump(lfw_root, lfw_paths, cache_dir, monkeypatch):
    ds = _dataset("lfw-test", lfw_root, lfw_paths[:8])
    part = align_dataset(ds, limit=3, workers=1, progress=False)
    assert len(part) == 3 and part.computed == 3
    rest = align_dataset(ds, workers=1, progress=False)  # resumes: only the 5 new ones
    assert (rest.hits, rest.computed) == (3, 5)
    monkeypatch.setattr(align_mod, "ALIGN_VERSION", "test-bump")
    bumped = align_dataset(ds, workers=1, progress=False)
    assert (bumped.hits, bumped.computed) == (0, 8)
    with AlignedCache(default_cache_path("lfw-test"), "test-bump") as cache:
        assert len(cache) == 8
        assert cache.drop_other_versions() == 8
        assert len(cache) == 8


def test_unreadable_files_are_listed_not_fatal(lfw_root, lfw_paths, tmp_path, cache_dir):
    good = lfw_paths[:3]
    broken = tmp_path / "Broken_Person"
    broken.mkdir()
    (broken / "Broken_Person_0001.jpg").write_bytes(good[0].read_bytes()[:600])  # truncated
    (broken / "Broken_Person_0002.jpg").write_bytes(b"")
    (broken / "Broken_Person_0003.jpg").write_bytes(b"not an image at all")
    missing = broken / "Broken_Person_0004.jpg"
    paths = good + sorted(broken.glob("*.jpg")) + [missing]
    ds = _dataset("lfw-test", lfw_root, paths)
    for run in (1, 2):  # the second run takes the good ones from the cache, still lists the bad
        faces = align_dataset(ds, workers=1, progress=False)
        assert len(faces) == 3 and faces.images.shape[0] == 3
        assert faces.hits == (0 if run == 1 else 3)
        expected = [f"lfw-test/Broken_Person/Broken_Person_000{i}.jpg" for i in (1, 2, 3, 4)]
        assert [b[0] for b in faces.bad] == expected
        assert faces.bad[3][1] == missing
        reasons = " | ".join(b[2] for b in faces.bad)
        assert "empty" in reasons and "not a readable image" in reasons and "cannot read" in reasons
        assert "unreadable 4" in faces.summary()
        with pytest.raises(DataError, match="unreadable"):
            faces.face("lfw-test/Broken_Person/Broken_Person_0002.jpg")


def test_subset_and_index(lfw_root, lfw_paths, cache_dir):
    faces = align_dataset(_dataset("lfw-test", lfw_root, lfw_paths[:6]), workers=1, progress=False)
    keys = faces.keys[::-2]
    sub = faces.subset(keys)
    assert sub.keys == keys and len(sub) == 3
    for k in keys:
        np.testing.assert_array_equal(sub.face(k), faces.images[faces.index[k]])
    with pytest.raises(DataError, match="not in the set"):
        faces.subset(["lfw-test/Nobody/Nobody_0001.jpg"])


def test_cache_ignores_malformed_rows(tmp_path):
    path = tmp_path / "c.sqlite"
    face = CachedFace(np.zeros((SIZE, SIZE, 3), np.uint8), np.zeros((5, 2)), True)
    with AlignedCache(path, "v") as cache:
        cache.put_many([("a" * 40, face)])
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO faces VALUES (?, 'v', ?, ?, 1)", ("b" * 40, b"short", b"x"))
    with AlignedCache(path, "v") as cache:
        assert set(cache.get_many(["a" * 40, "b" * 40, "c" * 40])) == {"a" * 40}
    with pytest.raises(ValueError):
        AlignedCache(path, "v").put_many([("d" * 40, CachedFace(np.zeros((2, 2, 3), np.uint8), np.zeros((5, 2)), True))])


def test_dlib_models_lookup(monkeypatch):
    assert model_path(SHAPE_68).is_file()
    with pytest.raises(OccbenchError, match="not found"):
        model_path("no_such_model.dat")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(OccbenchError, match="face-recognition-models"):
        models_dir()


def test_cnn_detector_aligns_like_hog_and_keys_its_own_cache(lfw_root, lfw_paths, lfw_results,
                                                              cache_dir):
    """dlib's CNN detector (for occluded faces) finds the same faces on clean LFW photos: the
    five points within a few pixels of the HOG pipeline's; its faces go to a cache version of
    their own, so no HOG-aligned face is reused for it or the other way round."""
    from occbench.align import detect_landmarks5

    paths = lfw_paths[:4]
    hog = {str(p): r for p, (_, r) in zip(lfw_paths, lfw_results, strict=True)}
    for p in paths:
        pts = detect_landmarks5(read_rgb(p), "cnn")
        if hog[str(p)].aligned:
            assert pts is not None and np.abs(pts - hog[str(p)].landmarks5).max() < 6
    ds = _dataset("lfw-test", lfw_root, paths)
    plain = align_dataset(ds, workers=1, progress=False)
    cnn = align_dataset(ds, workers=1, progress=False, detector="cnn")
    assert (plain.version, cnn.version) == ("1", "1-cnn") and cnn.computed == len(paths)
    assert "(align v1-cnn)" in cnn.summary()
    again = align_dataset(ds, workers=1, progress=False, detector="cnn")
    assert (again.hits, again.computed) == (len(paths), 0)
    ds.detector = "cnn"  # a data set may ask for it
    assert align_dataset(ds, workers=1, progress=False).version == "1-cnn"
    with pytest.raises(OccbenchError, match="unknown face detector 'mtcnn'"):
        align_dataset(ds, workers=1, progress=False, detector="mtcnn")
