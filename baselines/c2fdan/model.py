"""C2FDAN generator (Hörmann et al., FG 2021, section III-B.1, Fig. 5 and Fig. 6) for
112x112 faces in [-1, 1], and its configurations (timm style: :data:`CONFIGS`, :func:`create`).

Widths are given by ``width`` w (the paper: w = 64); every block below names its channels in
multiples of w.

* **Coarse network** (:class:`CoarseNet`): a U-Net 112 -> 28. Encoder: six 3x3 convs with
  LeakyReLU (slope 0.2): w, w at 112; 2w (stride 2), 2w at 56; 4w (stride 2), 4w at 28; then
  a :class:`DMFB` and one more 3x3 conv giving the latent map L (28x28x4w). Two decoders of
  the same shape (:class:`Decoder`), one for the image I_c and one for the mask M: per
  resolution (56, then 112) an upsampling block (nearest-neighbour x2 + 3x3 conv, no
  transposed convs), the encoder's feature map of that resolution concatenated, three 3x3
  convs; ReLU throughout; a last 3x3 conv to 3 channels (image, clipped to [-1, 1]) or to 1
  channel (mask logits; M = sigmoid).
* **Composition** (Eq. 2, :func:`compose`): I_r = (1 - M) * I + M * I_out, after the coarse
  and after the fine network, with the coarse network's M both times.
* **Fine network** (:class:`FineNet`): U-Net with ELU. Encoder: w, w at 112; 2w (stride 2),
  2w at 56 = X. Three branches at 56x56: (1) the skip X; (2) the patch-wise
  :class:`CrossAttention` on X (56x56x2w -> 56x56xw), a DMFB, a 3x3 conv to 2w; (3) a stride-2
  conv and a conv to 28x28x4w, the pixel-wise :class:`SelfAttention`, a DMFB, a 3x3 conv and an
  upsampling block to 56x56x2w. The branches are concatenated, fused by a 3x3 conv (to 2w) and a
  DMFB, and decoded to 112 as in the coarse network (upsampling block, encoder skip, three convs,
  last conv to 3 channels, clipped).
* :class:`DMFB` (dense multi-scale fusion block of DMFN, Zheng et al. 2019): 3x3 conv to C/4,
  four 3x3 convs of dilation 1, 2, 4, 8 on it, their outputs summed cumulatively
  (d1, d1+d2, d1+d2+d3, d1+d2+d3+d4), concatenated (C), fused by a 1x1 conv, added to the
  input. As in DMFN, parameter-free instance normalisation follows the first conv, the
  concatenation and the fusion conv.
* :class:`CrossAttention` (Fig. 6 left): 1x1 convs from C to C/2 (the paper: 128 -> 64) for
  query, key and value; the key multiplied by (1 - M); all 55x55 = 3025 overlapping 2x2 key
  patches, each L2-normalised; the 28x28 non-overlapping 2x2 query patches compared with every
  key patch by cosine similarity; argmax; the winning 2x2 value patches reassembled into a
  56x56 map and pasted with Eq. 2 (only inside the mask). M here is the coarse mask max-pooled
  to 56x56 (a feature pixel counts as occluded as much as its most occluded image pixel). A key
  patch that touches the occlusion (M >= 0.5 at any of its 4 pixels) is never chosen (masking
  the keys alone leaves zero vectors whose cosine 0 can beat the negative similarities of all
  real patches); an image with no free key patch keeps its value map unchanged. The argmax
  is not differentiable: the query and key convs receive no gradient and keep their
  initialisation (as in the paper's hard attention).
* :class:`SelfAttention` (Fig. 6 right, SAGAN-style): 1x1 convs to C/8 (query, key) and C/2
  (value); key and value max-pooled 2x2 (28 -> 14); A = softmax(Q K^T) over the 196 keys;
  Y = X + conv1x1(A V) (a plain residual, as stated, no learnt gate). Global: not restricted
  to the occluded area.

Variants (Table I ablations, :data:`VARIANTS`): ``c2fdan`` (full), ``c2fdan-coarse`` (coarse
network only), ``c2fdan-no-cross`` / ``c2fdan-no-self`` (fine network without that branch),
``c2fdan-no-local`` (generator as the full one; only the discriminators differ),
``c2fdan-no-style`` (generator and discriminators as the full one, trained without the style
loss: lambda_style = 0; the paper's best face-recognition model, its Fig. 7 "ours"), and one
that is not the paper's: ``c2fdan-pixel-fine`` (the full network, its pixel L1 losses on the
fine output too: ``pixel_on_fine``). A
variant's ``loss`` entry overrides the generator's loss weights (``task.WEIGHTS``).

Configurations (``CONFIGS``; ``disc_width`` is the discriminators' w): ``paper`` (w = 64:
coarse network 4,312,196 parameters, the paper says "about 4.1M"; whole generator 7,663,479),
``small`` (w = 16: 481,635 parameters, for two CPU cores), ``tiny`` (w = 4: 30,774, tests).
``Generator(x)`` returns ``(I_r, M)``: the final composed image in [-1, 1] and the mask in
[0, 1] (what :class:`occbench.models.torch_adapter.TorchCompleter` needs, with
``compose=False``); ``Generator(x, full=True)`` returns every intermediate (:class:`Outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from occbench.errors import ConfigError

CONFIGS: dict[str, dict] = {
    "paper": {"width": 64, "disc_width": 64},
    "small": {"width": 16, "disc_width": 16},
    "tiny": {"width": 4, "disc_width": 4},
}

# Table I rows: which parts of the generator (and of the discriminator set) each name has.
VARIANTS: dict[str, dict] = {
    "c2fdan": {"fine": True, "cross": True, "self_attention": True, "local": True},
    "c2fdan-coarse": {"fine": False, "cross": False, "self_attention": False, "local": False},
    "c2fdan-no-cross": {"fine": True, "cross": False, "self_attention": True, "local": True},
    "c2fdan-no-self": {"fine": True, "cross": True, "self_attention": False, "local": True},
    "c2fdan-no-local": {"fine": True, "cross": True, "self_attention": True, "local": False},
    "c2fdan-no-style": {"fine": True, "cross": True, "self_attention": True, "local": True,
                        "loss": {"style": 0.0}},
    # not one of the paper's rows: the pixel L1 losses also on the fine output I_f (the
    # paper's losses leave I_f's colours to the perceptual/style/adversarial terms alone)
    "c2fdan-pixel-fine": {"fine": True, "cross": True, "self_attention": True, "local": True,
                          "pixel_on_fine": True},
}


def conv(cin: int, cout: int, stride: int = 1, dilation: int = 1, k: int = 3) -> nn.Conv2d:
    """A k x k conv with 'same' padding (halving the size at stride 2)."""
    return nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation)


def clip_unit(x: torch.Tensor, pass_gradient: bool = False) -> torch.Tensor:
    """``x`` clipped to [-1, 1]. ``pass_gradient``: the same values, but the gradient passes
    the clip as if it were not there (straight-through), so a pixel held at the bound still
    learns to come back inside (a hard clip gives it no gradient at all)."""
    y = x.clamp(-1, 1)
    return x + (y - x).detach() if pass_gradient else y


def compose(image: torch.Tensor, mask: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Eq. 2: (1 - M) * I + M * I_out. Where M is 0 the result is I exactly."""
    return (1 - mask) * image + mask * output


