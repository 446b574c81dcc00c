"""Training throughput: one optimisation step of each model the campaign trains, in float32
and in bfloat16 autocast (where the CPU runs bf16 natively), on real faces.

    pytest -q benchmarks/test_bench_train.py --benchmark-only

* ``student-small`` / ``student-mid`` / ``student-paper``: one SGD step of the distillation
  recipe (forward, 1 - cosine loss to fixed 128-d targets, backward, update) on 64 LFW faces.
* ``c2fdan-small``: one stage-2 step of C2FDAN ``small`` (the discriminators' phase, then the
  generator's, identity losses through the ``mid`` student) on 16 faces with training
  occlusions, through the task's own loss.

Each runs as :func:`occbench.train.loop.train` runs it (channels-last, every core, the same
autocast). ``extra_info`` records ``images_per_s``, ``precision`` and the torch threads; every
step's loss is checked to be finite, and the bf16 step's loss to be within 5 % of the float32
one from the same state (the same weights, the same batch).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from occbench.models.torch_adapter import cpu_runs_bf16
from occbench.train.loop import use_all_cores

PRECISIONS = ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(
    not cpu_runs_bf16(), reason="this CPU has no native bf16"))]


def _autocast(prec: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16")


def _time(benchmark, step, batch: int, prec: str) -> float:
    use_all_cores()
    step()  # warm-up (allocations, oneDNN kernels)
    loss = benchmark.pedantic(step, rounds=3, iterations=1)
    assert np.isfinite(loss)
    benchmark.extra_info.update(images_per_s=round(batch / benchmark.stats.stats.min, 1),
                                precision=prec, threads=torch.get_num_threads())
    return loss


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("arch", ["small", "mid", "paper"])
def test_student_step(benchmark, lfw_faces, arch, prec):
    from baselines.resnet50.model import create

    batch = 64
    torch.manual_seed(0)
    net = create(arch).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9)  # lr 0: the state stays
    faces = torch.as_tensor(np.resize(lfw_faces, (batch, *lfw_faces.shape[1:])))
    target = F.normalize(torch.randn(batch, net.embedding_dim), dim=1)

    def step(p=prec):
        with _autocast(p):
            emb = net.embed(net.preprocess(faces))
        loss = (1 - F.cosine_similarity(emb.float(), target, dim=1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    loss = _time(benchmark, step, batch, prec)
    if prec == "bf16":
        assert loss == pytest.approx(step("fp32"), rel=0.05)


@pytest.mark.parametrize("prec", PRECISIONS)
def test_c2fdan_stage2_step(benchmark, lfw_faces, data_root, prec):
    from baselines.c2fdan.task import C2FDANTask
    from occbench.occlusion import sample_training_occlusion
    from occbench.train.loop import TrainConfig

    batch = 16
    cfg = TrainConfig(arch="small", batch_size=batch, optimizer="adam", lr=1e-4,  # (opts: lr 0)
                      options={"stage1_steps": 0, "recognizer": "mid"})
    task = C2FDANTask("c2fdan", data_root, limit=32)  # the faces come as a batch below
    torch.manual_seed(0)
    model = task.build(cfg).to(memory_format=torch.channels_last).train()
    opts = {p: torch.optim.Adam(list(task.parameters(model, p)), lr=0.0) for p in task.phases}
    rng = np.random.default_rng(0)
    clean = np.resize(lfw_faces, (batch, *lfw_faces.shape[1:]))
    occ = [sample_training_occlusion(f, rng) for f in clean]
    data = {"face": torch.as_tensor(np.stack([o[0] for o in occ])),
            "clean": torch.as_tensor(clean), "mask": torch.as_tensor(np.stack([o[1] for o in occ])),
            "label": torch.zeros(batch, dtype=torch.int64)}

    def step(p=prec):
        total = 0.0
        for phase in task.phases:
            with _autocast(p):
                loss, _ = task.loss(model, data, cfg, phase)
            model.zero_grad(set_to_none=True)
            loss.backward()
            opts[phase].step()
            total += loss.item()
        return total

    loss = _time(benchmark, step, batch, prec)
    if prec == "bf16":
        assert loss == pytest.approx(step("fp32"), rel=0.05)


@pytest.mark.parametrize("occlusion_p", [0.0, 0.5, 1.0])
def test_loader(benchmark, lfw_faces, occlusion_p):
    """The training data path alone (in the training process, as ``workers: 0`` runs it): 64
    items (flip, training occlusion with probability ``occlusion_p``, clean copy and mask
    for the completers) collated into one batch. It must outrun the step it feeds."""
    from occbench.train.data import FaceDataset

    batch = 64
    ds = FaceDataset(lfw_faces, np.zeros(len(lfw_faces), np.int64), 0,
                     occlusion_p=occlusion_p, with_clean=occlusion_p == 1.0)
    keys = iter(range(10**9))

    def load():
        items = [ds[(next(keys), i % len(ds))] for i in range(batch)]
        return torch.utils.data.default_collate(items)

    out = benchmark.pedantic(load, rounds=5, iterations=1, warmup_rounds=1)
    assert out["face"].shape == (batch, 112, 112, 3) and out["face"].dtype == torch.uint8
    if occlusion_p == 1.0:
        assert (out["face"] != out["clean"]).any() and out["mask"].flatten(1).any(1).all()
    benchmark.extra_info.update(images_per_s=round(batch / benchmark.stats.stats.min, 1),
                                occlusion_p=occlusion_p)
