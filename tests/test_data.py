"""Data readers, pairs.txt and `occbench data check` on the real data, and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from occbench.cli import main
from occbench.data import load_dataset
from occbench.data.check import check_data
from occbench.data.pairs import (
    overlapping_identities,
    read_exclusion_list,
    read_pairs,
    remove_identities,
)
from occbench.data.readers import load_megaface, megaface_lists
from occbench.errors import ConfigError, DataError
from occbench.imageio import read_rgb
from tests._cli import occbench_subprocess


def test_real_sets_have_the_documented_sizes(data_root):
    for name, images, people in (("lfw", 13233, 5749), ("facescrub", 1622, 12),
                                 ("celeba", 5797, 250)):
        ds = load_dataset(name, data_root)
        assert (len(ds), len(ds.identities)) == (images, people)
        keys = [s.key for s in ds.samples]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert all(k.startswith(f"{name}/") for k in keys)
    assert load_dataset("lfw", data_root).samples[0].key == "lfw/AJ_Cook/AJ_Cook_0001.jpg"


def test_pairs_txt(data_root):
    lfw = load_dataset("lfw", data_root)
    pairs = read_pairs(data_root / "lfw" / "pairs.txt", lfw)
    assert len(pairs) == 6000 and sum(p.same for p in pairs) == 3000
    assert [sum(p.fold == f for p in pairs) for f in range(10)] == [600] * 10
    first = pairs[0]
    assert (first.key1, first.key2, first.same, first.fold) == (
        "lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg", "lfw/Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 0)
    assert not pairs[300].same and pairs[300].key1.split("/")[1] != pairs[300].key2.split("/")[1]


def test_facescrub_lfw_overlap_is_the_documented_seven(data_root):
    fs, lfw = load_dataset("facescrub", data_root), load_dataset("lfw", data_root)
    names = overlapping_identities(fs, lfw)
    assert names == {"Alec_Baldwin", "Daniel_Radcliffe", "Fran_Drescher", "Gerard_Butler",
                     "Lorraine_Bracco", "Peri_Gilpin", "Kristin_Chenoweth"}
    dis = remove_identities(lfw, names)
    assert len(lfw) - len(dis) == 4 + 4 + 2 + 1 + 1 + 1 + 1
    assert dis.notes[-1].startswith("removed 14 images of 7 people: Alec_Baldwin, ")
    assert len(lfw) == 13233 and not lfw.notes  # the input is left alone


def test_overlap_ignores_case_and_gives_the_second_sets_spelling():
    from occbench.data.base import Dataset, Sample

    def ds(*names):
        return Dataset("x", Path("."), [Sample(f"x/{n}/{i}", n, Path(".")) for i, n in
                                         enumerate(names)])

    rof = ds("Leonardo_Dicaprio", "Joe_Biden", "Neymar")
    lfw = ds("Leonardo_DiCaprio", "Leonardo_DiCaprio", "Joe_Biden", "Anna_Kournikova")
    assert overlapping_identities(rof, lfw) == {"Leonardo_DiCaprio", "Joe_Biden"}
    assert overlapping_identities(lfw, rof) == {"Leonardo_Dicaprio", "Joe_Biden"}
    assert len(remove_identities(lfw, overlapping_identities(rof, lfw))) == 1


def test_check_real_facescrub(data_root):
    report = check_data(data_root, sets=("facescrub",), workers=1, progress=False)
    (fs,) = report.sets
    assert report.ok, report.render()
    assert (fs.images, fs.identities, fs.per_identity) == (1622, 12, (89, 136.5, 173))
    assert "facescrub      1622      12  89 / 136.5 / 173" in report.render()


def test_unknown_set_lists_known_ones(data_root):
    with pytest.raises(ConfigError, match="known: .*celeba.*lfw"):
        load_dataset("vggface2", data_root)


# ---- broken inputs, built in tmp_path from a few real images ------------------------------

@pytest.fixture
def mini_root(data_root, tmp_path):
    """A data root with 2 LFW people (3 real images) and a valid 1-fold pairs.txt."""
    for person in ("Aaron_Peirsol", "Abdullah_Gul"):
        dst = tmp_path / "lfw" / person
        dst.mkdir(parents=True)
        for src in sorted((data_root / "lfw" / person).glob("*.jpg"))[:2]:
            shutil.copy(src, dst / src.name)
    (tmp_path / "lfw" / "pairs.txt").write_text(
        "1 1\nAaron_Peirsol 1 2\nAaron_Peirsol 1 Abdullah_Gul 2\n")
    return tmp_path


def test_mini_root_is_clean(mini_root):
    assert len(read_pairs(mini_root / "lfw" / "pairs.txt", load_dataset("lfw", mini_root))) == 2
    report = check_data(mini_root, sets=("lfw",), progress=False)
    assert report.ok, report.render()


def test_corrupt_and_truncated_images_are_named(mini_root):
    img = next((mini_root / "lfw" / "Aaron_Peirsol").glob("*.jpg"))
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 3])  # truncated JPEG
    with pytest.raises(DataError, match=str(img)):
        read_rgb(img)
    garbage = mini_root / "lfw" / "Abdullah_Gul" / "Abdullah_Gul_0009.jpg"
    garbage.write_bytes(b"this is not a jpeg")
    report = check_data(mini_root, sets=("lfw",), progress=False)
    assert not report.ok
    text = report.render()
    assert str(img) in text and str(garbage) in text and "PROBLEMS FOUND" in text


def test_malformed_pairs_line_is_named(mini_root):
    pairs = mini_root / "lfw" / "pairs.txt"
    pairs.write_text("1 1\nAaron_Peirsol 1\nAaron_Peirsol 1 Abdullah_Gul 2\n")
    with pytest.raises(DataError, match=r"pairs.txt:2: expected 'name i j'"):
        read_pairs(pairs)
    pairs.write_text("1 1\nAaron_Peirsol 1 7\nAaron_Peirsol 1 Abdullah_Gul 2\n")
    with pytest.raises(DataError, match=r"pairs.txt:2: image lfw/Aaron_Peirsol/Aaron_Peirsol_0007"):
        read_pairs(pairs, load_dataset("lfw", mini_root))
    pairs.write_text("1 1\nAaron_Peirsol 0 2\nAaron_Peirsol 1 Abdullah_Gul 2\n")
    with pytest.raises(DataError, match=r"pairs.txt:2: image number '0' is not a positive"):
        read_pairs(pairs)
    pairs.write_text("1 2\nAaron_Peirsol 1 2\nAaron_Peirsol 1 Abdullah_Gul 2\n")
    with pytest.raises(DataError, match="header promises 1 folds x 4 pairs = 4 lines, found 2"):
        read_pairs(pairs)
    pairs.write_text("ten 300\n")
    with pytest.raises(DataError, match="pairs.txt:1: expected header"):
        read_pairs(pairs)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "lfw").mkdir()
    with pytest.raises(DataError, match="no images in <identity>/ sub-folders; to get it, .*"
                                        "lfw-deepfunneled.tgz"):
        load_dataset("lfw", tmp_path)
    with pytest.raises(DataError, match="no facescrub folder; to get it"):
        load_dataset("facescrub", tmp_path)
    (tmp_path / "celeba").mkdir()
    with pytest.raises(DataError, match="identity.txt: file not found; to get it, .*CelebA"):
        load_dataset("celeba", tmp_path)
    (tmp_path / "celeba" / "identity.txt").write_text("a.jpg 1 extra\n")
    with pytest.raises(DataError, match=r"identity.txt:1: expected '<relative path> <identity>'"):
        load_dataset("celeba", tmp_path)


def test_megaface_devkit_lists(mini_root):
    base = mini_root / "megaface" / "FlickrFinal2" / "000" / "user1"
    base.mkdir(parents=True)
    srcs = sorted((mini_root / "lfw").glob("*/*.jpg"))
    for i, src in enumerate(srcs):
        shutil.copy(src, base / f"{i}.jpg")
    rel = [f"000/user1/{i}.jpg" for i in range(len(srcs))]
    for d in (2, 4):
        (mini_root / "megaface" / f"megaface_features_list.json_{d}_1").write_text(
            json.dumps({"path": rel[:d]}))
    (mini_root / "megaface" / "megaface_noises.txt").write_text(  # insightface's format
        "# noises\n" + f"noise\t{rel[0]}\n")
    assert sorted(megaface_lists(mini_root)) == [2, 4]
    ds = load_megaface(mini_root)
    assert len(ds) == 3 and ds.samples[0].identity == "000/user1"
    assert "1 images removed by megaface_noises.txt" in ds.notes
    assert len(load_megaface(mini_root, D=2)) == 1
    with pytest.raises(DataError, match="no list for D=10"):
        load_megaface(mini_root, D=10)
    (mini_root / "megaface" / "megaface_features_list.json_4_1").write_text(
        json.dumps({"path": [*rel[1:], "000/user2/x.jpg"]}))
    with pytest.raises(DataError, match=r"json_4_1: entry 3: listed image .*x.jpg does not exist"):
        load_megaface(mini_root, D=4)
    (mf,) = check_data(mini_root, sets=("megaface",), progress=False).sets
    assert (mf.images, mf.missing) == (3, [str(base.parent / "user2" / "x.jpg")]) and not mf.ok


def test_facescrub_devkit_json_layout(mini_root):
    fs = mini_root / "facescrub"
    shutil.copytree(mini_root / "lfw" / "Aaron_Peirsol", fs / "Aaron_Peirsol")
    files = sorted(p.name for p in (fs / "Aaron_Peirsol").glob("*.jpg"))
    (fs / "facescrub_features_list.json").write_text(json.dumps(
        {"path": [f"Aaron_Peirsol/{f}" for f in files], "id": ["Aaron_Peirsol"] * len(files)}))
    ds = load_dataset("facescrub", mini_root)
    assert len(ds) == len(files) and ds.identities == ["Aaron_Peirsol"]
    # insightface's noise list names images as .png; copies may be .jpg
    (fs / "facescrub_noises.txt").write_text(f"# noises\n{files[0][:-4]}.png\n")
    ds = load_dataset("facescrub", mini_root)
    assert [s.key for s in ds] == [f"facescrub/Aaron_Peirsol/{f}" for f in files[1:]]
    assert "1 images removed by facescrub_noises.txt" in ds.notes


def test_celeba_identity_file(mini_root):
    celeba = mini_root / "celeba"
    shutil.copytree(mini_root / "lfw" / "Abdullah_Gul", celeba / "0042")
    files = sorted(p.name for p in (celeba / "0042").glob("*.jpg"))
    lines = [f"0042/{f} 42" for f in files]
    (celeba / "identity.txt").write_text("\n".join([*lines, lines[0], ""]))
    ds = load_dataset("celeba", mini_root)
    assert [s.key for s in ds] == [f"celeba/0042/{f}" for f in files] and ds.identities == ["42"]
    assert ds.notes == ["1 repeated lines of identity.txt ignored"]
    (celeba / "identity.txt").write_text("\n".join([*lines, lines[0][:-2] + "7"]))
    with pytest.raises(DataError, match="identity.txt:3: 0042/.* listed again with another"):
        load_dataset("celeba", mini_root)
    (celeba / "identity.txt").write_text("\n".join([*lines, "0042/gone.jpg 42", "0042/x.jpg 42"]))
    with pytest.raises(DataError, match=r"identity.txt:3: listed image .*gone.jpg does not "
                                        r"exist \(2 listed images missing in all\)"):
        load_dataset("celeba", mini_root)
    (report,) = check_data(mini_root, sets=("celeba",), progress=False).sets
    assert report.images == 2 and len(report.missing) == 2 and not report.ok


def test_exclusion_list(tmp_path):
    path = tmp_path / "exclude.txt"
    path.write_text("# people to leave out\nAlec_Baldwin\n\nlfw/AJ_Cook/AJ_Cook_0001.jpg\n")
    assert read_exclusion_list(path) == {"Alec_Baldwin", "lfw/AJ_Cook/AJ_Cook_0001.jpg"}
    with pytest.raises(DataError, match="nope.txt: exclusion list not found"):
        read_exclusion_list(tmp_path / "nope.txt")


def test_cli_data_check(mini_root, capsys):
    assert main(["data", "check", "--data", str(mini_root)]) == 0
    out = capsys.readouterr().out
    assert "pairs.txt: 2 pairs in 1 folds" in out and "facescrub" in out and "not present" in out
    bad = mini_root / "lfw" / "Abdullah_Gul" / "Abdullah_Gul_0009.jpg"
    bad.write_bytes(b"\xff\xd8junk")
    proc = occbench_subprocess("data", "check", "--data", mini_root)
    assert proc.returncode == 1 and f"lfw: unreadable {bad}: not a readable image" in proc.stdout
    assert proc.stdout.rstrip().endswith("PROBLEMS FOUND (see above)")


def test_cli_data_check_without_a_data_root():
    proc = occbench_subprocess("data", "check", env={"PATH": "/usr/bin"}, inherit=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "occbench: error: no data root: pass --data ROOT or set OCCBENCH_DATA=ROOT "
        "(a folder holding lfw/, facescrub/, celeba/ ...)")


def test_cli_align_prints_the_success_rate(mini_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["align", "--data", str(mini_root), "--set", "lfw", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lfw: 4 images, aligned 4 (100.0 %)") and "computed 4" in out
    assert main(["align", "--data", str(mini_root), "--set", "lfw", "--workers", "1"]) == 0
    assert "cache hits 4, computed 0" in capsys.readouterr().out


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    from occbench.imageio import atomic_write

    umask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "x.bin", b"abc")
    finally:
        os.umask(umask)
    assert path.read_bytes() == b"abc" and (path.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_atomic_write_gives_the_usual_mode_even_if_the_writer_recreates_the_file(tmp_path):
    import os
    import stat

    from occbench.imageio import atomic_write

    def recreate(tmp):  # as some libraries do: remove, then create anew (mode 0600 here)
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x")
        os.close(fd)

    umask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "w.bin", recreate)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_bytes() == b"x"
