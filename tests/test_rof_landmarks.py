"""Given five-point landmarks for ROF's crops (occbench.data.rof_landmarks) and the ``given``
detector: hand cases of the crop-to-annotation match, the annotation and landmark files'
errors, and (slow) the whole chain on crops cut from real LFW photos the way the ROF release's
download.py cuts them: the crops aligned from the matched points are the photos' own
alignment."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occbench.data.given_landmarks import LANDMARKS_FILE, read_landmarks, write_landmarks
from occbench.data.rof_landmarks import Face, match_condition, match_person, read_annotations
from occbench.errors import ConfigError, DataError

PTS = np.arange(10, dtype=np.float64).reshape(5, 2)


def _faces(*boxes):
    return [Face(tuple(b), PTS) for b in boxes]


def test_match_skips_faces_without_a_crop_and_prefers_exact_sizes():
    faces = _faces((0, 0, 30, 40), (5, 5, 50, 60), (1, 1, 30, 40), (2, 2, 70, 80))
    # face 1 failed to download: crops are faces 0, 2, 3
    assert match_person([(30, 40), (30, 40), (70, 80)], faces) == [0, 2, 3]
    # a crop cut at the image's right edge is smaller than its box
    assert match_person([(30, 40), (45, 60)], faces) == [0, 1]
    # an exact size wins over a smaller one: (30, 40) fits face 1 too, but face 2 exactly
    assert match_person([(30, 40), (30, 40)], faces) == [0, 2]
    # a crop larger than every box left, or more crops than faces: no match
    assert match_person([(90, 90)], faces) is None
    assert match_person([(30, 40)] * 5, faces) is None
    # a box off the image's left / top edge gives no crop (download.py's slice is empty)
    assert match_person([(30, 40)], _faces((-3, 0, 30, 40))) is None
    # an unreadable crop (size unknown: 0, 0) keeps its place in the order
    assert match_person([(30, 40), (0, 0), (70, 80)], faces) == [0, 1, 3]


def _pickle(tmp_path, obj, name="person.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj))
    return path


def test_annotations_in_both_layouts(tmp_path):
    marks = {"left_eye": [1, 2], "right_eye": [3, 4], "nose": [5, 6], "mouth_left": [7, 8],
             "mouth_right": [9, 10]}
    obj = {"7": {"url": "u", "faces": [{"box": [10, 20, 30, 40], **marks}]},
           "3": {"url": "v", "faces": [{"box": [1, 2, 3, 4], "confidence": np.float64(0.9),
                                        "keypoints": {k: tuple(np.float32(x) for x in v)
                                                      for k, v in marks.items()}}]}}
    faces = read_annotations(_pickle(tmp_path, obj))
    assert [f.box for f in faces] == [(10, 20, 30, 40), (1, 2, 3, 4)]  # the pickle's order
    for f in faces:
        np.testing.assert_array_equal(f.points, np.arange(1, 11).reshape(5, 2))


@pytest.mark.parametrize("obj, message", [
    ({"1": {"faces": [{"box": Path("x")}]}}, "not an ROF annotation pickle .refusing to load"),
    ([1, 2], "expected a dict of images, got list"),
    ({"1": {"faces": [{"box": [1, 2, 3, 4], "left_eye": [1, 2]}]}},
     "image '1': malformed face annotation"),
    ({"1": {"faces": np.zeros(3)}}, "image '1': malformed face annotation"),
    ({"1": {"faces": [{"box": [float("inf"), 2, 3, 4]}]}}, "image '1': malformed face annotation"),
])
def test_bad_annotation_files_are_named(tmp_path, obj, message):
    with pytest.raises(DataError, match=message) as info:
        read_annotations(_pickle(tmp_path, obj))
    assert "person.pkl" in str(info.value)


def test_landmark_file_round_trip_and_errors(tmp_path):
    points = {"a_wearing_mask/000002.jpg": PTS + 0.25, "a_wearing_mask/000001.jpg": PTS}
    path = write_landmarks(tmp_path / LANDMARKS_FILE, points, "a test")
    back = read_landmarks(path)
    assert list(back) == sorted(points)
    for key in points:
        np.testing.assert_allclose(back[key], points[key], atol=0.005)
    path.write_text("x/1.jpg\t1 2 3\n")
    with pytest.raises(DataError, match=r"landmarks5.tsv:1: expected .* 10 numbers"):
        read_landmarks(path)
    path.write_text("x/1.jpg\t" + " 1" * 10 + "\nx/1.jpg\t" + " 2" * 10 + "\n")
    with pytest.raises(DataError, match=r"landmarks5.tsv:2: x/1.jpg is given twice"):
        read_landmarks(path)


# ---- the whole chain on real photos ------------------------------------------------------

# (box of each crop in its 250x250 LFW photo: x, y, width, height); the second photo's box
# runs over its right edge, so its crop is cut there (as download.py cuts it)
BOXES = [(40, 30, 170, 190), (50, 35, 200, 180), (35, 40, 175, 170)]


@pytest.fixture
def chain(data_root, tmp_path):
    """ROOT/ROF/masked/<person>_wearing_mask/00000k.jpg: crops of three LFW photos of one
    person, and the official pickle: an image that failed to download first, then the three
    faces with the five points dlib finds on the whole photos."""
    from occbench.align import detect_landmarks5
    from occbench.imageio import read_rgb

    photos = sorted((data_root / "lfw" / "George_W_Bush").glob("*.jpg"))[:3]
    folder = tmp_path / "data" / "ROF" / "masked" / "george_w_bush_wearing_mask"
    folder.mkdir(parents=True)
    official = tmp_path / "official" / "ROF" / "masked"
    official.mkdir(parents=True)
    obj = {"0": {"url": "failed", "faces": [{"box": [0, 0, 99, 99], **_marks(PTS)}]}}
    points = []
    for k, (photo, (x, y, w, h)) in enumerate(zip(photos, BOXES, strict=True), start=1):
        image = read_rgb(photo)
        found = detect_landmarks5(image)
        assert found is not None
        points.append(found)
        crop = image[y: min(y + h, image.shape[0] - 1), x: min(x + w, image.shape[1] - 1)]
        Image.fromarray(crop).save(folder / f"{k:06d}.jpg", quality=95)
        obj[str(k)] = {"url": str(k), "faces": [{"box": [x, y, w, h], **_marks(found)}]}
    (official / "george_w_bush_wearing_mask.pkl").write_bytes(pickle.dumps(obj))
    return tmp_path, photos, points


def _marks(points):
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    return {n: [float(v) for v in p] for n, p in zip(names, points, strict=True)}


def test_given_landmarks_align_the_crops_as_the_photos(chain, tmp_path, monkeypatch):
    from occbench.align import align_dataset, align_face
    from occbench.cli import main
    from occbench.data.real_occlusions import load_rof
    from occbench.imageio import read_rgb

    root, photos, points = chain
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    code = main(["data", "rof-landmarks", "--data", str(root / "data"),
                 "--official", str(root / "official")])
    assert code == 0
    given, counts = match_condition(root / "official" / "ROF" / "masked",
                                    root / "data" / "ROF" / "masked")
    assert counts == {"images": 3, "matched": 3, "people": 1, "people_matched": 1,
                      "exact": 2, "no_pickle": 0}
    ds = load_rof(root / "data", "masked")
    assert ds.detector == "given" and len(ds.landmarks5) == 3
    assert "given five points for 3 of 3 images" in ds.notes[-1]
    for (x, y, _, _), s, p in zip(BOXES, ds.samples, points, strict=True):
        np.testing.assert_allclose(ds.landmarks5[s.key], p - [x, y], atol=0.005)
    faces = align_dataset(ds, workers=1, progress=False, cache_path=tmp_path / "a.sqlite")
    assert faces.aligned.all() and "-given-" in faces.version
    for s, used in zip(ds.samples, faces.landmarks5, strict=True):
        assert np.array_equal(used, ds.landmarks5[s.key])  # warped from, not detected
    for face, photo in zip(faces.images, photos, strict=True):
        whole = align_face(read_rgb(photo)).face  # the photo aligned with dlib's points
        assert np.abs(face.astype(int) - whole.astype(int)).mean() < 3  # JPEG re-encoding
    # HOG instead: its own cache version; 'given' on a set without points is refused
    hog = align_dataset(ds, workers=1, progress=False, cache_path=tmp_path / "a.sqlite",
                        detector="hog")
    assert "given" not in hog.version and hog.computed == 3
    ds.landmarks5 = None
    with pytest.raises(ConfigError, match="gives no five-point landmarks"):
        align_dataset(ds, workers=1, progress=False, cache_path=tmp_path / "a.sqlite",
                      detector="given")


def test_any_folder_set_may_give_its_landmarks(tmp_path):
    """``folder:NAME`` reads ``NAME/landmarks5.tsv`` as ROF's sets do: the points of the
    images it names, detector ``given``, a note; lines naming no image are counted."""
    from occbench.data import load_dataset

    for person in ("ann", "bob"):
        (tmp_path / "mine" / person).mkdir(parents=True)
        Image.new("RGB", (40, 50), (90, 90, 90)).save(tmp_path / "mine" / person / "1.png")
    write_landmarks(tmp_path / "mine" / LANDMARKS_FILE,
                    {"ann/1.png": PTS, "zed/9.png": PTS + 1}, "a test")
    ds = load_dataset("folder:mine", tmp_path)
    assert ds.detector == "given" and list(ds.landmarks5) == ["mine/ann/1.png"]
    np.testing.assert_allclose(ds.landmarks5["mine/ann/1.png"], PTS)
    assert ds.notes[-1] == ("landmarks5.tsv: given five points for 1 of 2 images (alignment: "
                            "detector 'given'; the rest HOG); 1 lines name no image of the set")
    # a file that covers none of the images: detection stays as it was
    write_landmarks(tmp_path / "mine" / LANDMARKS_FILE, {"zed/9.png": PTS}, "a test")
    ds = load_dataset("folder:mine", tmp_path)
    assert ds.detector == "hog" and ds.landmarks5 == {}
    (tmp_path / "mine" / LANDMARKS_FILE).unlink()
    assert load_dataset("folder:mine", tmp_path).detector == "hog"


def test_rof_landmarks_with_nothing_to_match_writes_nothing(tmp_path, capsys):
    from occbench.cli import main

    crop = tmp_path / "data" / "ROF" / "masked" / "ann_wearing_mask"
    crop.mkdir(parents=True)
    Image.new("RGB", (30, 40)).save(crop / "000001.jpg")
    (tmp_path / "official" / "ROF" / "masked").mkdir(parents=True)  # no pickles
    assert main(["data", "rof-landmarks", "--data", str(tmp_path / "data"),
                 "--official", str(tmp_path / "official")]) == 0
    out = capsys.readouterr().out
    assert "masked: no crop matched an annotated face (1 images, 1 of 1 people without a " \
           "pickle); nothing written" in out
    assert not (crop.parent / LANDMARKS_FILE).exists()