class DMFB(nn.Module):
    """Dense multi-scale fusion block on C channels (C divisible by 4), residual."""

    def __init__(self, channels: int, act: type[nn.Module] = nn.ReLU, norm: bool = True):
        super().__init__()
        q = max(1, channels // 4)
        self.reduce = conv(channels, q)
        self.dilated = nn.ModuleList(conv(q, q, dilation=r) for r in (1, 2, 4, 8))
        self.fuse = nn.Conv2d(4 * q, channels, 1)
        self.act = act()
        self.use_norm = norm

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """Parameter-free instance normalisation (DMFN's), or nothing."""
        return F.instance_norm(x) if self.use_norm else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm(self.reduce(x)))
        parts, acc = [], None
        for d in self.dilated:
            y = d(h)
            acc = y if acc is None else acc + y
            parts.append(acc)
        h = self.fuse(self.act(self.norm(torch.cat(parts, 1))))
        return x + self.norm(h)


class UpBlock(nn.Module):
    """Nearest-neighbour x2 upsampling, 3x3 conv, activation."""

    def __init__(self, cin: int, cout: int, act: type[nn.Module]):
        super().__init__()
        self.conv, self.act = conv(cin, cout), act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(F.interpolate(x, scale_factor=2, mode="nearest")))


def conv_stack(cins: list[int], cout: int, act: type[nn.Module], first_stride: int = 1):
    """3x3 convs cins[0] -> cout -> ... (one per entry of ``cins``), each followed by ``act``."""
    layers: list[nn.Module] = []
    for i, cin in enumerate(cins):
        layers += [conv(cin, cout, stride=first_stride if i == 0 else 1), act()]
    return nn.Sequential(*layers)


class UpLevel(nn.Module):
    """One decoder resolution: upsampling block, skip concatenated, three 3x3 convs."""

    def __init__(self, cin: int, skip: int, cout: int, act: type[nn.Module]):
        super().__init__()
        self.up = UpBlock(cin, cout, act)
        self.convs = conv_stack([cout + skip, cout, cout], cout, act)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([self.up(x), skip], 1))


