"""BVMR (Hertz et al. 2019): the network's three decoders, the published losses, the
composition of the completer, and two training steps on real aligned CelebA faces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from baselines.bvmr.model import BVMR, count_parameters, create
from baselines.bvmr.task import BVMRTask, bvmr_losses, masked_l1
from occbench.data.labelled import LabelledFaces
from occbench.errors import ConfigError, OccbenchError
from occbench.models import create_completer
from occbench.train.loop import TrainConfig, to_device
from tests._configs import shipped, write_config
from tests._tiny_training import train_tiny


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny networks gain nothing from threads, and threads stall on a busy machine."""


def _tiny(**kw) -> BVMR:
    torch.manual_seed(0)
    return BVMR(**{"start_filters": 4, "blocks": 1, **kw})


def test_decoder_outputs_shapes_and_ranges():
    net = _tiny().eval()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        image, mask, motif = net(x, motif=True)
        plain = net(x)
    assert image.shape == motif.shape == (2, 3, 112, 112) and mask.shape == (2, 1, 112, 112)
    assert mask.min() >= 0 and mask.max() <= 1
    assert image.abs().max() <= 1 and motif.abs().max() <= 1
    assert len(plain) == 2 and torch.equal(plain[0], image) and torch.equal(plain[1], mask)
    # the image and motif decoders share their first two up-steps (to 28x28), the mask none
    assert len(net.shared.steps) == 2 and len(net.image.steps) == len(net.motif.steps) == 2
    assert len(net.mask.steps) == 4 and net.shared.steps[-1].up.out_channels == 16
    with torch.no_grad():  # no shared decoder: every decoder starts at the bottleneck
        unshared = _tiny(shared_depth=0)(x, motif=True)
    assert [t.shape for t in unshared] == [image.shape, mask.shape, motif.shape]
    with pytest.raises(ConfigError, match="no motif decoder"):
        _tiny(motif_decoder=False)(x, motif=True)


def test_configs_parameter_counts():
    assert count_parameters(create("small")) == 688_927
    assert count_parameters(create("paper")) == 20_514_919  # "about 20.5M" as published
    with pytest.raises(ConfigError, match="known: paper, small"):
        create("huge")


def test_masked_l1_and_total_loss_by_hand():
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2,1,2,2)
    target = torch.zeros(2, 3, 2, 2)
    pred = torch.zeros(2, 3, 2, 2)
    pred[0, :, 0, 0] = 1.0  # |1 - 0| in 3 channels at one of the 2 masked pixels
    pred[0, :, 1, 1] = 5.0  # outside the mask: ignored
    pred[1] = 7.0  # empty mask: nothing counts, area clamped to 1
    # image 0: 3 / 2 pixels; image 1: 0; batch mean 0.75
    assert masked_l1(pred, target, mask).item() == pytest.approx(0.75)
    half = torch.full((2, 1, 2, 2), 0.5)
    total, parts = bvmr_losses(pred, half, torch.zeros(2, 3, 2, 2), target,
                               torch.ones(2, 3, 2, 2), mask)
    assert parts["l1_image"].item() == pytest.approx(0.75)
    assert parts["l1_motif"].item() == pytest.approx((3 * 2 / 2 + 0) / 2)  # 1.5
    assert parts["bce_mask"].item() == pytest.approx(math.log(2))  # p = 1/2 everywhere
    assert total.item() == pytest.approx(2 * 0.75 + 1.5 + math.log(2))
    total, _ = bvmr_losses(pred, half, torch.zeros(2, 3, 2, 2), target, torch.ones(2, 3, 2, 2),
                           mask, image_weight=1.0, motif_weight=0.0)
    assert total.item() == pytest.approx(0.75 + math.log(2))


