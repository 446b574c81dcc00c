"""``occbench train NAME --config small --data ROOT``: the trainable models by name."""

from __future__ import annotations

import sys
from pathlib import Path

from occbench.errors import ConfigError
from occbench.paths import cache_root
from occbench.train.loop import TrainConfig, train

REPO_BASELINES = Path(__file__).resolve().parents[2] / "baselines"

# name -> (folder in baselines/, factory of the task)
TRAINABLE = {
    "resnet50": "resnet50",
    "resnet50-occ": "resnet50",
}


def _task(name: str, data_root: Path, limit: int | None):
    if name in ("resnet50", "resnet50-occ"):
        from baselines.resnet50.task import ResNetTask

        return ResNetTask(name, data_root, limit=limit)
    raise ConfigError(f"unknown trainable model {name!r}; known: {', '.join(TRAINABLE)}")


def config_path(name: str, config: str) -> Path:
    """``--config small`` names ``baselines/<model>/configs/small.json``; a path is used as is."""
    if name not in TRAINABLE:
        raise ConfigError(f"unknown trainable model {name!r}; known: {', '.join(TRAINABLE)}")
    if config.endswith(".json"):
        return Path(config)
    return REPO_BASELINES / TRAINABLE[name] / "configs" / f"{config}.json"


def train_main(name: str, config: str, data_root: Path, *, out: str | None = None,
               weights_dir: str | None = None, resume: bool = False, steps: int | None = None,
               limit: int | None = None, progress: bool = True) -> Path | None:
    """Train ``name`` with a named or given config; see :func:`occbench.train.loop.train`."""
    cfg = TrainConfig.load(config_path(name, config), steps=steps)
    task = _task(name, data_root, limit)
    out_dir = Path(out) if out else cache_root() / "train" / f"{name}-{cfg.arch}"
    weights = Path(weights_dir) if weights_dir else REPO_BASELINES / TRAINABLE[name] / "weights"
    command = "occbench train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else None
    return train(task, cfg, out_dir, weights_dir=weights, resume=resume,
                 data_desc=task.describe(), command=command, progress=progress)
