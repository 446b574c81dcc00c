"""The completers' held-out figures (occbench.train.heldout) on real LFW faces: a network that
returns its input scores exactly the occluded reference (IoU 0 with an empty mask); one that
knows the truth scores perfect IoU and cosine 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.resnet50.adapter import load_frozen
from occbench.metrics.psnr import psnr
from occbench.models.torch_adapter import to_unit
from occbench.train.heldout import FORMS, HeldOut, occlude_held_out


class Passthrough(torch.nn.Module):
    """Returns the occluded input and an empty mask."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x, torch.zeros_like(x[:, :1])


class Oracle(Passthrough):
    """Returns the clean face and the true mask of the input it is shown."""

    def __init__(self, held: HeldOut):
        super().__init__()
        self.truth = {}
        for occ, mask in held.occluded.values():
            for o, m, c in zip(occ, mask, held.clean, strict=True):
                self.truth[o.tobytes()] = (c, m)

    def forward(self, x):
        faces = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        pairs = [self.truth[f.numpy().tobytes()] for f in faces]
        clean = to_unit(torch.as_tensor(np.stack([c for c, _ in pairs])))
        mask = torch.as_tensor(np.stack([m for _, m in pairs])).float()[:, None]
        return clean, mask


@pytest.fixture(scope="module")
def held(lfw_faces):
    return HeldOut(lfw_faces[:24], seed=5, recognizer=load_frozen("mid"))


def test_inputs_are_fixed_and_occluded(held, lfw_faces):
    again = occlude_held_out(lfw_faces[:24], seed=5)
    for form in FORMS:
        occ, mask = held.occluded[form]
        assert np.array_equal(occ, again[form][0]) and np.array_equal(mask, again[form][1])
        assert mask.reshape(24, -1).any(1).all()  # every face has an occluder
        assert (occ != lfw_faces[:24]).any(-1).sum() > 0
        assert held.reference[f"psnr_{form}"] == pytest.approx(
            np.mean(psnr(occ, lfw_faces[:24])))


def test_passthrough_scores_the_reference(held):
    figures = held.figures(Passthrough())
    for key, value in held.reference.items():
        assert figures[key] == pytest.approx(value, abs=1e-6), key
    assert all(figures[f"iou_{form}"] == 0.0 for form in FORMS)
    # composing the input with an empty mask changes nothing either
    assert held.figures(Passthrough(), compose=True) == figures


def test_oracle_scores_perfectly(held):
    figures = held.figures(Oracle(held))
    for form in FORMS:
        assert figures[f"iou_{form}"] == 1.0
        assert figures[f"idcos_{form}"] == pytest.approx(1.0, abs=1e-5)
        assert figures[f"ssim_{form}"] == pytest.approx(1.0)
        assert figures[f"psnr_{form}"] == 100.0  # every face exact: the cap
        assert figures[f"idcos_{form}"] > held.reference[f"idcos_{form}"]


def test_one_completion_scored_under_another_judge(held, lfw_faces):
    other = HeldOut(lfw_faces[:24], seed=5, recognizer=load_frozen("small"))
    done = held.complete(Passthrough())
    assert other.score(done) == other.figures(Passthrough())
    assert held.score(done) == held.figures(Passthrough())
    for form in FORMS:  # the same faces, judged by another recognizer
        assert other.score(done)[f"psnr_{form}"] == held.score(done)[f"psnr_{form}"]
        assert other.score(done)[f"idcos_{form}"] != held.score(done)[f"idcos_{form}"]
