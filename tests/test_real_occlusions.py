"""ROF and MFR2 readers (occbench.data.real_occlusions) on small copies built in tmp_path from
real LFW images, named as in the public snapshots; no download needed."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from occbench.data.pairs import Pair, dataset_pairs
from occbench.data.real_occlusions import (
    MFR2_FOLDS,
    ROF_CONDITIONS,
    load_mfr2,
    load_rof,
    mfr2_mask_types,
    normalise_rof_name,
    rof_condition,
)
from occbench.errors import ConfigError, DataError
from occbench.imageio import read_rgb


def test_normalise_rof_name_gives_one_lfw_style_name_per_person():
    for folder in ("joe_biden", "joe_biden_wearing_sunglasses", "joe_biden_wearing_mask",
                   "Joe_Biden", " joe_biden ", "joe__biden"):
        assert normalise_rof_name(folder) == "Joe_Biden", folder
    assert normalise_rof_name("samuel_l._jackson") == "Samuel_L_Jackson"
    assert normalise_rof_name("samuel_l._jackson_wearing_sunglasses") == "Samuel_L_Jackson"
    assert normalise_rof_name("robert_downey_jr_wearing_sunglasses") == "Robert_Downey_Jr"
    assert normalise_rof_name("t_j_miller") == "T_J_Miller"
    assert normalise_rof_name("neymar_wearing_mask") == "Neymar"
    assert normalise_rof_name("jean-claude_van_damme") == "Jean-Claude_Van_Damme"
    # ROF's misspellings, the same in every condition, are corrected
    assert normalise_rof_name("recep_tayip_erdogan_wearing_mask") == "Recep_Tayyip_Erdogan"
    assert normalise_rof_name("kamala_haris") == "Kamala_Harris"
    assert normalise_rof_name("immanuel_macron_wearing_sunglasses") == "Emmanuel_Macron"
    assert normalise_rof_name("_wearing_mask") == ""
    for name in ("George_W_Bush", "Samuel_L_Jackson", "Recep_Tayyip_Erdogan",
                 "Jean-Claude_Van_Damme"):
        assert normalise_rof_name(name) == name


def test_rof_condition_of_a_key():
    assert rof_condition("rof-masked/joe_biden_wearing_mask/000001.jpg") == "masked"
    assert rof_condition("rof-sunglasses/neymar_wearing_sunglasses/000013.jpg") == "sunglasses"
    assert rof_condition("rof-neutral/neymar/000003.jpg") == "neutral"
    for key in ("lfw/AJ_Cook/AJ_Cook_0001.jpg", "rof-glasses/x/000001.jpg", "rof-masked",
                "mfr2/ZacEfron/ZacEfron_0001.png"):
        with pytest.raises(ConfigError, match="is not an ROF image key"):
            rof_condition(key)


def test_rof_unknown_condition_and_missing_folders(tmp_path):
    with pytest.raises(ConfigError, match="unknown ROF condition 'glasses'; "
                                          "known: neutral, sunglasses, masked"):
        load_rof(tmp_path, "glasses")
    rof = tmp_path / "ROF"
    with pytest.raises(DataError, match=re.escape(f"{rof}: no ROF folder; to get it, ")
                       + ".*leen-coding/Dissertation"):
        load_rof(tmp_path, "neutral")
    (rof / "neutral").mkdir(parents=True)
    with pytest.raises(DataError, match=re.escape(f"{rof / 'masked'}: no ROF masked folder")):
        load_rof(tmp_path, "masked")
    with pytest.raises(DataError, match=re.escape(f"{rof / 'neutral'}: no images in <person>/")):
        load_rof(tmp_path, "neutral")
    (rof / "neutral" / "_wearing_mask").mkdir()
    with pytest.raises(DataError, match=re.escape(f"{rof / 'neutral' / '_wearing_mask'}: "
                                                  "the folder name holds no person's name")):
        load_rof(tmp_path, "neutral")


def test_mfr2_missing_folder_names_it(tmp_path):
    for read in (load_mfr2, mfr2_mask_types):
        with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'mfr2'}: no mfr2 folder; "
                                                      "to get it, ") + ".*mfr2"):
            read(tmp_path)


# ---- small copies of the snapshots, from real LFW images ---------------------------------

@pytest.fixture
def lfw_jpegs(data_root):
    """Six real LFW JPEGs: the first ones in sorted order, at most two a person."""
    jpegs = []
    for person in sorted((data_root / "lfw").iterdir()):
        if person.is_dir():
            jpegs += sorted(person.glob("*.jpg"))[:2]
        if len(jpegs) >= 6:
            break
    assert len(jpegs) >= 6
    return jpegs[:6]


# ROF/<condition>/<person folder>/<file>, file numbers with gaps as in the snapshot
ROF_LAYOUT = {
    "neutral": {"joe_biden": ["000001.jpg", "000002.jpg", "000004.jpg"],
                "neymar": ["000003.jpg"],
                "recep_tayip_erdogan": ["000001.jpg"],
                "samuel_l._jackson": ["000001.jpg", "000002.jpg"]},
    "sunglasses": {"joe_biden_wearing_sunglasses": ["000001.jpg", "000002.jpg"],
                   "samuel_l._jackson_wearing_sunglasses": ["000005.jpg"]},
    "masked": {"joe_biden_wearing_mask": ["000001.jpg"],
               "recep_tayip_erdogan_wearing_mask": ["000002.jpg", "000003.jpg"]},
}


@pytest.fixture
def rof_root(lfw_jpegs, tmp_path):
    """ROOT with ROF/ laid out as :data:`ROF_LAYOUT`, plus what must not be read: the
    snapshot's random pairs file, a hidden folder, a hidden file and a text file."""
    i = 0
    for condition, people in ROF_LAYOUT.items():
        for folder, files in people.items():
            dst = tmp_path / "ROF" / condition / folder
            dst.mkdir(parents=True)
            for name in files:
                shutil.copy(lfw_jpegs[i % len(lfw_jpegs)], dst / name)
                i += 1
    (tmp_path / "ROF" / "mask_pairs.txt").write_text(
        "joe_biden_wearing_mask 000001.jpg 000001.jpg\n")
    (tmp_path / "ROF" / "neutral" / "joe_biden" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "ROF" / "neutral" / "joe_biden" / "notes.txt").write_text("not an image\n")
    hidden = tmp_path / "ROF" / "neutral" / ".trash"
    hidden.mkdir()
    shutil.copy(lfw_jpegs[0], hidden / "000001.jpg")
    return tmp_path


