"""Training configs for tests: a dict (or a shipped config) plus overrides, written to a
temporary folder and loaded as :class:`~occbench.train.loop.TrainConfig`."""

from __future__ import annotations

import json
from pathlib import Path

from occbench.train.cli import config_path
from occbench.train.loop import TrainConfig


def shipped(model: str, config: str = "small") -> dict:
    """The raw JSON of ``baselines/<model>/configs/<config>.json``."""
    return json.loads(config_path(model, config).read_text())


def write_config(folder: Path, raw: dict, name: str = "cfg.json", **overrides) -> TrainConfig:
    """``raw`` with ``overrides`` (an ``options`` override merges into ``raw``'s options key
    by key, as a config's ``base`` does), written as ``folder/name`` and loaded."""
    cfg = {**raw, **overrides}
    if "options" in overrides:
        cfg["options"] = {**raw.get("options", {}), **overrides["options"]}
    path = Path(folder) / name
    path.write_text(json.dumps(cfg))
    return TrainConfig.load(path)
