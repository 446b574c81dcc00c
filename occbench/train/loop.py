"""One training loop for every baselines/ model.

Reproducible: parameters are initialised from ``seed``; the sample order of epoch e comes
from a generator seeded with (seed, e); per-sample augmentation is seeded by (seed, epoch,
index); the torch RNG state is checkpointed. A run resumed from a checkpoint therefore
continues exactly where the interrupted run would have gone (tested on CPU).

Under torchrun every rank trains on its share of each epoch's order (DistributedDataParallel;
gloo on CPU, nccl on GPU); rank 0 writes checkpoints, weights and provenance.
"""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from occbench.errors import ConfigError
from occbench.imageio import atomic_write


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (a JSON file of these keys)."""

    arch: str = "small"  # the model's configuration name
    steps: int = 1000  # optimisation steps in all
    batch_size: int = 64  # per process
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 5e-4
    warmup: int = 100  # linear warm-up steps, then cosine decay to 0
    seed: int = 0
    checkpoint_every: int = 200
    options: dict[str, Any] = field(default_factory=dict)  # task-specific settings

    @classmethod
    def load(cls, path: str | Path, **overrides) -> TrainConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        if "betas" in raw:
            raw["betas"] = tuple(raw["betas"])
        return cls(**raw)


class Task(Protocol):
    """What a model contributes to the loop."""

    name: str

    def build(self, cfg: TrainConfig) -> nn.Module: ...

    def dataset(self, cfg: TrainConfig) -> torch.utils.data.Dataset: ...

    def loss(self, model: nn.Module, batch, cfg: TrainConfig) -> tuple[torch.Tensor, dict]: ...

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]: ...


def _dist() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), world, device
    return 0, 1, device


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a permutation fixed by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def _batches(n: int, cfg: TrainConfig, rank: int, world: int, start_step: int):
    """(epoch, indices) of each step from ``start_step`` on; rank r takes every world-th slice."""
    per_step = cfg.batch_size * world
    steps_per_epoch = max(1, n // per_step)
    step = start_step
    while step < cfg.steps:
        epoch, within = divmod(step, steps_per_epoch)
        order = epoch_order(n, cfg.seed, epoch)
        glob = order[within * per_step:(within + 1) * per_step]
        yield epoch, glob[rank::world]
        step += 1


def lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup) / span)))


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; known: sgd, adam")


def _save_checkpoint(path: Path, model, opt, step: int, history: list) -> None:
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
             "history": history, "torch_rng": torch.get_rng_state()}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def train(task: Task, cfg: TrainConfig, out: str | Path, *, weights_dir: str | Path | None = None,
          resume: bool = False, data_desc: str = "", command: str | None = None,
          progress: bool = True) -> Path | None:
    """Train ``task`` with ``cfg``; checkpoints in ``out/checkpoint.pt``; final weights in
    ``<weights_dir or out>/<task>-<arch>.safetensors`` with a ``.json`` provenance file beside
    them. Returns the weights path (rank 0) or None (other ranks)."""
    from safetensors.torch import save_file

    out = Path(out)
    commit = _git_commit()  # the code that trains, read before the run can outlast a checkout
    rank, world, device = _dist()
    torch.manual_seed(cfg.seed)
    model = task.build(cfg).to(device)
    data = task.dataset(cfg)
    opt = _optimizer(model, cfg)
    ckpt = out / "checkpoint.pt"
    step, history = 0, []
    if resume:
        if not ckpt.exists():
            raise ConfigError(f"--resume: no checkpoint at {ckpt}")
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, history = state["step"], state["history"]
        torch.set_rng_state(state["torch_rng"])
    ddp = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(model)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    model.train()
    t0, seen = time.perf_counter(), 0
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {task.name}", unit="step",
               disable=not progress or rank != 0, file=sys.stderr)
    for epoch, idx in _batches(len(data), cfg, rank, world, step):
        batch = collate([data.get(int(i), epoch) for i in idx], device)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg) * group.get("lr_scale", 1.0)
        with torch.autocast(device.type, enabled=use_amp):
            loss, metrics = task.loss(ddp, batch, cfg)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        seen += len(idx) * world
        value = float(loss.detach())
        history.append({"step": step, "loss": value, **metrics})
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}", **{k: f"{v:.3f}" for k, v in metrics.items()})
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            _save_checkpoint(ckpt, model, opt, step, history)
    bar.close()
    seconds = time.perf_counter() - t0
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank != 0:
        return None
    weights = {k: v.detach().cpu().contiguous() for k, v in task.weights(model).items()}
    path = Path(weights_dir or out) / f"{task.name}-{cfg.arch}.safetensors"
    atomic_write(path, lambda p: save_file(weights, str(p)))
    tail = history[-50:]
    provenance = {
        "model": task.name, "config": asdict(cfg),
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "data": data_desc or getattr(task, "describe", lambda: "")(), "steps": step, "world_size": world, "device": str(device),
        "git_commit": commit,
        "final": {k: float(np.mean([h[k] for h in tail])) for k in tail[-1] if k != "step"}
        if tail else {},
        "seconds_this_session": round(seconds, 1),
        "images_per_s_this_session": round(seen / seconds, 1) if seconds > 0 else None,
    }
    atomic_write(path.with_suffix(".json"), json.dumps(provenance, indent=1).encode())
    return path


def collate(items: list[tuple], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Stack a list of per-sample tuples of arrays into tensors on ``device``."""
    return tuple(torch.as_tensor(np.stack(col)).to(device) for col in zip(*items, strict=True))


def _git_commit() -> str:
    from occbench.results import git_commit

    return git_commit()
