"""`occbench occlude`: the paper's released gallery layout, on real LFW photos.

The aligned-face cache of every test lives in a temporary folder (``OCCBENCH_CACHE``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occbench.export import condition_dir, export_occluded
from occbench.occlusion import EVAL_SIZES, occlude
from tests._cli import occbench_subprocess

LIMIT = 5


@pytest.fixture(scope="module")
def root(data_root) -> Path:
    root = Path(data_root)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _cli(args: list[str], cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    return occbench_subprocess(*args, env={"OCCBENCH_CACHE": str(cache)}, cwd=cwd, timeout=300)


def _aligned(root: Path, cache: Path, limit: int, monkeypatch):
    from occbench.align import align_dataset
    from occbench.data import load_dataset

    monkeypatch.setenv("OCCBENCH_CACHE", str(cache))
    return align_dataset(load_dataset("lfw", root), limit=limit, workers=1, progress=False)


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_size_folders_are_written_like_the_paper():
    names = {f"{s:g}" for sizes in EVAL_SIZES.values() for s in sizes}
    assert names == {"0.05", "0.1", "0.15", "0.3", "0.5"}
    assert condition_dir("o", "rect", "eyes", 0.10) == Path("o/square/eyes/0.1")
    assert condition_dir("o", "rectangle", "nose", 0.05) == Path("o/square/nose/0.05")
    assert condition_dir("o", "text", "outside", 0.5) == Path("o/text/outside/0.5")


def test_cli_export_writes_the_gallery_layout(root, cache, tmp_path, monkeypatch):
    res = _cli(["occlude", "--data", str(root), "--set", "lfw", "--form", "text",
                "--position", "eyes", "--size", "0.3", "--out", "tmp", "--limit", str(LIMIT),
                "--workers", "1"], cache, tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"wrote {LIMIT} occluded faces" in res.stdout

    faces = _aligned(root, cache, LIMIT, monkeypatch)
    assert len(faces) == LIMIT and faces.computed == 0  # the CLI filled the cache
    out = tmp_path / "tmp"
    expected = {
        f"text/eyes/0.3/{kind}/{s.identity}/{Path(s.path).stem}.png"
        for s in faces.samples for kind in ("img", "mask")
    }
    assert _tree(out) == expected

    base = out / "text" / "eyes" / "0.3"
    for sample, face in zip(faces.samples, faces.images, strict=True):
        rel = Path(sample.identity) / f"{Path(sample.path).stem}.png"
        img, mask = _png(base / "img" / rel), _png(base / "mask" / rel)
        assert img.shape == (112, 112, 3) and img.dtype == np.uint8
        assert mask.shape == (112, 112) and set(np.unique(mask)) <= {0, 255}
        occ = occlude(face, sample.key, "text", 0.3, "eyes", seed=0)
        assert np.array_equal(img, occ.image)
        assert np.array_equal(mask, occ.mask * 255)


def test_export_rect_is_square_and_rerun_is_identical(root, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("OCCBENCH_CACHE", str(cache))
    kw = dict(data_root=root, set_name="lfw", form="rectangle", position="outside",
              size=0.05, out=tmp_path, seed=3, limit=3, workers=1, progress=False)
    summary = export_occluded(**kw)
    assert "wrote 3 occluded faces" in summary and str(tmp_path / "square") in summary
    files = _tree(tmp_path)
    assert len(files) == 6 and all(f.startswith("square/outside/0.05/") for f in files)
    before = {f: (tmp_path / f).read_bytes() for f in files}
    export_occluded(**kw)
    assert {f: (tmp_path / f).read_bytes() for f in _tree(tmp_path)} == before


@pytest.mark.parametrize(
    "option,value,needle",
    [("--position", "forehead", "'forehead'"), ("--form", "circle", "'circle'"),
     ("--size", "0.7", "0.7")],
)
def test_cli_bad_setting_exits_2_with_one_line(root, cache, tmp_path, option, value, needle):
    args = {"--set": "lfw", "--form": "rect", "--position": "eyes", "--size": "0.1",
            "--out": "out", "--limit": "2"}
    args[option] = value
    res = _cli(["occlude", "--data", str(root), *[x for kv in args.items() for x in kv]],
               cache, tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("occbench: error:") and needle in lines[0]
    assert not (tmp_path / "out").exists()
