"""C2FDAN (Hörmann et al., FG 2021): shapes through every block, the attention modules'
masking, the composition, each loss by hand, optimisation on a fixed batch, the two-stage
task through the shared training loop on real CelebA faces, and the completers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from baselines.c2fdan import losses as L
from baselines.c2fdan.discriminators import BOXES, Discriminators, crop
from baselines.c2fdan.model import (
    DMFB,
    VARIANTS,
    CoarseNet,
    CrossAttention,
    FineNet,
    SelfAttention,
    UpBlock,
    compose,
    count_parameters,
    create,
    fold_2x2,
)
from baselines.c2fdan.task import (
    FEATURES,
    C2FDANTask,
    C2FDANTrainer,
    load_recognizer,
    where_occluded,
)
from occbench import registry
from occbench.data.labelled import LabelledFaces
from occbench.errors import ConfigError, OccbenchError
from occbench.models import create_completer, list_models
from occbench.models.torch_adapter import to_unit
from occbench.train.cli import config_path
from occbench.train.loop import TrainConfig, lr_factor, to_device
from tests._configs import shipped, write_config
from tests._tiny_training import train_tiny

NAMES = ("c2fdan", "c2fdan-coarse", "c2fdan-no-cross", "c2fdan-no-self", "c2fdan-no-local",
         "c2fdan-no-style", "c2fdan-pixel-fine")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny networks gain nothing from threads, and threads stall on a busy machine."""


def _x(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 112, 112, generator=g) * 2 - 1


# --------------------------------------------------------------------------- shapes


def test_shapes_through_every_block():
    torch.manual_seed(0)
    x = _x()
    with torch.no_grad():
        assert DMFB(16)(torch.rand(2, 16, 28, 28)).shape == (2, 16, 28, 28)
        assert UpBlock(8, 4, torch.nn.ReLU)(torch.rand(2, 8, 28, 28)).shape == (2, 4, 56, 56)
        image, logits = CoarseNet(4)(x)
        assert image.shape == (2, 3, 112, 112) and logits.shape == (2, 1, 112, 112)
        assert image.abs().max() <= 1  # clipped
        y, index = CrossAttention(8, 4)(torch.rand(2, 8, 56, 56), torch.zeros(2, 1, 56, 56),
                                        return_index=True)
        assert y.shape == (2, 4, 56, 56) and index.shape == (2, 28 * 28)
        assert SelfAttention(16)(torch.rand(2, 16, 28, 28)).shape == (2, 16, 28, 28)
        fine = FineNet(4)(x, torch.rand(2, 1, 112, 112))
        assert fine.shape == (2, 3, 112, 112) and fine.abs().max() <= 1
        for name in NAMES:
            net = create("tiny", name).eval()
            out = net(x, full=True)
            final, mask = net(x)
            assert final.shape == (2, 3, 112, 112) and mask.shape == (2, 1, 112, 112)
            assert 0 <= mask.min() and mask.max() <= 1
            assert torch.equal(mask, torch.sigmoid(out.mask_logits))
            if name == "c2fdan-coarse":
                assert net.fine is None and out.fine is None and torch.equal(final, out.coarse_r)
            else:
                assert out.fine.shape == (2, 3, 112, 112) and torch.equal(final, out.fine_r)
                assert (net.fine.cross is None) == (name == "c2fdan-no-cross")
                assert (net.fine.attention is None) == (name == "c2fdan-no-self")
    d = Discriminators(4)
    assert d.names == ("global", "face", "left_eye", "right_eye", "nose", "mouth", "eyes")
    with torch.no_grad():
        logits = d(x, x)
    assert logits["global"].shape == (2, 1) and logits["face"].shape == (2, 1, 28, 28)
    for name in ("left_eye", "right_eye", "nose", "mouth", "eyes"):
        assert logits[name].shape == (2, 1, 7, 7)
    assert d.nets["eyes"].convs[0].in_channels == 12  # both eyes of output and input
    assert Discriminators(4, local=False).names == ("global", "face")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in d.modules())
    assert crop(x, "nose").shape == (2, 3, 28, 28)
    for x0, y0, x1, y1 in BOXES.values():
        assert x1 - x0 == y1 - y0 == 28 and 0 <= x0 and x1 <= 112 and 0 <= y0 and y1 <= 112


