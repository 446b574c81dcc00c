"""Training throughput of the ResNet-v2 students (one optimisation step on 64 real faces).

    pytest -q benchmarks/test_bench_train.py --benchmark-only

Each round is one SGD step (forward, 1 - cosine loss to fixed 128-d targets, backward, update)
of the distillation recipe on 64 real LFW faces, in channels-last as the training loop runs it;
``extra_info`` records ``images_per_s`` and the torch threads used. Sizes: ``small`` (the
first weights) and ``mid`` (the distilled students, ``configs/distill.json``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.resnet50.model import create

BATCH = 64


@pytest.mark.parametrize("arch", ["small", "mid"])
def test_distillation_step(benchmark, lfw_faces, arch):
    torch.manual_seed(0)
    net = create(arch).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    faces = torch.as_tensor(np.concatenate([lfw_faces, lfw_faces])[:BATCH])
    target = F.normalize(torch.randn(BATCH, net.embedding_dim), dim=1)

    def step():
        emb = net.embed(net.preprocess(faces))
        loss = (1 - F.cosine_similarity(emb, target, dim=1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up (allocations, oneDNN kernels)
    loss = benchmark.pedantic(step, rounds=5, iterations=1)
    assert loss == loss  # finite
    benchmark.extra_info["images_per_s"] = round(BATCH / benchmark.stats.stats.mean, 1)
    benchmark.extra_info["threads"] = torch.get_num_threads()