def _cfg(tmp_path, **kw) -> TrainConfig:
    return write_config(tmp_path, shipped("bvmr"), **kw)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path, lfw_faces):
    faces = LabelledFaces("lfw", None, lfw_faces[:8], np.zeros(8, np.int64), ["x"],
                          [str(i) for i in range(8)])
    cfg = _cfg(tmp_path, batch_size=8)
    task = BVMRTask("bvmr", "unused", faces=faces)
    data = task.dataset(cfg)
    batch = to_device(torch.utils.data.default_collate([data[(0, i)] for i in range(8)]), "cpu")
    assert all(batch["mask"][i].any() for i in range(8))  # occlusion_p = 1: every face occluded
    net = _tiny().train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(6):
        loss, metrics = task.loss(net, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(metrics) == {"l1_image", "l1_motif", "bce_mask"}
    assert losses[-1] < losses[0]


def _saved_small(tmp_path, **edit) -> tuple[BVMR, object]:
    net = create("small")
    torch.manual_seed(0)
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        for name, value in edit.items():
            net.get_parameter(name).fill_(value)
    path = tmp_path / f"w{len(edit)}.safetensors"
    save_file(net.state_dict(), str(path))
    return net, path


class _HalfMask(torch.nn.Module):
    """The network's image with a fixed mask: 0 on the left half, 1 on the right half."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        image, _ = self.net(x)
        mask = torch.zeros_like(image[:, :1])
        mask[..., 56:] = 1.0
        return image, mask


def test_composition_keeps_unmasked_pixels_exactly(tmp_path, lfw_faces):
    faces = lfw_faces[:4]
    # mask head forced to 0 everywhere: the completed faces are the input faces, byte for byte
    _, path = _saved_small(tmp_path, **{"mask.head.weight": 0.0, "mask.head.bias": -1e4})
    comp = create_completer("bvmr", weights=path, device="cpu")
    out, mask = comp.complete(faces)
    assert not mask.any() and np.array_equal(out, faces)
    # mask 0 on the left half (input kept exactly), 1 on the right half (the network's image)
    _, path = _saved_small(tmp_path)
    comp = create_completer("bvmr", weights=path, device="cpu")
    raw_out, _ = comp.complete(faces)
    comp.compose = False
    network_image, _ = comp.complete(faces)
    comp.compose = True
    comp.net = _HalfMask(comp.net)
    out, mask = comp.complete(faces)
    assert np.array_equal(out[:, :, :56], faces[:, :, :56])
    assert np.array_equal(out[:, :, 56:], network_image[:, :, 56:])
    assert not np.array_equal(out[:, :, 56:], faces[:, :, 56:])
    assert mask.dtype == np.float32 and np.array_equal(mask[0, 0], np.r_[np.zeros(56), np.ones(56)])
    assert raw_out.shape == faces.shape


def test_missing_and_wrong_weights_name_the_training_command(tmp_path):
    with pytest.raises(OccbenchError, match="occbench train bvmr --config small --data"):
        create_completer("bvmr", weights=tmp_path / "missing.safetensors")
    with pytest.raises(OccbenchError, match="occbench train bvmr --config faces51k --data"):
        create_completer("bvmr-51k", weights=tmp_path / "missing.safetensors")
    _, path = _saved_small(tmp_path)
    with pytest.raises(OccbenchError, match="does not hold bvmr --config paper"):
        create_completer("bvmr", arch="paper", weights=path)


def test_train_two_steps_on_real_celeba_then_complete(tmp_path, data_root, lfw_faces):
    path, prov = train_tiny("bvmr", data_root, tmp_path, limit=16, steps=2, batch_size=4,
                            checkpoint_every=1)
    assert path == tmp_path / "w" / "bvmr-small.safetensors"
    assert prov["data"]["set"] == "celeba" and prov["data"]["images"] == 16
    shipped = sum(v.numel() for v in create("small").state_dict().values())  # + BN buffers
    assert prov["steps"] == 2 and prov["parameters"] == shipped
    assert {"loss", "l1_image", "l1_motif", "bce_mask"} <= set(prov["final"])
    assert all(np.isfinite(v) for v in prov["final"].values())
    comp = create_completer("bvmr", weights=path)
    out, mask = comp.complete(lfw_faces[:3])
    assert out.shape == (3, 112, 112, 3) and out.dtype == np.uint8
    assert mask.shape == (3, 112, 112) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    assert comp.version.startswith("small-") and comp.name == "bvmr"
    empty_out, empty_mask = comp.complete(np.zeros((0, 112, 112, 3), np.uint8))
    assert empty_out.shape == (0, 112, 112, 3) and empty_mask.shape == (0, 112, 112)