def test_rof_keys_identities_and_counts(rof_root):
    sets = {}
    for condition, people in ROF_LAYOUT.items():
        ds = load_rof(rof_root, condition)
        folder = rof_root / "ROF" / condition
        assert ds.name == f"rof-{condition}" and ds.root == folder
        assert [s.key for s in ds.samples] == sorted(
            f"rof-{condition}/{person}/{f}" for person, files in people.items() for f in files)
        assert [s.path for s in ds.samples] == [folder / s.key.split("/", 1)[1]
                                                for s in ds.samples]
        assert {rof_condition(s.key) for s in ds.samples} == {condition}
        assert ds.pairs is None and ds.pairs_file is None and ds.notes == []
        sets[condition] = ds
    assert [len(sets[c]) for c in ROF_CONDITIONS] == [7, 3, 3]
    assert sets["neutral"].identities == ["Joe_Biden", "Neymar", "Recep_Tayyip_Erdogan",
                                          "Samuel_L_Jackson"]
    assert sets["sunglasses"].identities == ["Joe_Biden", "Samuel_L_Jackson"]
    assert sets["masked"].identities == ["Joe_Biden", "Recep_Tayyip_Erdogan"]
    biden = {c: sum(s.identity == "Joe_Biden" for s in ds) for c, ds in sets.items()}
    assert biden == {"neutral": 3, "sunglasses": 2, "masked": 1}
    assert read_rgb(sets["masked"].samples[0].path).ndim == 3


