"""Qualitative grids on real FaceScrub faces: the rows are what they say, the occluded row is
the run's occlusion of those faces, and the written picture keeps the title off the faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from occbench.completions import occlude_faces
from occbench.condition import Condition
from occbench.grid import grid_images, write_grid


def test_grid_rows_and_picture(data_root, tmp_path):
    cond = Condition("rect", "eyes", 0.1)
    labels, images = grid_images(data_root, ["occluded", "bvmr"], cond, n=3)
    assert labels == ["occluded", "bvmr", "clean"]  # "occluded" is never repeated
    assert images.shape == (3, 3, 112, 112, 3) and images.dtype == np.uint8
    clean = images[-1]
    # the occluded row differs from the clean one on the rectangle only (a = 0.1 of the face)
    changed = np.any(images[0] != clean, axis=-1).mean(axis=(1, 2))
    assert np.all((changed > 0.05) & (changed < 0.15)), changed
    # BVMR changes the occluded faces (it fills the rectangle) and is closer to the clean ones
    def err(a):
        return np.abs(a.astype(float) - clean).mean()

    assert err(images[1]) < err(images[0])

    paths = write_grid(labels, images, tmp_path / "grid_rect_eyes_0.1", "a title")
    assert [p.name for p in paths] == ["grid_rect_eyes_0.1.png"]
    assert Image.open(paths[0]).size[0] > 300


@pytest.mark.parametrize("rows", [3, 8])
def test_title_stays_above_the_faces(rows, tmp_path):
    """Layout only, so uniform dark tiles stand in for faces: every picture row that holds a
    tile is dark, and the title (dark text at the top) must be followed by a white gap before
    the first tile row; a title drawn over the tiles leaves no such gap."""
    images = np.full((rows, 8, 112, 112, 3), 60, np.uint8)
    labels = [f"row {i}" for i in range(rows)]
    png_path = write_grid(labels, images, tmp_path / "g", "facescrub: rect occlusion, eyes")[0]
    png = np.asarray(Image.open(png_path).convert("L"))
    dark = (png < 128).any(axis=1)
    first_dark = int(np.argmax(dark))  # top of the title
    white = np.flatnonzero(~dark[first_dark:])
    assert white.size and white[0] < 40, "the title runs into the first row of faces"


def test_occluded_row_matches_a_run(data_root):
    """The grid's faces are occluded exactly as a run occludes them (same keys, same seed)."""
    from occbench.align import align_dataset
    from occbench.data import load_dataset

    cond = Condition("text", "eyes", 0.3)
    labels, images = grid_images(data_root, [], cond, n=2)
    assert labels == ["occluded", "clean"]
    ds = load_dataset("facescrub", data_root)
    faces = align_dataset(ds, progress=False)
    index = {faces.images[i].tobytes(): i for i in range(len(faces.keys))}
    picked = [index[im.tobytes()] for im in images[-1]]  # find the grid's faces in the set
    occluded, _ = occlude_faces(faces.images[picked], [faces.keys[i] for i in picked], cond)
    np.testing.assert_array_equal(images[0], occluded)
