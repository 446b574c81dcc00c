"""BVMR: the blind visual motif removal network of Hertz et al., "Blind Visual Motif Removal
from a Single Image" (CVPR 2019), for 112x112 faces.

Published facts followed (paper and the authors' code, amirhertz/visual_motif_removal,
``networks/`` and ``train/train_main.py``):

* **One shared encoder**, a U-Net of ``depth`` = 5 levels with ``start_filters`` = 32 channels
  doubling per level (32-64-128-256-512); each level is a 3x3 conv + ReLU followed by
  ``blocks`` residual 3x3 conv + BatchNorm (+ identity) + ReLU units, then 2x2 max-pooling
  (not after the last level). At 112x112 the levels are 112, 56, 28, 14 and 7 pixels.
* **Decoders** built from up-steps: a 2x2 stride-2 transposed conv halving the channels, the
  encoder's skip of that resolution concatenated, a 3x3 conv + ReLU, then ``blocks`` residual
  units as in the encoder.
* **Three heads**: the *mask* decoder runs from the bottleneck on its own (4 up-steps, 1x1
  conv, sigmoid); the *image* and *motif* decoders share the first ``shared_depth`` = 2
  up-steps (512 -> 256 -> 128 at 28x28) and then each have their own 2 up-steps, a 1x1 conv
  and tanh. Outputs in [-1, 1] (image, motif) and [0, 1] (mask).
* The published configuration: 3 residual units everywhere (``num_blocks = (3, 3, 3, 3, 3)``),
  shared depth 2, motif decoder on. Xavier-normal init of the (non-transposed) convs, zero
  biases.
* At test time the completed image is (1 - M) * I + M * I_c with the *predicted* mask M
  (the authors' visualisation; ``TorchCompleter.compose``).

Configurations (``CONFIGS``, timm style; :func:`create`):

* ``paper``: as published (start_filters 32, 3 residual units per stage, shared depth 2,
  motif decoder): 20,514,919 parameters (about 20.5M, as published; the fully convolutional
  network's count does not depend on the 112x112 input).
* ``small``: start_filters 8, 1 residual unit per stage, same topology (shared depth 2, all
  three decoders): 688,927 parameters; its config (1,500 steps of 32) trains on two free CPU cores in
  about a quarter of an hour.

``BVMR(x)`` returns ``(image, mask)`` (what :class:`occbench.models.torch_adapter.
TorchCompleter` needs); ``BVMR(x, motif=True)`` returns ``(image, mask, motif)`` (training).
"""

from __future__ import annotations

import torch
from torch import nn

from occbench.errors import ConfigError

CONFIGS: dict[str, dict] = {
    "paper": {"start_filters": 32, "depth": 5, "blocks": 3, "shared_depth": 2,
              "motif_decoder": True},
    "small": {"start_filters": 8, "depth": 5, "blocks": 1, "shared_depth": 2,
              "motif_decoder": True},
}


class ResidualStage(nn.Module):
    """3x3 conv (cin -> cout) + ReLU, then ``blocks`` units y = ReLU(x + BN(conv3x3(x)))."""

    def __init__(self, cin: int, cout: int, blocks: int):
        super().__init__()
        self.entry = nn.Conv2d(cin, cout, 3, padding=1)
        self.convs = nn.ModuleList(nn.Conv2d(cout, cout, 3, padding=1) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.BatchNorm2d(cout) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.entry(x))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = torch.relu(x + norm(conv(x)))
        return x


class UpStep(nn.Module):
    """2x2 stride-2 transposed conv (cin -> cout), concatenate the skip (cout channels), then a
    :class:`ResidualStage` (2 cout -> cout)."""

    def __init__(self, cin: int, cout: int, blocks: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.stage = ResidualStage(2 * cout, cout, blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stage(torch.cat((self.up(x), skip), 1))


class Decoder(nn.Module):
    """``steps`` up-steps from ``cin`` channels (halving each time), starting ``first`` up-steps
    below the bottleneck (which encoder skips it takes), and an optional 1x1 output conv."""

    def __init__(self, cin: int, steps: int, blocks: int, first: int, out: int | None):
        super().__init__()
        self.first = first
        self.steps = nn.ModuleList(UpStep(cin >> i, cin >> (i + 1), blocks) for i in range(steps))
        self.head = nn.Conv2d(cin >> steps, out, 1) if out else None

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        # up-step k along the path from the bottleneck takes the skip of level depth - 2 - k
        for k, step in enumerate(self.steps, start=self.first):
            x = step(x, skips[-2 - k])
        return self.head(x) if self.head is not None else x


class BVMR(nn.Module):
    """Shared encoder; mask decoder; image and motif decoders sharing ``shared_depth`` steps.

    Input (N, 3, H, W) in [-1, 1], H and W divisible by 2 ** (depth - 1).
    """

    def __init__(self, start_filters: int = 32, depth: int = 5, blocks: int = 3,
                 shared_depth: int = 2, motif_decoder: bool = True, in_channels: int = 3):
        super().__init__()
        if not 0 <= shared_depth < depth - 1:
            raise ConfigError(f"shared_depth must be in 0 .. {depth - 2}, got {shared_depth}")
        widths = [start_filters * 2 ** i for i in range(depth)]
        self.depth = depth
        self.encoder = nn.ModuleList(
            ResidualStage(cin, cout, blocks) for cin, cout in zip([in_channels] + widths[:-1],
                                                                   widths, strict=True))
        self.pool = nn.MaxPool2d(2)
        top = widths[-1]
        rest = depth - 1 - shared_depth  # up-steps of each of the image / motif decoders
        self.shared = Decoder(top, shared_depth, blocks, 0, None) if shared_depth else None
        branch = top >> shared_depth
        self.image = Decoder(branch, rest, blocks, shared_depth, 3)
        self.motif = Decoder(branch, rest, blocks, shared_depth, 3) if motif_decoder else None
        self.mask = Decoder(top, depth - 1, blocks, 0, 1)
        for m in self.modules():  # the authors' init: Xavier-normal convs, zero biases
            if type(m) is nn.Conv2d:
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's outputs of every level (before pooling), finest first."""
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(self.pool(x) if i else x)
            skips.append(x)
        return skips

    def forward(self, x: torch.Tensor, motif: bool = False):
        skips = self.encode(x)
        code = skips[-1]
        branch = self.shared(code, skips) if self.shared is not None else code
        image = torch.tanh(self.image(branch, skips))
        mask = torch.sigmoid(self.mask(code, skips))
        if not motif:
            return image, mask
        if self.motif is None:
            raise ConfigError("this BVMR configuration has no motif decoder")
        return image, mask, torch.tanh(self.motif(branch, skips))


def create(arch: str = "small", **overrides) -> BVMR:
    """The network of configuration ``arch`` (``paper`` or ``small``); ``overrides`` replace
    config values (e.g. ``start_filters=4`` for tests)."""
    if arch not in CONFIGS:
        raise ConfigError(f"unknown BVMR config {arch!r}; known: {', '.join(sorted(CONFIGS))}")
    return BVMR(**{**CONFIGS[arch], **overrides})


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