def test_rof_folder_without_the_condition_suffix_is_read_with_a_note(rof_root, lfw_jpegs):
    dst = rof_root / "ROF" / "masked" / "kamala_haris"
    dst.mkdir()
    shutil.copy(lfw_jpegs[0], dst / "000001.jpg")
    ds = load_rof(rof_root, "masked")
    assert len(ds) == 4 and ds.identities == ["Joe_Biden", "Kamala_Harris",
                                              "Recep_Tayyip_Erdogan"]
    assert ds.notes == ["1 folders without the _wearing_mask suffix: kamala_haris"]


def test_normalised_rof_names_are_lfw_names(data_root):
    for folder in ("robert_downey_jr_wearing_sunglasses", "recep_tayip_erdogan_wearing_mask",
                   "colin_farell", "arnold_schwarzenegger_wearing_sunglasses",
                   "serena_williams_wearing_mask"):
        assert (data_root / "lfw" / normalise_rof_name(folder)).is_dir(), folder


MFR2_PEOPLE = {"AdrianDunbar": 3, "JaredPolis": 10, "ZacEfron": 2}
# MFR2's pairs.txt: no header, same- and different-person lines mixed, numbers unpadded
PAIRS_TXT = """\
AdrianDunbar 1 2
JaredPolis 2 ZacEfron 1
JaredPolis 1 10
AdrianDunbar 3 JaredPolis 9
ZacEfron 1 2
ZacEfron 2 AdrianDunbar 1
JaredPolis 3 4
JaredPolis 5 AdrianDunbar 2
AdrianDunbar 2 3
ZacEfron 1 JaredPolis 10
JaredPolis 6 8
AdrianDunbar 1 ZacEfron 2
"""
LABELS_TXT = """\
AdrianDunbar, 1, surgical_blue
AdrianDunbar, 2, no-mask

AdrianDunbar, 3, cloth
JaredPolis, 10, no-mask
ZacEfron, 1, KN95
ZacEfron, 1, KN95
"""


def _key(name: str, k: int) -> str:
    return f"mfr2/{name}/{name}_{k:04d}.png"


@pytest.fixture
def mfr2_root(lfw_jpegs, tmp_path):
    """ROOT with mfr2/<Name>/<Name>_NNNN.png (160x160 PNGs re-encoded from LFW JPEGs),
    mfr2/pairs.txt and mfr2/mfr2_labels.txt."""
    from PIL import Image

    base = tmp_path / "mfr2"
    i = 0
    for name, count in MFR2_PEOPLE.items():
        (base / name).mkdir(parents=True)
        for k in range(1, count + 1):
            with Image.open(lfw_jpegs[i % len(lfw_jpegs)]) as img:
                img.convert("RGB").resize((160, 160)).save(base / name / f"{name}_{k:04d}.png")
            i += 1
    (base / "pairs.txt").write_text(PAIRS_TXT)
    (base / "mfr2_labels.txt").write_text(LABELS_TXT)
    return tmp_path


