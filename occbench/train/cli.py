"""``occbench train NAME --config small --data ROOT``: the trainable models by name.

A model becomes trainable by registering its task factory with ``registry.trainable`` (see
:mod:`baselines.plugin`): ``factory(name, data_root, limit=limit)`` returns a
:class:`occbench.train.loop.Task`; the entry's ``folder`` metadata names
``baselines/<folder>/`` (configs in ``configs/<config>.json``, weights in ``weights/``).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from occbench import registry
from occbench.errors import ConfigError
from occbench.paths import cache_root
from occbench.train.loop import TrainConfig, check_options, train

REPO_BASELINES = Path(__file__).resolve().parents[2] / "baselines"


def _entry(name: str) -> tuple[str, object]:
    """(folder in ``baselines/``, task factory) of a trainable model."""
    entry = registry.trainable.get(name)
    return entry.meta.get("folder", entry.name), entry


def config_path(name: str, config: str) -> Path:
    """``small`` names ``baselines/<folder>/configs/small.json``; a ``.json`` path is used as is."""
    folder, _ = _entry(name)
    if config.endswith(".json"):
        return Path(config)
    path = REPO_BASELINES / folder / "configs" / f"{config}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise ConfigError(f"no config {config!r} for {name}; known: {', '.join(known)}")
    return path


def make_task(name: str, data_root: str | Path, limit: int | None = None):
    """The training task of ``name``."""
    _, entry = _entry(name)
    return entry.load()(entry.name, data_root, limit=limit)


def train_main(model_name: str, config: str, data_root: str | Path, out: str | Path | None = None,
               resume: bool = False, steps: int | None = None, *,
               weights_dir: str | Path | None = None, limit: int | None = None,
               until: int | None = None, progress: bool = True, minutes: float | None = None,
               segment: bool = False) -> Path | None:
    """Train ``model_name`` with config ``config`` (a name or a JSON path) on ``data_root``.

    Defaults: checkpoints in ``out`` = ``$OCCBENCH_CACHE/train/<name>-<arch>``; weights in
    ``weights_dir`` = ``baselines/<folder>/weights``; ``steps`` overrides the config's total;
    ``limit`` trains on the first N images only; ``until`` stops after that step with a
    checkpoint (continue with ``resume=True``). Returns the weights path (rank 0, complete
    run) or None. ``minutes``: end this run segment after that much wall time (its weights,
    provenance and whole state written beside the weights, to commit; ``resume`` continues
    from them on a fresh machine). See :func:`occbench.train.loop.train`.
    """
    path = config_path(model_name, config)
    cfg = TrainConfig.load(path, steps=steps)
    task = make_task(model_name, data_root, limit=limit)
    check_options(task, cfg, path)
    out_dir = Path(out) if out else cache_root() / "train" / cfg.stem(model_name)
    folder, _ = _entry(model_name)
    weights = Path(weights_dir) if weights_dir else REPO_BASELINES / folder / "weights"
    command = None
    if sys.argv[1:2] == ["train"]:  # called from the occbench CLI: record it as typed
        command = "occbench " + shlex.join(sys.argv[1:])
    return train(task, cfg, out_dir, weights_dir=weights, resume=resume, until=until,
                 command=command, progress=progress, minutes=minutes, segment=segment)