class Decoder(nn.Module):
    """28x28x4w -> 112x112x``out`` (with the encoder's 56 and 112 skips), ReLU, last conv."""

    def __init__(self, w: int, out: int):
        super().__init__()
        self.up56 = UpLevel(4 * w, 2 * w, 2 * w, nn.ReLU)
        self.up112 = UpLevel(2 * w, w, w, nn.ReLU)
        self.head = conv(w, out)

    def forward(self, latent, e56, e112):
        return self.head(self.up112(self.up56(latent, e56), e112))


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


class CoarseNet(nn.Module):
    """Coarse U-Net: ``forward(x) -> (I_c clipped to [-1, 1], mask logits)``."""

    def __init__(self, w: int):
        super().__init__()
        self.pass_clip_gradient = False  # training option, see clip_unit
        self.enc112 = conv_stack([3, w], w, _leaky)
        self.enc56 = conv_stack([w, 2 * w], 2 * w, _leaky, first_stride=2)
        self.enc28 = conv_stack([2 * w, 4 * w], 4 * w, _leaky, first_stride=2)
        self.dmfb = DMFB(4 * w, nn.ReLU)
        self.latent = conv_stack([4 * w], 4 * w, _leaky)
        self.image = Decoder(w, 3)
        self.mask = Decoder(w, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e112 = self.enc112(x)
        e56 = self.enc56(e112)
        latent = self.latent(self.dmfb(self.enc28(e56)))
        image = clip_unit(self.image(latent, e56, e112), self.pass_clip_gradient)
        return image, self.mask(latent, e56, e112)


class CrossAttention(nn.Module):
    """Patch-wise cross-attention: occluded 2x2 patches replaced by the most similar free one.

    ``forward(x, mask)``: x (N, C, H, W) with H, W even, mask (N, 1, H, W) in [0, 1] (1 =
    occluded). Returns Y (N, C', H, W), C' = ``cout`` (default C/2); with
    ``return_index=True`` also the chosen key patch per query patch (N, H/2 * W/2), indexing
    the (H-1) x (W-1) key patches row-major (top-left corner (i // (W-1), i % (W-1))).
    """

    def __init__(self, channels: int, cout: int | None = None, threshold: float = 0.5):
        super().__init__()
        c = cout or max(1, channels // 2)
        self.query, self.key, self.value = (nn.Conv2d(channels, c, 1) for _ in range(3))
        self.threshold = threshold

    def forward(self, x: torch.Tensor, mask: torch.Tensor, return_index: bool = False):
        n, _, h, w = x.shape
        v = self.value(x)
        with torch.no_grad():  # the argmax: no gradient reaches the query or the key
            q = F.unfold(self.query(x).float(), 2, stride=2)  # (N, 4c, h/2 * w/2)
            k = F.unfold((self.key(x) * (1 - mask)).float(), 2, stride=1)  # (N, 4c, P)
            q = F.normalize(q, dim=1)
            k = F.normalize(k, dim=1)
            sim = torch.bmm(q.transpose(1, 2), k)  # cosine similarity (N, h/2 * w/2, P)
            touched = F.max_pool2d(mask.float(), 2, stride=1).flatten(1) >= self.threshold
            sim.masked_fill_(touched[:, None, :], float("-inf"))  # in place: sim is bmm's own
            index = sim.argmax(2)  # (N, h/2 * w/2)
            usable = (~touched).any(1)  # an image with no free key patch pastes nothing
        patches = F.unfold(v, 2, stride=1)  # (N, 4c, P)
        chosen = torch.gather(patches, 2, index[:, None, :].expand(-1, patches.shape[1], -1))
        rebuilt = fold_2x2(chosen, h, w)  # (N, c, h, w)
        y = compose(v, mask, rebuilt)
        y = torch.where(usable[:, None, None, None], y, v)
        return (y, index) if return_index else y


def fold_2x2(patches: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.fold(patches, (h, w), 2, stride=2)``: (N, 4c, h/2 * w/2) non-overlapping 2x2
    patches (channel-major, as ``F.unfold`` lays them) back into (N, c, h, w). For even h, w
    this is a reshape (exact, and exportable to ONNX, which F.fold is not); odd sides keep
    F.fold (its last row / column stays 0)."""
    if h % 2 or w % 2:
        return F.fold(patches, (h, w), 2, stride=2)
    n = patches.shape[0]
    c = patches.shape[1] // 4
    x = patches.reshape(n, c, 2, 2, h // 2, w // 2)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(n, c, h, w)


class SelfAttention(nn.Module):
    """Pixel-wise global self-attention with keys/values max-pooled 2x2, plus the input."""

    def __init__(self, channels: int):
        super().__init__()
        qk, vc = max(1, channels // 8), max(1, channels // 2)
        self.query, self.key = nn.Conv2d(channels, qk, 1), nn.Conv2d(channels, qk, 1)
        self.value, self.out = nn.Conv2d(channels, vc, 1), nn.Conv2d(vc, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q = self.query(x).flatten(2)  # (N, qk, HW)
        k = F.max_pool2d(self.key(x), 2).flatten(2)  # (N, qk, HW/4)
        v = F.max_pool2d(self.value(x), 2).flatten(2)  # (N, vc, HW/4)
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=2)  # (N, HW, HW/4)
        y = torch.bmm(v, attn.transpose(1, 2)).reshape(n, -1, h, w)
        return x + self.out(y)


class FineNet(nn.Module):
    """Fine U-Net with the parallel cross- and self-attention branches (ELU)."""

    def __init__(self, w: int, cross: bool = True, self_attention: bool = True):
        super().__init__()
        self.pass_clip_gradient = False  # training option, see clip_unit
        self.enc112 = conv_stack([3, w], w, nn.ELU)
        self.enc56 = conv_stack([w, 2 * w], 2 * w, nn.ELU, first_stride=2)
        self.cross = self.cross_post = None
        if cross:
            self.cross = CrossAttention(2 * w, w)
            self.cross_post = nn.Sequential(DMFB(w, nn.ELU), conv(w, 2 * w), nn.ELU())
        self.attend_in = self.attention = self.attend_post = None
        if self_attention:
            self.attend_in = conv_stack([2 * w, 4 * w], 4 * w, nn.ELU, first_stride=2)
            self.attention = SelfAttention(4 * w)
            self.attend_post = nn.Sequential(DMFB(4 * w, nn.ELU), conv(4 * w, 4 * w), nn.ELU(),
                                             UpBlock(4 * w, 2 * w, nn.ELU))
        branches = 1 + int(cross) + int(self_attention)
        self.fuse = nn.Sequential(conv(branches * 2 * w, 2 * w), nn.ELU(), DMFB(2 * w, nn.ELU))
        self.up112 = UpLevel(2 * w, w, w, nn.ELU)
        self.head = conv(w, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e112 = self.enc112(x)
        e56 = self.enc56(e112)
        branches = [e56]
        if self.cross is not None:
            m56 = F.max_pool2d(mask, 2)
            branches.append(self.cross_post(self.cross(e56, m56)))
        if self.attention is not None:
            branches.append(self.attend_post(self.attention(self.attend_in(e56))))
        fused = self.fuse(torch.cat(branches, 1))
        return clip_unit(self.head(self.up112(fused, e112)), self.pass_clip_gradient)


@dataclass
class Outputs:
    """Every image of one generator pass (images in [-1, 1], (N, 3, 112, 112))."""

    coarse: torch.Tensor  # I_c
    coarse_r: torch.Tensor  # I_c,r = (1 - M) I + M I_c
    mask_logits: torch.Tensor  # (N, 1, 112, 112); M = sigmoid
    mask: torch.Tensor
    fine: torch.Tensor | None  # I_f (None: coarse-only variant)
    fine_r: torch.Tensor | None  # I_f,r

    @property
    def final(self) -> torch.Tensor:
        return self.coarse_r if self.fine_r is None else self.fine_r


class Generator(nn.Module):
    """Coarse network, composition, fine network (unless ``fine=False``), composition."""

    def __init__(self, width: int = 64, fine: bool = True, cross: bool = True,
                 self_attention: bool = True):
        super().__init__()
        self.coarse = CoarseNet(width)
        self.fine = FineNet(width, cross, self_attention) if fine else None

    def pass_clip_gradient(self, on: bool = True) -> Generator:
        """Straight-through clips of I_c and I_f (:func:`clip_unit`): the outputs are
        unchanged, only training sees the difference."""
        for net in (self.coarse, self.fine):
            if net is not None:
                net.pass_clip_gradient = on
        return self

    def forward(self, x: torch.Tensor, full: bool = False):
        coarse, logits = self.coarse(x)
        mask = torch.sigmoid(logits)
        coarse_r = compose(x, mask, coarse)
        fine = fine_r = None
        if self.fine is not None:
            fine = self.fine(coarse_r, mask)
            fine_r = compose(x, mask, fine)
        out = Outputs(coarse, coarse_r, logits, mask, fine, fine_r)
        return out if full else (out.final, mask)


def arch_config(arch: str) -> dict:
    if arch not in CONFIGS:
        raise ConfigError(f"unknown c2fdan config {arch!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[arch]


def variant_config(name: str) -> dict:
    if name not in VARIANTS:
        raise ConfigError(f"unknown c2fdan variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def create(arch: str = "small", variant: str = "c2fdan") -> Generator:
    """The generator of configuration ``arch`` for the Table I row ``variant``."""
    cfg, var = arch_config(arch), variant_config(variant)
    return Generator(cfg["width"], var["fine"], var["cross"], var["self_attention"])


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