def test_configs_and_parameter_counts():
    paper, small = create("paper"), create("small")
    assert count_parameters(paper.coarse) == 4_312_196  # the paper: "about 4.1M"
    assert count_parameters(paper) == 7_663_479
    assert count_parameters(small) == 481_635
    assert count_parameters(create("paper", "c2fdan-coarse")) == 4_312_196
    with pytest.raises(ConfigError, match="known: paper, small, tiny"):
        create("huge")
    with pytest.raises(ConfigError, match="unknown c2fdan variant"):
        create("small", "c2fdan-huge")


# --------------------------------------------------------------------------- attention


def _identity_cross(c: int) -> CrossAttention:
    att = CrossAttention(c, c)
    with torch.no_grad():
        for conv in (att.query, att.key, att.value):
            conv.weight.copy_(torch.eye(c)[:, :, None, None])
            conv.bias.zero_()
    return att


def _touched(mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Whether each chosen key patch (2x2, top-left corner from its index) meets the mask."""
    side = mask.shape[-1] - 1
    per_patch = F.max_pool2d(mask, 2, stride=1).flatten(1)  # (N, side * side)
    assert per_patch.shape[1] == side * side
    return torch.gather(per_patch, 1, index) >= 0.5


def test_cross_attention_never_picks_a_key_patch_inside_the_mask():
    # features -1 outside the hole and +1 inside: every free key patch has cosine -1 with a
    # query in the hole, every masked (zeroed) key patch has cosine 0 and would win the argmax
    x = -torch.ones(1, 4, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    x[..., 2:6, 2:6] = 1.0
    att = _identity_cross(4)
    y, index = att(x, mask, return_index=True)
    assert not _touched(mask, index).any()
    assert torch.equal(y, -torch.ones_like(y))  # the hole filled with free (-1) patches
    att.threshold = float("inf")  # no exclusion: the argmax lands on a zeroed masked patch
    _, naive = att(x, mask, return_index=True)
    assert _touched(mask, naive).any()
    # random features, a soft blob mask: never a touched key; outside the mask, Y = V exactly
    torch.manual_seed(1)
    x = torch.randn(2, 8, 56, 56)
    mask = torch.zeros(2, 1, 56, 56)
    mask[0, :, 10:30, 5:25] = 0.7
    mask[1, :, 30:50, 20:51] = 1.0
    mask[1, :, 29, 20:51] = 0.3  # soft edge: pasted partly, never a key
    att = CrossAttention(8)
    y, index = att(x, mask, return_index=True)
    assert not _touched(mask, index).any()
    v = att.value(x)
    outside = (mask == 0).expand_as(v)
    assert torch.equal(y[outside], v[outside])
    assert not torch.allclose(y[~outside], v[~outside])
    # composition inside the mask: (1 - M) V + M V_chosen
    patches = F.unfold(v, 2, stride=1)
    chosen = torch.gather(patches, 2, index[:, None].expand(-1, patches.shape[1], -1))
    rebuilt = F.fold(chosen, (56, 56), 2, stride=2)
    assert torch.allclose(y, (1 - mask) * v + mask * rebuilt, atol=1e-6)
    # every key patch occluded: nothing to copy, the value map is kept
    y = att(x, torch.ones(2, 1, 56, 56))
    assert torch.equal(y, att.value(x))


def test_cross_attention_picks_the_most_similar_free_patch():
    att = _identity_cross(2)
    x = torch.zeros(1, 2, 8, 8)
    x[0, 0] = 1.0  # background direction (1, 0)
    x[0, :, 6:8, 0:2] = torch.tensor([0.0, 1.0])[:, None, None]  # one free patch (0, 1)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0:2, 4:6] = 1.0  # the hole's query patch
    x[0, :, 0:2, 4:6] = torch.tensor([0.1, 1.0])[:, None, None]  # closest to (0, 1)
    y, index = att(x, mask, return_index=True)
    hole_query = 0 * 4 + 2  # query patch row 0, column 2 of the 4 x 4 grid
    assert int(index[0, hole_query]) == 6 * 7 + 0  # the key patch with corner (6, 0)
    assert torch.equal(y[0, :, 0:2, 4:6], x[0, :, 6:8, 0:2])


@pytest.mark.parametrize("c, h, w", [(3, 112, 112), (5, 14, 28), (2, 7, 9)])
def test_fold_2x2_is_torch_fold(c, h, w):
    """The exportable reshape equals F.fold(kernel 2, stride 2) exactly (odd sides: F.fold)."""
    patches = torch.randn(2, 4 * c, (h // 2) * (w // 2), generator=torch.Generator().manual_seed(c))
    assert torch.equal(fold_2x2(patches, h, w), F.fold(patches, (h, w), 2, stride=2))


def test_self_attention_is_global_and_residual():
    torch.manual_seed(0)
    att = SelfAttention(16)
    x = torch.randn(1, 16, 28, 28)
    with torch.no_grad():
        att.out.weight.zero_()
        att.out.bias.zero_()
    assert torch.equal(att(x), x)  # the residual: Y = X + conv(A V)
    torch.manual_seed(0)
    att = SelfAttention(16)
    x.requires_grad_(True)
    att(x)[0, :, 0, 0].sum().backward()  # one output pixel sees the far corner
    assert x.grad[0, :, 27, 27].abs().sum() > 0


# --------------------------------------------------------------------------- composition


def test_composition_leaves_unoccluded_pixels_untouched_exactly():
    x, out = _x(seed=1), _x(seed=2)
    mask = torch.zeros(2, 1, 112, 112)
    mask[..., 40:70, 30:90] = 1.0
    mask[..., 70, 30:90] = 0.25
    y = compose(x, mask, out)
    keep = (mask == 0).expand_as(x)
    assert torch.equal(y[keep], x[keep])
    full = (mask == 1).expand_as(x)
    assert torch.equal(y[full], out[full])
    net = create("tiny").eval()
    with torch.no_grad():  # mask head forced to 0: the whole face comes back bit for bit
        net.coarse.mask.head.weight.zero_()
        net.coarse.mask.head.bias.fill_(-1e4)
        final, m = net(x)
        out = net(x, full=True)
    assert not m.any() and torch.equal(final, x) and torch.equal(out.coarse_r, x)


# --------------------------------------------------------------------------- losses


def test_gram_matrix_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C = 2, H = 1, W = 2
    # Phi (HW x C) = [[1, 3], [2, 4]]; Phi^T Phi = [[5, 11], [11, 25]]; / N(Psi) = 4
    expected = torch.tensor([[[1.25, 2.75], [2.75, 6.25]]])
    assert torch.allclose(L.gram(f), expected)
    a, b = {"block1": f}, {"block1": torch.zeros_like(f)}
    assert L.style(a, b).item() == pytest.approx((1.25 + 2.75 * 2 + 6.25) / 4)
    assert L.perceptual(a, b).item() == pytest.approx(2.5)  # mean |1, 2, 3, 4|
    two = {"block1": f, "block3": 2 * f}
    assert L.perceptual(two, {k: torch.zeros_like(v) for k, v in two.items()}).item() == (
        pytest.approx(2.5 + 5.0))  # summed over the maps


def test_normalised_l1_by_hand():
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    target = torch.zeros(2, 3, 2, 2)
    pred = torch.zeros(2, 3, 2, 2)
    pred[0, :, 0, 0] = 1.0  # 3 channels x 1 at one of the 2 occluded pixels
    pred[0, :, 1, 1] = 4.0  # 3 channels x 4 at one of the 2 free pixels
    pred[1, 0, 0, 0] = 2.0  # no occlusion: occ area clamped to 1; free area 4
    assert L.normalised_l1(pred, target, mask).item() == pytest.approx((3 / 2 + 0) / 2)
    assert L.normalised_l1(pred, target, mask, invert=True).item() == pytest.approx(
        (12 / 2 + 2 / 4) / 2)


def test_mask_bce_and_adversarial_by_hand():
    target = torch.tensor([[[[1.0, 0.0]]]])
    assert L.mask_bce(torch.zeros(1, 1, 1, 2), target).item() == pytest.approx(math.log(2))
    z = torch.tensor([[[[2.0, -1.0]]]])
    p = torch.sigmoid(z)
    expected = -(math.log(p[0, 0, 0, 0]) + math.log(1 - p[0, 0, 0, 1])) / 2
    assert L.mask_bce(z, target).item() == pytest.approx(expected, rel=1e-6)
    # patch probability = mean of the pixel-wise sigmoids; stable for huge logits
    logits = torch.tensor([[[[0.0, 2.0], [-3.0, 1.0]]]])
    mean_p = torch.sigmoid(logits).mean()
    assert L.log_prob(logits).item() == pytest.approx(math.log(mean_p), rel=1e-6)
    assert L.log_prob_fake(logits).item() == pytest.approx(math.log(1 - mean_p), rel=1e-6)
    assert L.log_prob(torch.full((1, 1, 7, 7), -200.0)).item() == pytest.approx(-200.0)
    fake = {"global": torch.zeros(3, 1), "face": logits.expand(3, 1, 2, 2)}
    real = {"global": torch.zeros(3, 1), "face": torch.zeros(3, 1, 2, 2)}
    assert L.generator_adversarial(fake).item() == pytest.approx(
        -(math.log(0.5) + math.log(mean_p)) / 2, rel=1e-6)
    assert L.discriminator_adversarial(real, fake).item() == pytest.approx(
        -((math.log(0.5) + math.log(0.5)) + (math.log(1 - mean_p) + math.log(0.5))) / 2,
        rel=1e-6)


def test_discriminator_outputs_that_see_the_occluder_by_hand():
    discs = Discriminators(4)
    mask = torch.zeros(2, 1, 112, 112)
    x0, y0, x1, y1 = BOXES["nose"]
    mask[0, :, y0 + 8:y0 + 12, x0 + 20:x0 + 28] = 1  # face 0: 4 x 8 px in the nose crop
    logits = discs(torch.zeros(2, 3, 112, 112), torch.zeros(2, 3, 112, 112))
    seen = discs.overlap(mask, logits)
    assert {k: v.shape for k, v in seen.items()} == {k: v.shape for k, v in logits.items()}
    assert seen["global"].flatten().tolist() == [True, False]
    nose = torch.zeros(7, 7, dtype=torch.bool)
    nose[2, 5:7] = True  # rows 8..11 -> cell 2, columns 20..27 -> cells 5, 6
    assert torch.equal(seen["nose"][0, 0], nose) and not seen["nose"][1].any()
    face = torch.zeros(28, 28, dtype=torch.bool)
    face[16:18, 15:18] = True  # rows 66..69, columns 62..69 of the face (the box is at 42, 58)
    assert torch.equal(seen["face"][0, 0], face)
    # the eye crops end at row 65, the mouth's begins at 78; mark a right-eye pixel instead
    assert not any(seen[k].any() for k in ("left_eye", "right_eye", "eyes", "mouth"))
    eye = torch.zeros(1, 1, 112, 112)
    ex0, ey0, _, _ = BOXES["right_eye"]
    eye[0, 0, ey0, ex0] = 1  # the right crop's top-left pixel: the flipped crop's top-right
    seen_eye = discs.overlap(eye, {"eyes": torch.zeros(1, 1, 7, 7)})["eyes"][0, 0]
    assert seen_eye.nonzero().tolist() == [[0, 6]]
    # the diagnostic: mean sigmoid over the seen outputs of each discriminator, then their mean
    z = {"global": torch.tensor([[2.0], [-5.0]]), "nose": torch.full((2, 1, 7, 7), -1.0)}
    z["nose"][0, 0, 2, 5] = 3.0
    got = where_occluded(z, {"global": seen["global"], "nose": seen["nose"]})
    s = torch.sigmoid
    expected = (s(torch.tensor(2.0)) + (s(torch.tensor(3.0)) + s(torch.tensor(-1.0))) / 2) / 2
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    none = {k: torch.zeros_like(v) for k, v in seen.items()}
    assert where_occluded(logits, none).item() == 0.0


# --------------------------------------------------------------------------- training


def _cfg(tmp_path, arch="tiny", **kw) -> TrainConfig:
    return write_config(tmp_path, shipped("c2fdan"), arch=arch, **kw)


def _batch(task, cfg, faces, n):
    data = task.dataset(cfg)
    batch = torch.utils.data.default_collate([data[(0, i)] for i in range(n)])
    return to_device(batch, "cpu")


def test_a_few_steps_lower_the_losses_on_a_fixed_batch(tmp_path, lfw_faces):
    faces = LabelledFaces("lfw", None, lfw_faces[:4], np.zeros(4, np.int64), ["x"],
                          [str(i) for i in range(4)])
    cfg = _cfg(tmp_path, batch_size=4, options={"stage1_steps": 0})
    task = C2FDANTask("c2fdan", "unused", faces=faces)
    torch.manual_seed(0)
    model = task.build(cfg).train()
    batch = _batch(task, cfg, faces, 4)
    assert all(batch["mask"][i].any() for i in range(4))  # every training face occluded
    assert not model.recognizer.training  # frozen, even in train mode
    assert not any(p.requires_grad for p in model.recognizer.parameters())
    frozen = {k: v.clone() for k, v in model.recognizer.state_dict().items()}
    opt = torch.optim.Adam(model.generator.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss, metrics = task.loss(model, batch, cfg, "g")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(metrics) == {"bce", "l1_occ", "l1_nocc", "per", "style", "adv"}
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, model.recognizer.state_dict()[k]) for k, v in frozen.items())
    # the coarse network's stage-1 loss too
    model = C2FDANTrainer(create("tiny", "c2fdan-coarse"))
    opt = torch.optim.Adam(model.generator.parameters(), lr=1e-3)
    first = None
    for _ in range(4):
        loss, metrics = task.loss(model, batch, cfg, "c")
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert set(metrics) == {"bce", "l1_occ", "l1_nocc"} and loss.item() < first


def test_pixel_fine_variant_adds_the_fine_output_to_the_pixel_losses(tmp_path, lfw_faces):
    faces = LabelledFaces("lfw", None, lfw_faces[:2], np.zeros(2, np.int64), ["x"], ["0", "1"])
    cfg = _cfg(tmp_path, batch_size=2, options={"stage1_steps": 0})
    full, pixel = (C2FDANTask(n, "unused", faces=faces) for n in ("c2fdan", "c2fdan-pixel-fine"))
    assert full.loss_weights(cfg) == pixel.loss_weights(cfg)
    torch.manual_seed(0)
    model = pixel.build(cfg).eval()
    assert model.pixel_on_fine and not full.build(cfg).pixel_on_fine
    batch = _batch(pixel, cfg, faces, 2)
    _, with_fine = pixel.loss(model, batch, cfg, "g")
    with torch.no_grad():
        out = model.generator(to_unit(batch["face"]), full=True)
    clean, mask = to_unit(batch["clean"]), batch["mask"][:, None].float()
    coarse, fine = (L.normalised_l1(im, clean, mask).item() for im in (out.coarse, out.fine))
    assert with_fine["l1_occ"] == pytest.approx(coarse + fine, rel=1e-5)


def test_no_style_variant_drops_only_the_style_term(tmp_path, lfw_faces):
    faces = LabelledFaces("lfw", None, lfw_faces[:2], np.zeros(2, np.int64), ["x"], ["0", "1"])
    cfg = _cfg(tmp_path, batch_size=2, options={"stage1_steps": 0})
    full, no_style = (C2FDANTask(n, "unused", faces=faces) for n in ("c2fdan", "c2fdan-no-style"))
    assert full.loss_weights(cfg)["style"] == 240.0 and no_style.loss_weights(cfg)["style"] == 0.0
    assert ({k: v for k, v in full.loss_weights(cfg).items() if k != "style"}
            == {k: v for k, v in no_style.loss_weights(cfg).items() if k != "style"})
    torch.manual_seed(0)
    model = no_style.build(cfg).eval()
    assert model.weights["style"] == 0.0
    assert count_parameters(model.generator) == count_parameters(create("tiny", "c2fdan"))
    batch = _batch(no_style, cfg, faces, 2)
    loss_0, metrics = no_style.loss(model, batch, cfg, "g")
    model.weights = full.loss_weights(cfg)
    loss_240, _ = full.loss(model, batch, cfg, "g")
    assert metrics["style"] > 0  # still computed and logged
    assert loss_240.item() - loss_0.item() == pytest.approx(240.0 * metrics["style"], rel=1e-4)


def test_stages_and_learning_rates_follow_the_paper(tmp_path, lfw_faces):
    paper = json.loads(open("baselines/c2fdan/configs/paper.json").read())
    cfg = _cfg(tmp_path, **{k: v for k, v in paper.items() if k != "arch"})
    n = 5797  # the aligned CelebA faces here
    faces = LabelledFaces("lfw", None, np.broadcast_to(lfw_faces[:1], (n, 112, 112, 3)),
                          np.zeros(n, np.int64), ["x"], ["0"] * n)
    task = C2FDANTask("c2fdan", "unused", faces=faces)
    model = task.build(cfg)
    per = task.per_epoch(cfg)
    assert per == 724 == model.stage1_steps  # one epoch of 5,797 faces at 8
    cfg.options["stage1_steps"] = None  # null: one epoch
    assert task.stage1_steps(cfg) == 724
    cfg.options["stage1_steps"] = 724

    def lrs(phase, step):
        factor = lr_factor(step, cfg, per)
        return [cfg.lr * factor * g["lr_scale"] for g in task.parameters(model, phase)[:-1]]

    assert lrs("c", 0) == pytest.approx([2e-4])  # stage 1: the coarse network
    assert lrs("g", 724) == pytest.approx([5e-5, 1e-4])  # stage 2: coarse, fine
    assert lrs("d", 724) == pytest.approx([1e-4])
    assert lrs("g", 1448) == pytest.approx([5e-6, 1e-5])  # x0.1 every epoch
    assert lrs("g", 4343) == pytest.approx([5e-9, 1e-8])
    cfg.options["lr_disc"] = 4e-4  # two time-scales: the discriminators' own peak, same decay
    assert lrs("d", 724) == pytest.approx([4e-4]) and lrs("d", 1448) == pytest.approx([4e-5])
    assert lrs("g", 724) == pytest.approx([5e-5, 1e-4])
    cfg.options["lr_disc"] = None
    cosine = _cfg(tmp_path, schedule="cosine", warmup=10, steps=100,
                  options={"stage1_steps": 40})
    task._cfg = cosine  # a warm-up: each stage's rates are its peak ones
    peak_c = max(cosine.lr * lr_factor(s, cosine, per) * task.parameters(model, "c")[0]["lr_scale"]
                 for s in range(40))
    assert peak_c == pytest.approx(2e-4)
    task._cfg = cfg
    groups = task.parameters(model, "g")
    assert sum(len(g["params"]) for g in groups[:-1]) == len(list(model.generator.parameters()))
    few = LabelledFaces("lfw", None, lfw_faces[:2], np.zeros(2, np.int64), ["x"], ["0", "1"])
    batch = _batch(C2FDANTask("c2fdan", "unused", faces=few), cfg, few, 2)
    model.step.fill_(723)  # the last step of stage 1: d and g idle, the coarse network trains
    loss, metrics = task.loss(model, batch, cfg, "d")
    assert loss.item() == 0 and metrics == dict.fromkeys(
        ("d_real", "d_fake", "d_real_m", "d_fake_m"), 0.0)
    assert task.loss(model, batch, cfg, "c")[0].item() > 0
    task.loss(model, batch, cfg, "g")
    assert int(model.step) == 724  # counted once per step, in the last phase
    loss, metrics = task.loss(model, batch, cfg, "c")  # stage 2: the c phase idles
    assert loss.item() == 0 and metrics == dict.fromkeys(("bce", "l1_occ", "l1_nocc"), 0.0)
    assert task.loss(model, batch, cfg, "g")[0].item() > 0


@pytest.mark.parametrize("name", ["c2fdan", "c2fdan-coarse"])
def test_train_two_steps_on_real_celeba_then_complete(tmp_path, data_root, lfw_faces, name):
    path, prov = train_tiny(name, data_root, tmp_path, limit=16, arch="tiny", steps=2,
                            batch_size=4, checkpoint_every=1, decay_every=1,
                            options={"stage1_steps": 1})  # one step of each stage
    assert path == tmp_path / "w" / f"{name}-tiny.safetensors"
    assert prov["data"]["set"] == "celeba" and prov["data"]["images"] == 16
    assert prov["steps"] == 2 and prov["parameters"] == count_parameters(create("tiny", name))
    assert all(np.isfinite(v) for v in prov["final"].values())
    assert all(np.isfinite(v) for row in prov["curve"] for v in row.values())
    ckpt = torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=False)
    assert int(ckpt["model"]["step"]) == 2  # the stage survives a resume
    if name == "c2fdan":
        first, second = ckpt["history"]
        assert first["loss_c"] > 0 and first["loss_d"] == first["loss_g"] == 0  # stage 1
        assert second["loss_c"] == 0 and second["loss_g"] > 0 and second["adv_g"] > 0
    faces = lfw_faces[:3]
    comp = create_completer(name, arch="tiny", weights=path)
    out, mask = comp.complete(faces)
    assert out.shape == (3, 112, 112, 3) and out.dtype == np.uint8
    assert mask.shape == (3, 112, 112) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    # composed by the predicted mask: a pixel moves at most 255 * M (+ rounding)
    change = np.abs(out.astype(np.int16) - faces.astype(np.int16))
    assert (change <= 255 * mask[..., None] + 1).all()
    assert comp.version.startswith("tiny-") and comp.name == name
    empty_out, empty_mask = comp.complete(np.zeros((0, 112, 112, 3), np.uint8))
    assert empty_out.shape == (0, 112, 112, 3) and empty_mask.shape == (0, 112, 112)


def test_completer_keeps_unoccluded_pixels_byte_for_byte(tmp_path, lfw_faces):
    net = create("tiny")
    with torch.no_grad():
        net.coarse.mask.head.weight.zero_()
        net.coarse.mask.head.bias.fill_(-1e4)
    path = tmp_path / "c2fdan-tiny.safetensors"
    save_file(net.state_dict(), str(path))
    comp = create_completer("c2fdan", arch="tiny", weights=path, device="cpu")
    out, mask = comp.complete(lfw_faces[:4])
    assert not mask.any() and np.array_equal(out, lfw_faces[:4])


def test_names_registered_trainable_and_missing_weights(tmp_path):
    assert set(NAMES) == set(VARIANTS)
    assert set(NAMES) <= set(list_models()["completers"])
    for name in NAMES:
        entry = registry.trainable.get(name)
        assert (entry.meta["folder"], entry.load().__module__) == ("c2fdan", "baselines.c2fdan.task")
        for config in ("small", "paper", "faces51k", "pixel-fine"):
            TrainConfig.load(config_path(name, config))
    with pytest.raises(OccbenchError, match="occbench train c2fdan-no-self --config small --data"):
        create_completer("c2fdan-no-self", weights=tmp_path / "missing.safetensors")
    # the -51k completers: the same networks, weights <name>-small-faces51k
    assert {f"{n}-51k" for n in NAMES} <= set(list_models()["completers"])
    with pytest.raises(OccbenchError, match="c2fdan-no-self-small-faces51k.safetensors; train them "
                                            "with `occbench train c2fdan-no-self --config faces51k"):
        create_completer("c2fdan-no-self-51k")
    with pytest.raises(OccbenchError, match="does not hold c2fdan --config paper"):
        net = create("tiny")
        path = tmp_path / "w.safetensors"
        save_file(net.state_dict(), str(path))
        create_completer("c2fdan", arch="paper", weights=path)
    assert load_recognizer().embedding_dim == 128


def test_batched_passes_equal_separate_ones():
    """The discriminators (fake and real) and the frozen recognizer (I_f and I_f,r) run as one
    batch each; the losses equal those of separate passes."""
    torch.manual_seed(0)
    gen, disc = create("tiny"), Discriminators(4, True)
    rec = load_recognizer("small")
    model = C2FDANTrainer(gen, disc, rec, stage1_steps=0).eval()
    occluded, clean = torch.rand(2, 2, 3, 112, 112) * 2 - 1
    mask = (torch.rand(2, 1, 112, 112) > 0.8).float()
    d_loss, _ = model(occluded, clean, mask, "d")
    out = model._kept[1]
    fake, real = disc(out.final.detach(), occluded), disc(clean, occluded)
    assert torch.allclose(d_loss, L.discriminator_adversarial(real, fake), atol=1e-6)
    _, parts = model(occluded, clean, mask, "g")
    target = rec.features(clean, FEATURES)
    fine, fine_r = rec.features(out.fine, FEATURES), rec.features(out.fine_r, FEATURES)
    per = L.perceptual(fine, target) + L.perceptual(fine_r, target)
    style = L.style(fine, target) + L.style(fine_r, target)
    assert torch.allclose(parts["per"], per, atol=1e-5)
    assert torch.allclose(parts["style"], style, rtol=1e-4, atol=1e-9)
    assert torch.allclose(parts["adv"], L.generator_adversarial(disc(out.fine_r, occluded)),
                          atol=1e-6)


def test_straight_through_clip_keeps_outputs_and_passes_gradient():
    from baselines.c2fdan.model import clip_unit

    x = torch.tensor([-3.0, -0.5, 0.25, 1.0, 2.0], requires_grad=True)
    hard, soft = clip_unit(x), clip_unit(x, pass_gradient=True)
    assert torch.equal(hard, soft) and torch.equal(hard, x.clamp(-1, 1))
    (g_hard,) = torch.autograd.grad(hard.sum(), x)
    (g_soft,) = torch.autograd.grad(soft.sum(), x)
    assert g_hard.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0] and g_soft.tolist() == [1.0] * 5
    torch.manual_seed(0)
    gen = create("tiny", "c2fdan")
    faces = torch.rand(2, 3, 112, 112) * 2 - 1
    before = gen(faces)[0]
    after = gen.pass_clip_gradient()(faces)[0]
    assert torch.equal(before, after)  # the completer sees no difference


def test_onnx_teacher_as_the_identity_losses_extractor(data_root, lfw_faces):
    """options.recognizer 'onnx': the teacher run by torch gives the perceptual / style terms a
    gradient to the fine network; a missing file or unknown argument is a one-line error."""
    from baselines.c2fdan.task import DEFAULTS, load_extractor
    from occbench.models.onnx_torch import OnnxExtractor
    from tests._onnx import MEAN, STD, onnx_path

    opts = {**DEFAULTS, "recognizer": "onnx", "recognizer_weights": str(onnx_path(data_root)),
            "recognizer_args": {"mean": list(MEAN), "std": list(STD)}}
    rec = load_extractor(opts)
    assert isinstance(rec, OnnxExtractor) and rec.mean.flatten().tolist() == pytest.approx(MEAN)
    torch.manual_seed(0)
    model = C2FDANTrainer(create("tiny"), Discriminators(4, True), rec, stage1_steps=0)
    clean = to_unit(torch.as_tensor(lfw_faces[:2]))
    mask = torch.zeros(2, 1, 112, 112)
    mask[:, :, 40:60, 30:80] = 1
    occluded = clean * (1 - mask)
    parts = model.generator_terms(occluded, clean, mask, model.generator(occluded, full=True))
    assert parts["per"] > 0 and parts["style"] > 0
    (parts["per"] + parts["style"]).backward()
    fine = [p.grad for p in model.generator.fine.parameters() if p.grad is not None]
    assert fine and sum(float(g.abs().sum()) for g in fine) > 0
    with pytest.raises(ConfigError, match="needs options.recognizer_weights"):
        load_extractor({**opts, "recognizer_weights": None})
    with pytest.raises(ConfigError, match=r"unknown \['flip'\]"):
        load_extractor({**opts, "recognizer_args": {"flip": 1}})
