"""A tiny synthetic training task for the loop-mechanics tests (no images, milliseconds a step).

Run under torchrun it trains and writes ``rank<r>.json`` (its rank, world size and final
parameters) into a marker folder:

    python -m torch.distributed.run --nproc_per_node 2 -m tests._toy_task CFG OUT WEIGHTS MARKS
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occbench.train.loop import TrainConfig, train


class ToyData(torch.utils.data.Dataset):
    """``n`` points of 8 features in 4 classes; items keyed by (epoch, index) get seeded noise."""

    def __init__(self, n: int = 64, seed: int = 0):
        rng = np.random.default_rng(1234)
        self.x = rng.normal(size=(n, 8)).astype(np.float32)
        self.y = (self.x[:, 0] > 0).astype(np.int64) + 2 * (self.x[:, 1] > 0)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key):
        epoch, i = key
        noise = np.random.default_rng([self.seed, epoch, i]).normal(0, 0.1, 8)
        return {"x": (self.x[i] + noise).astype(np.float32), "y": self.y[i]}


class ToyTask:
    """An MLP classifier (``options.dropout``, default 0.1)."""

    name = "toy"

    def __init__(self, n: int = 64):
        self.n = n
        self.model = None

    def build(self, cfg: TrainConfig) -> nn.Module:
        p = cfg.options.get("dropout", 0.1)
        self.model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 4))
        return self.model

    def dataset(self, cfg: TrainConfig) -> ToyData:
        return ToyData(self.n, cfg.seed)

    def loss(self, model, batch, cfg):
        logits = model(batch["x"])
        acc = (logits.argmax(1) == batch["y"]).float().mean().item()
        return F.cross_entropy(logits, batch["y"]), {"acc": acc}

    def weights(self, model) -> dict[str, torch.Tensor]:
        return model.state_dict()

    def describe(self) -> dict:
        return {"set": "toy", "images": self.n}


class TwoPhaseTask(ToyTask):
    """Two optimisers, as a GAN's: phase ``a`` trains the first layer, ``b`` the last."""

    name = "toy2"
    phases = ("a", "b")

    def parameters(self, model, phase):
        return model[0].parameters() if phase == "a" else model[3].parameters()

    def loss(self, model, batch, cfg, phase):
        loss, metrics = super().loss(model, batch, cfg)
        return loss * (1.0 if phase == "a" else 2.0), metrics


def main(argv: list[str]) -> None:
    cfg_path, out, weights, marks = argv
    task = ToyTask()
    path = train(task, TrainConfig.load(cfg_path), out, weights_dir=weights, progress=False)
    rank = int(os.environ.get("RANK", "0"))
    state = {k: v.tolist() for k, v in task.model.state_dict().items()}
    Path(marks).mkdir(parents=True, exist_ok=True)
    (Path(marks) / f"rank{rank}.json").write_text(json.dumps(
        {"rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1")),
         "returned": str(path) if path else None, "state": state}))


if __name__ == "__main__":
    main(sys.argv[1:])
