"""OpenCV inpainting completers (``inpaint-telea``, ``inpaint-ns``): non-blind classical floors.

Hand cases: a flat face stays flat, a linear ramp is continued into the hole; pixels outside
the mask are never touched. End to end on the toy sets: the rows say "(non-blind)", have no
mask IoU (the mask was given), beat the occluded input's PSNR, and the real-occlusion protocol
refuses a completer that needs a mask real occlusions do not have.
"""

from __future__ import annotations

import numpy as np
import pytest

from occbench.errors import ConfigError
from occbench.models import create_completer
from occbench.runner import RunConfig, run

pytest.importorskip("cv2", reason="the inpainting completers need opencv-python-headless")

NAMES = ("inpaint-telea", "inpaint-ns")


def _hole(n=1) -> np.ndarray:
    m = np.zeros((n, 112, 112), np.uint8)
    m[:, 40:60, 30:80] = 1
    return m


@pytest.mark.parametrize("name", NAMES)
def test_a_flat_face_stays_flat_and_outside_the_mask_is_untouched(name):
    flat = np.full((2, 112, 112, 3), (200, 120, 40), np.uint8)
    occluded = flat.copy()
    mask = _hole(2)
    occluded[mask.astype(bool)] = 0  # a black bar
    comp = create_completer(name)
    out, given = comp.complete(occluded, None, mask=mask)
    hole = mask.astype(bool)
    np.testing.assert_array_equal(out[~hole], flat[~hole])
    # the bar is filled with the surrounding colour, to the rounding of the method's
    # gradient terms (measured: Telea within 3 grey levels, Navier-Stokes exact)
    assert np.abs(out[hole].astype(int) - flat[hole].astype(int)).max() <= 3
    np.testing.assert_array_equal(given, mask.astype(np.float32))
    assert not comp.blind and not comp.predicts_mask and comp.name == name


@pytest.mark.parametrize("name", NAMES)
def test_a_ramp_is_continued_into_the_hole(name):
    # grey level = 2 * column: inside the hole it should stay near 2 * column
    ramp = np.repeat((2 * np.arange(112, dtype=np.uint8))[None, :, None], 112, 0)
    face = np.repeat(ramp[None], 1, 0).repeat(3, axis=3)
    mask = _hole()
    occluded = face.copy()
    occluded[mask.astype(bool)] = 255
    out, _ = create_completer(name).complete(occluded, None, mask=mask)
    hole = mask[0].astype(bool)
    err = np.abs(out[0][hole].astype(int) - face[0][hole].astype(int))
    assert err.mean() < 8 and err.max() < 40  # the occluder's 255 is gone
    np.testing.assert_array_equal(out[0][~hole], face[0][~hole])


def test_options_and_errors():
    assert create_completer("inpaint-telea", radius=5).radius == 5
    with pytest.raises(ConfigError, match="radius must be a whole number >= 1"):
        create_completer("inpaint-ns", radius=0)
    with pytest.raises(ConfigError, match="non-blind: it needs the true occlusion mask"):
        create_completer("inpaint-telea").complete(np.zeros((1, 112, 112, 3), np.uint8))


def _config(**kw):
    return RunConfig(**{"recognizer": "fake", "probes": "toy", "distractor_set": "toy-distractors",
                        "pairs_set": "toy", "protocols": ("identification", "reconstruction"),
                        "forms": ("rect",), "positions": ("eyes",), "sizes": (0.1,), **kw})


def test_rows_say_non_blind_and_beat_the_occluded_input(tmp_path):
    cache = tmp_path / "cache"
    telea = run(_config(model="inpaint-telea"), tmp_path, tmp_path / "a", cache=cache,
                progress=False)
    occluded = run(_config(model="occluded"), tmp_path, tmp_path / "b", cache=cache,
                   progress=False)
    assert set(telea.model) == {"inpaint-telea (non-blind)"}
    assert "mask_iou" not in set(telea.metric)  # the mask was given, not predicted
    assert "mask_iou" in set(occluded.metric)

    def psnr(df):
        return df[(df.metric == "psnr") & (df.dataset == "toy")].value.iloc[0]

    assert psnr(telea) > psnr(occluded) + 3  # measured: ~+10 dB on the toy faces


def test_real_occlusion_protocol_refuses_a_non_blind_completer(tmp_path):
    with pytest.raises(ConfigError, match="non-blind .* real occlusions have none"):
        run(_config(model="inpaint-ns", protocols=("identification-real",), real_set="toy"),
            tmp_path, tmp_path / "out", cache=tmp_path / "cache", progress=False)