def test_mfr2_images_pairs_and_folds(mfr2_root):
    ds = load_mfr2(mfr2_root)
    assert ds.name == "mfr2" and ds.root == mfr2_root / "mfr2"
    assert [s.key for s in ds.samples] == sorted(
        _key(name, k) for name, count in MFR2_PEOPLE.items() for k in range(1, count + 1))
    assert len(ds) == 15 and ds.identities == ["AdrianDunbar", "JaredPolis", "ZacEfron"]
    assert read_rgb(ds.samples[0].path).shape == (160, 160, 3)
    pairs = dataset_pairs(ds)
    assert pairs is ds.pairs and len(pairs) == 12
    assert pairs[0] == Pair(_key("AdrianDunbar", 1), _key("AdrianDunbar", 2), True, 0)
    assert pairs[1] == Pair(_key("JaredPolis", 2), _key("ZacEfron", 1), False, 0)
    assert pairs[2] == Pair(_key("JaredPolis", 1), _key("JaredPolis", 10), True, 1)
    assert [p.same for p in pairs] == [True, False] * 6
    # 12 pairs in 10 contiguous folds: the first two folds hold two pairs
    assert [p.fold for p in pairs] == [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert ds.notes == ["pairs.txt: 12 pairs (6 same-person) in 10 contiguous folds"]


def test_mfr2_folds_of_the_public_file_size(mfr2_root):
    lines = ["AdrianDunbar 1 2", "JaredPolis 3 ZacEfron 2"] * 424
    (mfr2_root / "mfr2" / "pairs.txt").write_text("\n".join(lines) + "\n")
    pairs = load_mfr2(mfr2_root).pairs
    assert len(pairs) == 848 and sum(p.same for p in pairs) == 424
    assert list(np.bincount([p.fold for p in pairs])) == [85] * 8 + [84] * 2
    assert MFR2_FOLDS == 10


def test_mfr2_pairs_equal_names_and_self_pairs(mfr2_root):
    (mfr2_root / "mfr2" / "pairs.txt").write_text(
        "ZacEfron 1 ZacEfron 2\nZacEfron 1 1\nZacEfron 1 JaredPolis 1\n")
    ds = load_mfr2(mfr2_root)
    assert [p.same for p in ds.pairs] == [True, True, False]
    assert [p.fold for p in ds.pairs] == [0, 1, 2]
    assert ds.notes[-1] == "pairs.txt: 1 pairs compare an image with itself"


def test_mfr2_malformed_pairs_are_named(mfr2_root):
    pairs = mfr2_root / "mfr2" / "pairs.txt"
    cases = {
        "AdrianDunbar 1 2\nAdrianDunbar 1\n":
            f"{pairs}:2: expected 'name i j' (same person) or 'name1 i name2 j'",
        "AdrianDunbar 1 2 ZacEfron 1 2\n": f"{pairs}:1: expected 'name i j'",
        "AdrianDunbar one 2\n": f"{pairs}:1: image number 'one' is not a positive integer",
        "AdrianDunbar 0 2\n": f"{pairs}:1: image number '0' is not a positive integer",
        "AdrianDunbar 1 2\n\nAdrianDunbar 1 4\n":
            f"{pairs}:3: image {_key('AdrianDunbar', 4)} is not in the MFR2 data set "
            f"({mfr2_root / _key('AdrianDunbar', 4)} does not exist)",
        "AdrianDunbar 1 Nobody 1\n": f"{pairs}:1: image {_key('Nobody', 1)} is not in the MFR2",
        "\n\n": f"{pairs}: no pairs",
    }
    for text, message in cases.items():
        pairs.write_text(text)
        with pytest.raises(DataError, match=re.escape(message)):
            load_mfr2(mfr2_root)
    pairs.unlink()
    with pytest.raises(DataError, match=re.escape(f"{pairs}: file not found; to get it")):
        load_mfr2(mfr2_root)


def test_mfr2_mask_types(mfr2_root):
    assert mfr2_mask_types(mfr2_root) == {
        _key("AdrianDunbar", 1): "surgical_blue",
        _key("AdrianDunbar", 2): "no-mask",
        _key("AdrianDunbar", 3): "cloth",
        _key("JaredPolis", 10): "no-mask",
        _key("ZacEfron", 1): "KN95",
    }
    keys = set(load_mfr2(mfr2_root).by_key())
    assert set(mfr2_mask_types(mfr2_root)) <= keys


def test_mfr2_malformed_labels_are_named(mfr2_root):
    labels = mfr2_root / "mfr2" / "mfr2_labels.txt"
    cases = {
        "AdrianDunbar, 1, cloth\nAdrianDunbar 2 no-mask\n":
            f"{labels}:2: expected '<Name>, <image number>, <mask type>'",
        "AdrianDunbar, 1\n": f"{labels}:1: expected '<Name>, <image number>, <mask type>'",
        "AdrianDunbar, 1, \n": f"{labels}:1: expected '<Name>, <image number>, <mask type>'",
        "identity, image, mask\n": f"{labels}:1: image number 'image' is not a positive",
        "AdrianDunbar, 7, no-mask\n":
            f"{labels}:1: labelled image {mfr2_root / _key('AdrianDunbar', 7)} does not exist",
        "AdrianDunbar, 1, cloth\n\nAdrianDunbar, 1, no-mask\n":
            f"{labels}:3: {_key('AdrianDunbar', 1)} is labelled again with another mask type",
        "\n": f"{labels}: labels no images",
    }
    for text, message in cases.items():
        labels.write_text(text)
        with pytest.raises(DataError, match=re.escape(message)):
            mfr2_mask_types(mfr2_root)
    labels.unlink()
    with pytest.raises(DataError, match=re.escape(f"{labels}: file not found; to get it")):
        mfr2_mask_types(mfr2_root)


def test_data_check_reports_the_real_occlusion_sets(rof_root, mfr2_root, tmp_path):
    """``occbench data check`` lists ROF's three conditions and MFR2 (counts, pairs, mask
    types), and says how to get a set that is absent."""
    from occbench.data.check import check_data

    sets = ("rof:neutral", "rof:sunglasses", "rof:masked", "mfr2")
    report = {s.name: s for s in check_data(tmp_path, sets=sets, workers=1,
                                             progress=False).sets}
    assert [(report[s].images, report[s].identities) for s in sets] == [(7, 4), (3, 2), (3, 2),
                                                                        (15, 3)]
    assert all(r.present and not r.problem and not r.unreadable for r in report.values())
    assert report["mfr2"].notes[-1] == "mfr2_labels.txt: 3 of 5 images masked (3 mask types)"
    (absent,) = check_data(tmp_path / "empty", sets=("rof:masked",), progress=False).sets
    assert not absent.present and "leen-coding/Dissertation" in absent.notes[0]


def test_mfr2_aligns_with_a_border_and_its_own_fallback_framing(mfr2_root, tmp_path):
    """The crops are detected with MFR2_PAD of border; a crop with no face (here one made
    grey) gets MFR2's own mean points, not LFW's framing, and the framing keys the cache."""
    from PIL import Image

    from occbench.align import align_dataset, framing_landmarks5, similarity_transform, warp_face
    from occbench.data.real_occlusions import MFR2_FRAMING_5, MFR2_PAD
    from occbench.template import TEMPLATE_5

    blank = mfr2_root / "mfr2" / "ZacEfron" / "ZacEfron_0001.png"
    Image.new("RGB", (160, 160), (128, 128, 128)).save(blank)
    ds = load_mfr2(mfr2_root)
    assert ds.pad == MFR2_PAD
    faces = align_dataset(ds, workers=1, progress=False, cache_path=tmp_path / "m.sqlite")
    assert "-pad0.25-framing" in faces.version
    other = load_mfr2(mfr2_root)
    other.framing5 = np.asarray(MFR2_FRAMING_5) + 1.0  # other fallback points: another key
    again = align_dataset(other, workers=1, progress=False, cache_path=tmp_path / "m.sqlite")
    assert again.version != faces.version and again.computed == len(faces)
    row = [s.key for s in faces.samples].index(_key("ZacEfron", 1))
    assert faces.aligned.sum() == len(faces) - 1 and not faces.aligned[row]
    np.testing.assert_allclose(faces.landmarks5[row], MFR2_FRAMING_5, atol=1e-9)
    gray = np.full((160, 160, 3), 128, np.uint8)
    want = warp_face(gray, similarity_transform(np.array(MFR2_FRAMING_5), TEMPLATE_5))
    np.testing.assert_array_equal(faces.images[row], want)
    assert not np.allclose(MFR2_FRAMING_5, framing_landmarks5(160, 160), atol=5)
