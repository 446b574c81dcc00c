"""dlib's face-recognition ResNet in torch, read from dlib's own ``.dat`` file.

The check that the reading and the network are right: on real LFW faces the torch descriptors
equal dlib's ``compute_face_descriptor`` (raw, not normalised) to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from occbench.errors import DataError
from occbench.models.dlib_recognizer import DlibRecognizer, _describe
from occbench.models.dlib_torch import TAG_OR_SKIP, load_dlib_resnet, read_dat

N_FACES = 32


@pytest.fixture(scope="module")
def net():
    return load_dlib_resnet()


def test_file_holds_dlibs_resnet_layers():
    from occbench.dlib_models import FACE_RESNET, model_path

    layers = read_dat(model_path(FACE_RESNET))
    kinds = [rec.kind for rec in layers]
    assert kinds[0] == "input_rgb_image_sized" and kinds[-1] == "loss_metric"
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14
    assert kinds.count(TAG_OR_SKIP) == 22
    assert layers[0].fields["avg_rgb"] == pytest.approx([122.782, 117.001, 104.298])
    assert sum(a.size for rec in layers for a in rec.arrays.values()) == 5_614_592


def test_truncated_file_names_file_and_problem(tmp_path):
    from occbench.dlib_models import FACE_RESNET, model_path

    bad = tmp_path / "cut.dat"
    bad.write_bytes(model_path(FACE_RESNET).read_bytes()[:100_000])
    with pytest.raises(DataError, match=r"cut\.dat.*file ends early"):
        read_dat(bad)


def test_torch_descriptors_equal_dlibs_on_real_faces(lfw_faces, net, one_torch_thread):
    chips = DlibRecognizer(workers=1).chips(lfw_faces[:N_FACES])
    ours = net.describe(chips)
    theirs = _describe(chips)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    diff = np.abs(ours - theirs).max()
    print(f"min cosine {cos.min():.8f}, max abs difference {diff:.3g}")
    assert ours.shape == (N_FACES, 128) and ours.dtype == np.float32
    assert cos.min() >= 0.9999
    assert diff < 1e-4
