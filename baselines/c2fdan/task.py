"""Training task of C2FDAN and its Table I ablations (``occbench train c2fdan``,
``c2fdan-coarse``, ``c2fdan-no-cross``, ``c2fdan-no-self``, ``c2fdan-no-local``,
``c2fdan-no-style``) on aligned CelebA faces: Hörmann et al., FG 2021, sections III-C
(losses) and IV-A (training).

Data: every face flipped (p = 1/2) and occluded (``options.occlusion_p``, default 1.0) by the
shared sampler :func:`occbench.occlusion.sample_training_occlusion` (rect a ~ U[0.01, 0.15]
or text h ~ U[0.05, 0.5], random position and colour), as in IV-A.

Two stages in one run (IV-A), switched at step ``options.stage1_steps`` (default: one epoch):

1. **Coarse network alone**, pixel losses only: lambda_m = 1, lambda_occ = 3, lambda_nocc = 1
   (``options.stage1_weights``), learning rate ``options.lr_coarse_stage1`` (2e-4).
2. **Whole network as a GAN**: per step the discriminators (Eq. 12), then the generator
   (Eq. 4: lambda_m = 10, lambda_occ = 3, lambda_nocc = 1, lambda_per = 0.1, lambda_style = 240,
   lambda_adv = 1; ``options.weights``), each with its own Adam. Learning rates: ``lr``
   (1e-4) for the new weights (fine network, discriminators; ``options.lr_disc`` gives the
   discriminators their own, a two time-scale update), ``options.lr_coarse`` (5e-5)
   for the pretrained coarse network. The pixel L1 losses are on the coarse output I_c
   (``options.pixel_on_fine``: also on I_f, the starred row of Table I); perceptual and style
   losses on I_f and I_f,r, on ``block1`` and ``block3`` of the frozen in-repo recognizer
   (``options.recognizer``: the ResNet-v2 arch whose committed ``resnet50-<arch>`` weights
   are loaded: ``small``, the first weights, 12 % TPIR@1; ``mid``, the student distilled from
   the ONNX MobileFaceNet, 83.3 % TPIR@1 (62.5 % before issue 30), which ``faces51k`` uses,
   as the paper uses its pretrained ResNet50-v2; ``options.recognizer_weights`` names another
   file; ``onnx``: the ONNX teacher itself, run by torch so that its maps have gradients,
   ``recognizer_weights`` = the .onnx file, ``recognizer_args`` its mean / std / channels;
   :func:`load_extractor`);
   the adversarial loss on I_f,r, the mean over the seven discriminators (two without the
   local ones, ``c2fdan-no-local``).

``options.clip_gradient`` (default false, the paper's hard clip): the clips of I_c and I_f to
[-1, 1] pass the gradient straight through (same outputs; a pixel held at the bound still
learns to come back, which ``reports/c2fdan_gradients.py`` shows the loss asks for).

``c2fdan-coarse`` trains stage 1 only, for all the config's steps; ``c2fdan-no-style`` sets
lambda_style = 0 over whatever the config says (the style loss is still computed and logged).

The loop's schedule is one global factor; each stage's learning rates above are its peak ones
(those of its first step under ``step`` and ``constant`` schedules; ``lr_scale`` of each
parameter group is set so), and the schedule's factor relative to that peak applies within
the stage. The paper's schedule (x0.1 every epoch, from the start of
stage 2) is ``schedule: step`` with ``decay_every`` = ``stage1_steps`` = one epoch.

Mechanics: the phases are ``("c", "d", "g")`` (``("c",)`` for the coarse-only variant), each
with its own optimiser: ``c`` = stage-1 coarse network, ``d`` = discriminators, ``g`` = stage-2
generator, so stage 2 starts with fresh Adam moments, as the paper's reload of the coarse
weights does. A phase idle in the current stage returns 0 times a dummy scalar parameter of
its own (its optimiser's only gradient: a zero, which moves nothing). The step count lives in
a buffer of the trained module, so a resumed run knows its stage. The generator pass of the
``d`` phase is kept for the ``g`` phase of the same step (the generator does not change in
between): one generator forward per step.

Configs (``configs/``): ``paper`` = width 64, batch 8, 6 epochs of the 5,797 CelebA faces
here (724 steps each: 724 steps of stage 1, 3,620 of stage 2, x0.1 every epoch), Adam
(0.9, 0.999; betas are not given in the paper), mixed precision, identity losses from the
distilled ``mid`` recognizer, for a GPU. ``small`` = width
16 (generator and discriminators), batch 16, 900 steps: 300 of stage 1 (0.8 epoch), 600 of
stage 2 (1.7 epochs), learning rates as the paper's, x0.5 every 300 steps (x0.1 per epoch
would stop a run this short). Measured with one thread on a 2-core machine whose cores were
both busy with another job: 1.1 s/step in stage 1 and 2.9 s/step in stage 2 (35 min in all),
so about 15-20 min on two free cores. On a busy machine set ``OMP_NUM_THREADS=1`` (two threads
on contended cores ran 3-5x slower than one). ``c2fdan-coarse`` with ``small``: 900 stage-1
steps, about half that time. ``faces51k`` = ``small`` continued (``init``: the committed small
weights) on the ~51k faces of ``baselines/data/faces-51k.json`` (``options.sources``; see the
README for the snapshots) with the ``mid`` extractor: 200 coarse-only steps (the new faces),
then 1,500 GAN steps, x0.5 every 500; weights ``<name>-small-faces51k`` (config ``tag``),
the completers ``<name>-51k``. Stage 2 ran at ~2.3 s/step on one thread.
``campaign`` (issue 30) = the paper's schedule on those faces, continued from the ``faces51k``
weights: 2 epochs of stage 1 (6,284 steps x 16: more than BVMR-51k's budget, for the mask),
then 5 epochs of stage 2, x0.1 every epoch (3,142 steps), 1,000 held-out faces measured every
500 steps; ~19 img/s in stage 2 on two cores in bf16, so it runs in segments (``--minutes``,
``--resume``). Its weights are ``<name>-small-campaign`` (config ``tag``) until the run is
complete, so the benchmarked ``-51k`` completers do not change half-way; the first try with
straight-through clips (``clip_gradient: true``) ran away 1,600 steps into stage 2 (loss_g
2.1 -> 2e5, the mask BCE first), so the campaign keeps the paper's hard clip.
``extractor-student`` / ``extractor-teacher`` (issue 30's A/B of the identity losses'
extractor): the same 800 GAN steps (constant lr) from the committed ``c2fdan-coarse-51k`` coarse
network and a fresh fine network, on the campaign's faces and held-out set, with the ``mid``
student or the ONNX teacher (``../shared/models/``, run from the repository root);
``reports/extractor_ab.py`` judges both under both recognizers. Three more arms of the same
runs, one change each: ``ttur`` (``lr_disc`` 4e-4), ``identity-balanced`` (lambda_per 0.5,
lambda_style 1920) and ``pixel-on-fine`` (the L1 terms also on I_f).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from baselines.c2fdan import losses as L
from baselines.c2fdan.discriminators import Discriminators
from baselines.c2fdan.model import Generator, arch_config, create, variant_config
from baselines.resnet50.adapter import load_frozen as load_recognizer
from occbench.data.labelled import LabelledFaces
from occbench.errors import ConfigError
from occbench.models.torch_adapter import to_unit
from occbench.train.data import CelebATask, FaceDataset
from occbench.train.loop import TrainConfig, lr_factor, steps_per_epoch

FEATURES = ("block1", "block3")
STAGE1_WEIGHTS = {"mask": 1.0, "occ": 3.0, "nocc": 1.0}
WEIGHTS = {"mask": 10.0, "occ": 3.0, "nocc": 1.0, "per": 0.1, "style": 240.0, "adv": 1.0}
# the weight (lambda) of each generator term
WEIGHT_OF = {"bce": "mask", "l1_occ": "occ", "l1_nocc": "nocc", "per": "per", "style": "style",
             "adv": "adv"}
# d_real / d_fake: the discriminators' mean probability of "real" over all their outputs;
# d_real_m / d_fake_m: over the outputs that see the occluder (where real and fake differ)
METRICS = {"c": ("bce", "l1_occ", "l1_nocc"), "d": ("d_real", "d_fake", "d_real_m", "d_fake_m"),
           "g": ("bce", "l1_occ", "l1_nocc", "per", "style", "adv")}
DEFAULTS = {"sources": None, "occlusion_p": 1.0, "stage1_steps": None,
            "lr_coarse_stage1": 2e-4, "lr_coarse": 5e-5, "lr_disc": None,
            "stage1_weights": None, "weights": None, "pixel_on_fine": False,
            "recognizer": "small", "recognizer_weights": None, "recognizer_args": {},
            "clip_gradient": False}


def load_extractor(opts: dict) -> nn.Module:
    """The frozen recognizer of the identity losses (and of the held-out identity cosine):
    ``options.recognizer`` = a ResNet-v2 arch of ``baselines/resnet50`` (its committed weights,
    or ``recognizer_weights``), or ``onnx``: the ONNX file ``recognizer_weights`` run by torch
    (:class:`occbench.models.onnx_torch.OnnxExtractor`; ``recognizer_args``: channels, mean,
    std as the ``onnx`` recognizer's options)."""
    if opts["recognizer"] != "onnx":
        return load_recognizer(opts["recognizer"], opts["recognizer_weights"])
    from occbench.models.onnx_torch import OnnxExtractor

    if not opts["recognizer_weights"]:
        raise ConfigError("options.recognizer 'onnx' needs options.recognizer_weights: the "
                          ".onnx file (e.g. ../shared/models/mobilefacenet-foamliu.onnx)")
    args = dict(opts.get("recognizer_args") or {})
    unknown = sorted(set(args) - {"channels", "mean", "std"})
    if unknown:
        raise ConfigError(f"options.recognizer_args: unknown {unknown}; known: channels, "
                          "mean, std")
    return OnnxExtractor(opts["recognizer_weights"], **args)


def where_occluded(logits: dict[str, torch.Tensor], seen: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean sigmoid of each discriminator's outputs that see the occluder (``seen``), averaged
    over the discriminators that have any (0 when none has)."""
    means = [torch.sigmoid(z.detach().float())[seen[k]].mean() for k, z in logits.items()
             if seen[k].any()]
    return torch.stack(means).mean() if means else torch.zeros(())


class C2FDANTrainer(nn.Module):
    """Generator, discriminators and the frozen recognizer; ``forward`` computes one phase's
    loss (through ``forward`` so that DistributedDataParallel sees every pass).

    ``forward(occluded, clean, mask, phase)`` -> (loss, {name: detached tensor}); images in
    [-1, 1] (N, 3, 112, 112), mask (N, 1, 112, 112) in {0, 1}.
    """

    def __init__(self, generator: Generator, discriminators: Discriminators | None = None,
                 recognizer: nn.Module | None = None, *, stage1_steps: int = 0,
                 stage1_weights: dict | None = None, weights: dict | None = None,
                 pixel_on_fine: bool = False):
        super().__init__()
        self.generator, self.discriminators, self.recognizer = generator, discriminators, recognizer
        self.coarse_only = generator.fine is None
        self.phases = ("c",) if self.coarse_only else ("c", "d", "g")
        self.anchors = nn.ParameterDict({p: nn.Parameter(torch.zeros(())) for p in self.phases})
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.stage1_steps = stage1_steps
        self.stage1_weights = {**STAGE1_WEIGHTS, **(stage1_weights or {})}
        self.weights = {**WEIGHTS, **(weights or {})}
        self.pixel_on_fine = pixel_on_fine
        self._kept = None  # (input tensor, generator outputs) of the d phase, for the g phase

    def train(self, mode: bool = True):
        super().train(mode)
        if self.recognizer is not None:
            self.recognizer.eval()  # frozen: batch-norm statistics stay the pretrained ones
        return self

    def stage(self) -> int:
        return 1 if self.coarse_only or int(self.step) < self.stage1_steps else 2

    def idle(self, phase: str):
        """0 (times the phase's dummy parameter) and its figures as 0, so that every step
        reports the same names (no gaps in the provenance curve)."""
        zero = torch.zeros((), device=self.step.device)
        return self.anchors[phase] * 0.0, dict.fromkeys(METRICS[phase], zero)

    def forward(self, occluded, clean, mask, phase: str):
        stage = self.stage()
        if phase == self.phases[-1]:
            self.step += 1
        if phase == "c":
            return self.coarse_loss(occluded, clean, mask) if stage == 1 else self.idle(phase)
        if stage == 1:
            return self.idle(phase)
        if phase == "d":
            return self.discriminator_loss(occluded, clean, mask)
        return self.generator_loss(occluded, clean, mask)

    def coarse_loss(self, occluded, clean, mask):
        image, logits = self.generator.coarse(occluded)
        w = self.stage1_weights
        with torch.autocast(occluded.device.type, enabled=False):
            parts = {"bce": L.mask_bce(logits, mask),
                     "l1_occ": L.normalised_l1(image, clean, mask),
                     "l1_nocc": L.normalised_l1(image, clean, mask, invert=True)}
            loss = w["mask"] * parts["bce"] + w["occ"] * parts["l1_occ"] + w["nocc"] * parts["l1_nocc"]
        return loss, {k: v.detach() for k, v in parts.items()}

    def discriminator_loss(self, occluded, clean, mask):
        out = self.generator(occluded, full=True)
        self._kept = (occluded, out)
        # fake and real through the discriminators as one batch (they hold no batch
        # statistics, so each image's output is the same as in two passes)
        n = occluded.shape[0]
        both = self.discriminators(torch.cat([out.final.detach(), clean]),
                                   torch.cat([occluded, occluded]))
        fake = {k: v[:n] for k, v in both.items()}
        real = {k: v[n:] for k, v in both.items()}
        with torch.autocast(occluded.device.type, enabled=False):
            loss = L.discriminator_adversarial(real, fake)
            d_real = torch.stack([L.log_prob(z).exp().mean() for z in real.values()]).mean()
            d_fake = torch.stack([L.log_prob(z).exp().mean() for z in fake.values()]).mean()
            seen = self.discriminators.overlap(mask, real)
        return loss, {"d_real": d_real.detach(), "d_fake": d_fake.detach(),
                      "d_real_m": where_occluded(real, seen), "d_fake_m": where_occluded(fake, seen)}

    def generator_loss(self, occluded, clean, mask):
        kept, self._kept = self._kept, None
        same = (kept is not None and kept[0].shape == occluded.shape
                and torch.equal(kept[0], occluded))
        out = kept[1] if same else self.generator(occluded, full=True)
        parts = self.generator_terms(occluded, clean, mask, out)
        w = self.weights
        with torch.autocast(occluded.device.type, enabled=False):
            loss = sum(w[WEIGHT_OF[k]] * v for k, v in parts.items())
        return loss, {k: v.detach() for k, v in parts.items()}

    def generator_terms(self, occluded, clean, mask, out) -> dict[str, torch.Tensor]:
        """Eq. 4's terms (unweighted, float32, with their graphs) for the generator outputs
        ``out``: ``bce``, ``l1_occ``, ``l1_nocc`` (on I_c; also I_f with ``pixel_on_fine``),
        ``per``, ``style`` (I_f and I_f,r against the clean face), ``adv``."""
        with torch.no_grad():
            target = self.recognizer.features(clean, FEATURES)
        # I_f and I_f,r through the frozen recognizer as one batch (eval mode: per-image)
        n = occluded.shape[0]
        both = self.recognizer.features(torch.cat([out.fine, out.fine_r]), FEATURES)
        fine = {k: v[:n] for k, v in both.items()}
        fine_r = {k: v[n:] for k, v in both.items()}
        fake = self.discriminators(out.fine_r, occluded)
        with torch.autocast(occluded.device.type, enabled=False):
            parts = {"bce": L.mask_bce(out.mask_logits, mask)}
            images = [out.coarse] + ([out.fine] if self.pixel_on_fine else [])
            parts["l1_occ"] = sum(L.normalised_l1(im, clean, mask) for im in images)
            parts["l1_nocc"] = sum(L.normalised_l1(im, clean, mask, invert=True) for im in images)
            parts["per"] = L.perceptual(fine, target) + L.perceptual(fine_r, target)
            parts["style"] = L.style(fine, target) + L.style(fine_r, target)
            parts["adv"] = L.generator_adversarial(fake)
        return parts


class C2FDANTask(CelebATask):
    """``occbench train <name>`` on ``<data_root>/celeba`` (or the given ``faces``)."""

    OPTIONS = DEFAULTS

    def __init__(self, name: str, data_root: str | Path, limit: int | None = None,
                 faces: LabelledFaces | None = None):
        super().__init__(name, data_root, limit, faces)
        self.variant = variant_config(name)
        self.phases = ("c",) if not self.variant["fine"] else ("c", "d", "g")
        self._cfg: TrainConfig | None = None

    def per_epoch(self, cfg: TrainConfig) -> int:
        """Steps per epoch of each process (as the loop counts them)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return max(1, steps_per_epoch(len(self.faces), cfg.batch_size, world))

    def stage1_steps(self, cfg: TrainConfig) -> int:
        """``options.stage1_steps``, or one epoch when it is null."""
        steps = self.options(cfg)["stage1_steps"]
        return self.per_epoch(cfg) if steps is None else int(steps)

    def build(self, cfg: TrainConfig) -> C2FDANTrainer:
        self._cfg = cfg
        self.use_sources(cfg)
        opts = self.options(cfg)
        generator = create(cfg.arch, self.name).pass_clip_gradient(opts["clip_gradient"])
        discriminators = recognizer = None
        if self.variant["fine"]:
            discriminators = Discriminators(arch_config(cfg.arch)["disc_width"],
                                            self.variant["local"])
            recognizer = load_extractor(opts)
        return C2FDANTrainer(generator, discriminators, recognizer,
                             stage1_steps=self.stage1_steps(cfg),
                             stage1_weights=opts["stage1_weights"],
                             weights=self.loss_weights(cfg),
                             pixel_on_fine=opts["pixel_on_fine"]
                             or self.variant.get("pixel_on_fine", False))

    def loss_weights(self, cfg: TrainConfig) -> dict:
        """Stage-2 loss weights: the defaults, the config's ``options.weights``, then the
        variant's own (``c2fdan-no-style``: lambda_style = 0)."""
        given = self.options(cfg)["weights"] or {}
        unknown = sorted(set(given) - set(WEIGHTS))
        if unknown:
            raise ConfigError(f"options.weights: unknown terms {unknown}; known: "
                              f"{sorted(WEIGHTS)}")
        return {**WEIGHTS, **given, **self.variant.get("loss", {})}

    def dataset(self, cfg: TrainConfig) -> FaceDataset:
        self.use_sources(cfg)
        train, self.held = self.split(cfg)
        return FaceDataset(self.faces.images, self.faces.labels, cfg.seed,
                           occlusion_p=self.options(cfg)["occlusion_p"], with_clean=True,
                           subset=train)

    def evaluate(self, model: C2FDANTrainer, cfg: TrainConfig) -> dict[str, float]:
        """Held-out PSNR / SSIM / mask IoU / identity cosine per form
        (:class:`occbench.train.heldout.HeldOut`), identity under the losses' recognizer."""
        opts = self.options(cfg)
        held = self.completion_held_out(cfg, lambda: model.recognizer or load_extractor(opts))
        return held.figures(model.generator)

    def _scale(self, lr: float, start: int) -> float:
        """lr_scale making ``lr`` the peak learning rate of a stage that begins at ``start``
        (its first step under ``step``/``constant`` schedules; the end of a warm-up under
        ``cosine``)."""
        cfg, per = self._cfg, self.per_epoch(self._cfg)
        peak = max(lr_factor(s, cfg, per) for s in range(start, start + cfg.warmup + 1))
        return lr / (cfg.lr * max(peak, 1e-12))

    def parameters(self, model: C2FDANTrainer, phase: str) -> list[dict]:
        cfg, opts = self._cfg, self.options(self._cfg)
        anchor = {"params": [model.anchors[phase]], "lr_scale": 1.0}
        coarse = list(model.generator.coarse.parameters())
        if phase == "c":
            return [{"params": coarse, "lr_scale": self._scale(opts["lr_coarse_stage1"], 0)},
                    anchor]
        start = model.stage1_steps
        if phase == "d":
            lr = cfg.lr if opts["lr_disc"] is None else float(opts["lr_disc"])
            return [{"params": list(model.discriminators.parameters()),
                     "lr_scale": self._scale(lr, start)}, anchor]
        return [{"params": coarse, "lr_scale": self._scale(opts["lr_coarse"], start)},
                {"params": list(model.generator.fine.parameters()),
                 "lr_scale": self._scale(cfg.lr, start)}, anchor]

    def loss(self, model: nn.Module, batch: dict, cfg: TrainConfig, phase: str = "c"):
        occluded, clean = to_unit(batch["face"]), to_unit(batch["clean"])
        mask = batch["mask"].unsqueeze(1).float()
        loss, parts = model(occluded, clean, mask, phase)
        return loss, {k: v.item() for k, v in parts.items()}

    def weights(self, model: C2FDANTrainer) -> dict[str, torch.Tensor]:
        """The generator alone (what the completer builds)."""
        return dict(model.generator.state_dict())

    def load_weights(self, model: C2FDANTrainer, tensors: dict[str, torch.Tensor]):
        """The inverse of :meth:`weights` (config ``init``): (missing, unexpected) keys."""
        return model.generator.load_state_dict(tensors, strict=False)


def make_task(name: str, data_root: str | Path, limit: int | None = None) -> C2FDANTask:
    """The factory ``occbench.train.cli`` calls."""
    return C2FDANTask(name, data_root, limit=limit)
