"""Where one C2FDAN training step spends its time on this CPU (``small`` arch, batch 16 of
real LFW faces with the paper's training occlusions, channels-last as the loop runs it).

    pytest -q benchmarks/test_bench_c2fdan.py --benchmark-only

``step``: one whole stage-2 step as the loop runs it (discriminator phase, generator phase:
forwards, backwards, two Adam updates), per extractor (``small``: the first recognizer
weights; ``mid``: the distilled student the ``faces51k`` config uses). The parts, each forward
and backward as the step runs them: ``generator`` (coarse + fine networks), ``attention``
(the fine network's cross- and self-attention alone, forward), ``discriminators`` (the seven,
fake and real as one batch), ``extractor`` (the frozen recognizer's block1/block3 of I_f and
I_f,r as one batch, and of the clean face without gradients). ``extra_info``: images/s.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.c2fdan.discriminators import Discriminators
from baselines.c2fdan.model import arch_config, create
from baselines.c2fdan.task import FEATURES, WEIGHT_OF, C2FDANTrainer, load_recognizer
from occbench.models.torch_adapter import to_unit
from occbench.occlusion import sample_training_occlusion

BATCH = 16
CL = torch.channels_last


@pytest.fixture(scope="module")
def batch(lfw_faces):
    rng = np.random.default_rng(0)
    faces = np.concatenate([lfw_faces] * 4)[:BATCH]
    occluded, masks = zip(*[sample_training_occlusion(f, rng)[:2] for f in faces], strict=True)
    unit = lambda a: to_unit(torch.as_tensor(np.stack(a))).contiguous(memory_format=CL)  # noqa: E731
    return unit(occluded), unit(faces), torch.as_tensor(np.stack(masks)).unsqueeze(1).float()


def _trainer(extractor: str) -> C2FDANTrainer:
    torch.manual_seed(0)
    gen = create("small", "c2fdan")
    disc = Discriminators(arch_config("small")["disc_width"], True)
    return C2FDANTrainer(gen, disc, load_recognizer(extractor), stage1_steps=0).to(memory_format=CL)


def _run(benchmark, fn, rounds=3):
    fn()  # warm-up (allocations, oneDNN kernels)
    benchmark.pedantic(fn, rounds=rounds, iterations=1)
    benchmark.extra_info["images_per_s"] = round(BATCH / benchmark.stats.stats.mean, 2)
    benchmark.extra_info["threads"] = torch.get_num_threads()


@pytest.mark.parametrize("extractor", ["small", "mid"])
def test_step(benchmark, batch, extractor):
    model = _trainer(extractor).train()
    occluded, clean, mask = batch
    opt_d = torch.optim.Adam(model.discriminators.parameters(), 1e-4)
    opt_g = torch.optim.Adam(model.generator.parameters(), 1e-4)

    seen = {"d": [], "g": []}

    def step():
        for phase, opt in (("d", opt_d), ("g", opt_g)):
            loss, parts = model(occluded, clean, mask, phase)
            seen[phase].append((float(loss), {k: float(v) for k, v in parts.items()}))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    nets = (model.generator, model.discriminators)
    before = [[q.detach().clone() for q in net.parameters()] for net in nets]
    _run(benchmark, step)
    # what was timed is a real step: finite losses, the generator loss is Eq. 4's weighted
    # sum of the terms it reports, and both networks' weights moved
    assert all(np.isfinite(v) for phase in seen.values() for v, _ in phase) and seen["g"]
    for loss, parts in seen["g"]:
        assert set(parts) == set(WEIGHT_OF)
        ref = sum(model.weights[WEIGHT_OF[k]] * v for k, v in parts.items())
        assert loss == pytest.approx(ref, rel=1e-4)
    for net, old in zip(nets, before, strict=True):
        assert any(not torch.equal(a, b) for a, b in zip(old, net.parameters(), strict=True))


@pytest.mark.parametrize("part", ["generator", "attention", "discriminators", "extractor"])
def test_part(benchmark, batch, part):
    model = _trainer("mid").train()
    occluded, clean, _ = batch
    gen, disc, rec = model.generator, model.discriminators, model.recognizer
    if part == "generator":
        fn = lambda: gen(occluded, full=True).final.mean().backward()  # noqa: E731
    elif part == "attention":
        fine = gen.fine
        with torch.no_grad():
            out = gen(occluded, full=True)
            e56 = fine.enc56(fine.enc112(out.coarse_r))
            mask56 = torch.nn.functional.max_pool2d(out.mask, 2)
            deep = fine.attend_in(e56)

        def fn():
            with torch.no_grad():
                fine.cross(e56, mask56)
                fine.attention(deep)
    elif part == "discriminators":
        image = clean.clone().requires_grad_(True)

        def fn():
            out = disc(torch.cat([image, clean]), torch.cat([occluded, occluded]))
            sum(v.mean() for v in out.values()).backward()
    else:
        image = clean.clone().requires_grad_(True)

        def fn():
            with torch.no_grad():
                rec.features(clean, FEATURES)
            feats = rec.features(torch.cat([image, image]), FEATURES)
            sum(v.mean() for v in feats.values()).backward()
    _run(benchmark, fn)
    # what was timed did its work: finite, non-zero gradients where it back-propagates
    if part == "generator":
        grads = [q.grad for q in gen.parameters() if q.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    elif part == "attention":
        with torch.no_grad():
            assert fine.cross(e56, mask56).shape[0] == BATCH
            assert torch.isfinite(fine.attention(deep)).all()
    else:
        assert image.grad is not None and torch.isfinite(image.grad).all()
        assert image.grad.abs().sum() > 0
