"""C2FDAN's seven discriminators (Hörmann et al., FG 2021, section III-B.2).

Every discriminator sees a crop of the image under judgement (the completed face I_f,r or the
clean face I_gt) concatenated along channels with the same crop of the occluded input I
(6 channels), and is four 3x3 convs with LeakyReLU (slope 0.2), the first two of stride 2,
channels ``w, 2w, 4w, 1`` (the paper does not give widths; w = 64 in the ``paper`` config),
with no normalisation layers:

* ``global``: the whole 112x112 face -> 28x28x1, LeakyReLU, a fully connected layer to one
  logit (probability = sigmoid);
* ``face``: the whole face, patch discriminator: 28x28 logits;
* ``left_eye``, ``right_eye``, ``nose``, ``mouth``: 28x28 crops centred on the ArcFace template
  points of :mod:`occbench.template` (the mouth: midpoint of the corners) -> 7x7 logits;
* ``eyes``: the left-eye crop and the horizontally flipped right-eye crop, concatenated along
  channels (output and input: 12 channels), so that both eyes must agree (eye colour).

A patch discriminator's probability is the mean of its pixel-wise sigmoids
(:func:`baselines.c2fdan.losses.log_prob`). ``local=False`` keeps only ``global`` and ``face``
(the ``c2fdan-no-local`` ablation).

Outside the occluder the completed face I_f,r is the input, so most patches see the same
pixels in real and fake and sit at 1/2 whatever the discriminator learns; :meth:`Discriminators.
overlap` says which outputs see the occluder (a training diagnostic: the probabilities there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occbench.template import LEFT_EYE, MOUTH, NOSE, RIGHT_EYE, crop_box

CROP = 28
REGIONS = {"left_eye": LEFT_EYE, "right_eye": RIGHT_EYE, "nose": NOSE, "mouth": MOUTH}
BOXES = {name: crop_box(centre, CROP) for name, centre in REGIONS.items()}  # (x0, y0, x1, y1)
GLOBAL_NAMES = ("global", "face")
LOCAL_NAMES = ("left_eye", "right_eye", "nose", "mouth", "eyes")


def crop(x: torch.Tensor, region: str) -> torch.Tensor:
    """The 28x28 crop of ``region`` of (N, C, 112, 112) faces."""
    x0, y0, x1, y1 = BOXES[region]
    return x[:, :, y0:y1, x0:x1]


def _convs(cin: int, w: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, w, 3, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(w, 2 * w, 3, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * w, 4 * w, 3, 1, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(4 * w, 1, 3, 1, 1))


class PatchDiscriminator(nn.Module):
    """Four convs -> pixel-wise logits (N, 1, H/4, W/4)."""

    def __init__(self, cin: int, w: int):
        super().__init__()
        self.convs = _convs(cin, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class GlobalDiscriminator(nn.Module):
    """Four convs to 28x28x1, LeakyReLU, fully connected -> one logit (N, 1)."""

    def __init__(self, cin: int, w: int, size: int = 112):
        super().__init__()
        self.convs = _convs(cin, w)
        self.act = nn.LeakyReLU(0.2)
        self.fc = nn.Linear((size // 4) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.convs(x)).flatten(1))


class Discriminators(nn.Module):
    """The set of discriminators; ``forward(image, occluded)`` -> {name: logits}."""

    def __init__(self, w: int = 64, local: bool = True):
        super().__init__()
        nets: dict[str, nn.Module] = {"global": GlobalDiscriminator(6, w),
                                      "face": PatchDiscriminator(6, w)}
        if local:
            for name in REGIONS:
                nets[name] = PatchDiscriminator(6, w)
            nets["eyes"] = PatchDiscriminator(12, w)
        self.nets = nn.ModuleDict(nets)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.nets)

    def forward(self, image: torch.Tensor, occluded: torch.Tensor) -> dict[str, torch.Tensor]:
        pair = torch.cat([image, occluded], 1)  # (N, 6, 112, 112)
        out = {"global": self.nets["global"](pair), "face": self.nets["face"](pair)}
        for name in REGIONS:
            if name in self.nets:
                out[name] = self.nets[name](crop(pair, name))
        if "eyes" in self.nets:
            left, right = crop(image, "left_eye"), crop(image, "right_eye").flip(3)
            left_in, right_in = crop(occluded, "left_eye"), crop(occluded, "right_eye").flip(3)
            out["eyes"] = self.nets["eyes"](torch.cat([left, right, left_in, right_in], 1))
        return out

    def overlap(self, mask: torch.Tensor, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{name: bool tensor shaped like ``logits[name]``}: the outputs whose cell of the
        (N, 1, 112, 112) ``mask`` holds an occluded pixel. A patch output's cell is its
        stride-4 block (112 -> 28, a 28-crop -> 7; its receptive field reaches a little
        further); ``global``'s one output sees the whole face; ``eyes`` sees both eye crops
        (the right one flipped, as its input)."""
        def cells(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.adaptive_max_pool2d(m.float(), like.shape[-2:]) > 0

        out = {}
        for name, z in logits.items():
            if name == "global":
                out[name] = mask.flatten(1).amax(1, keepdim=True).reshape(z.shape) > 0
            elif name == "face":
                out[name] = cells(mask, z)
            elif name == "eyes":
                both = torch.maximum(crop(mask, "left_eye"), crop(mask, "right_eye").flip(3))
                out[name] = cells(both, z)
            else:
                out[name] = cells(crop(mask, name), z)
        return out
