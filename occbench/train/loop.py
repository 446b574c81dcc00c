"""The training loop shared by every model in ``baselines/``.

A *task* (:class:`Task`) says what to train: the network, the data set, the loss and the
tensors to ship. :func:`train` does the rest the same way for every model:

* **Config**: a JSON file of :class:`TrainConfig` keys (unknown keys are an error).
* **Reproducible**: parameters are initialised under ``seed``; epoch e's sample order is a
  :class:`~torch.utils.data.DistributedSampler` permutation seeded by (seed, e); the data
  set seeds each item's augmentation by (seed, epoch, index); the torch RNG (dropout) is
  re-seeded every step from (seed, step, rank). Same seed, same weights (bitwise on CPU),
  and a resumed run continues exactly where the interrupted one would have gone.
* **Progress**: a tqdm bar (rank 0) with the running loss and metrics.
* **Checkpoints**: ``<out>/checkpoint.pt`` every ``checkpoint_every`` steps, written
  atomically (temp file + rename); ``resume=True`` continues from it.
* **Mixed precision** (``amp: true``, the default): float16 autocast + ``GradScaler`` on CUDA;
  bfloat16 autocast on a CPU that runs bf16 natively (AVX512-BF16 / AMX, asked of oneDNN),
  float32 on any other CPU. Losses the tasks compute under ``autocast(enabled=False)``,
  the parameters and the optimiser state stay float32. ``amp: false`` = float32 everywhere.
* **Every core**: the process uses ``cpu_count / processes`` threads (``OCCBENCH_THREADS``
  overrides); a training should run alone on the machine.
* **Held-out curve**: with ``eval_every`` > 0 and a task that has ``evaluate(model, cfg)``
  (figures on faces kept out of training, see ``holdout``), rank 0 evaluates before the first
  step of a session, every ``eval_every`` steps and at the end; the figures, with the images
  seen, go to the checkpoint and the provenance (``evals``).
* **Data parallel** under torchrun: ``DistributedDataParallel`` (gloo on CPU, nccl on GPU),
  every rank on its DistributedSampler share; ``batch_size`` is per process. Rank 0 alone
  writes checkpoints, weights and provenance.
* **Output**: ``<weights_dir>/<task>-<arch>.safetensors`` and a provenance ``.json`` beside
  it (command, data, steps, seed, git commit, final training figures, a coarse curve).

Several optimisers (a GAN's generator and discriminator): a task may declare ``phases``
(e.g. ``("d", "g")``) and ``parameters(model, phase)``; each step then runs, per phase in
order, ``loss(model, batch, cfg, phase)``, backward and that phase's optimiser step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from occbench.errors import ConfigError, OccbenchError
from occbench.imageio import atomic_write
from occbench.models.torch_adapter import cpu_runs_bf16
from occbench.train.state import SUFFIX as STATE_SUFFIX
from occbench.train.state import load_state, save_state

CHECKPOINT = "checkpoint.pt"
#: ``touch <out>/STOP`` ends a running training's segment at its next checkpoint, as
#: ``minutes`` does when its time is up (the file is removed when the segment is written).
STOP_FILE = "STOP"
# Config keys that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "workers", "eval_every", "clip_grad")
#: The checkpoint kept at each held-out evaluation beside the periodic one: where a diverged
#: run goes back to (``cp checkpoint-eval.pt checkpoint.pt``, then ``--resume``).
EVAL_CHECKPOINT = "checkpoint-eval.pt"
#: A loss that is not finite, or above DIVERGE_FACTOR x its median over the last
#: DIVERGE_WINDOW steps (once DIVERGE_MIN are known), stops the run before it writes anything:
#: a GAN that blows up (C2FDAN's campaign, 2026-12-05: loss_g 2.1 -> 163 in 16 steps, then
#: 2e5) must not overwrite committed weights at its segment's end.
DIVERGE_FACTOR, DIVERGE_WINDOW, DIVERGE_MIN = 20.0, 200, 50


class TrainingDiverged(OccbenchError):
    """A loss ran away (or became NaN/inf); nothing was written since the last checkpoint."""


def diverged(row: dict[str, float], recent: dict) -> str | None:
    """What ran away in one step's figures ``row`` (its ``loss*`` keys), or None; ``recent``
    (key -> deque) holds each loss's last DIVERGE_WINDOW positive values and is updated (a
    phase idle in this stage reports 0: not part of its history)."""
    for key, value in row.items():
        if not key.startswith("loss"):
            continue
        if not math.isfinite(value):
            return f"{key} = {value}"
        past = recent.setdefault(key, deque(maxlen=DIVERGE_WINDOW))
        if value <= 0:
            continue
        if len(past) >= DIVERGE_MIN:
            median = float(np.median(past))
            if value > DIVERGE_FACTOR * median:
                return (f"{key} = {value:.4g}, {value / median:.0f}x its median {median:.4g} "
                        f"over the last {len(past)} steps")
        past.append(value)
    return None


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (a JSON file of these keys; defaults shown)."""

    arch: str = "small"  # the model's configuration name (weights: <task>-<arch>.safetensors)
    steps: int = 1000  # optimisation steps in all
    batch_size: int = 64  # per process
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adam
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine: linear warm-up then cosine to 0 | step | constant
    warmup: int = 100  # linear warm-up steps (cosine)
    decay: float = 0.1  # step: lr *= decay every decay_every steps
    decay_every: int = 0  # step: 0 = every epoch
    clip_grad: float = 0.0  # max gradient norm; 0 = no clipping
    amp: bool = True  # fp16 autocast + GradScaler on CUDA, bf16 autocast on a bf16-native CPU
    channels_last: bool = True  # NHWC conv weights: ~1.3x faster on CPU, tensor cores on GPU
    seed: int = 0
    checkpoint_every: int = 200  # steps
    workers: int = 0  # DataLoader worker processes per rank (0 = in the training process)
    # start from these weights instead of a random initialisation ("" = random): a
    # safetensors file, "{name}" = the task's name, relative paths from the current folder
    init: str = ""
    # weights file <task>-<arch>-<tag>.safetensors instead of <task>-<arch>.safetensors: a
    # second set of weights of the same architecture (e.g. trained on other data)
    tag: str = ""
    holdout: int = 0  # faces (whole identities) kept out of training for the held-out curve
    eval_every: int = 0  # steps between held-out evaluations (0 = none)
    options: dict[str, Any] = field(default_factory=dict)  # task-specific settings

    @classmethod
    def read(cls, path: str | Path, _seen: tuple = ()) -> dict:
        """The settings of a JSON config file, with its ``base`` resolved: ``"base": "distill"``
        (a config beside it, or a ``.json`` path relative to it) supplies every key the file
        does not set; ``options`` are merged key by key."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object of settings")
        base = raw.pop("base", None)
        if base is None:
            return raw
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: 'base' must name a config, got {base!r}")
        base_path = path.parent / (base if base.endswith(".json") else f"{base}.json")
        if base_path.resolve() in _seen or base_path.resolve() == path.resolve():
            raise ConfigError(f"{path}: base {base!r} makes a cycle of configs")
        if not base_path.is_file():
            raise ConfigError(f"{path}: base config {base_path} not found")
        merged = cls.read(base_path, _seen + (path.resolve(),))
        options = {**merged.get("options", {}), **raw.pop("options", {})}
        merged.update(raw)
        if options:
            merged["options"] = options
        return merged

    @classmethod
    def load(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a JSON config (see :meth:`read`); ``overrides`` that are not None replace its
        values."""
        path = Path(path)
        raw = cls.read(path)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        if "betas" in raw:
            raw["betas"] = tuple(raw["betas"])
        cfg = cls(**raw)
        cfg.check(path)
        return cfg

    def stem(self, task: str) -> str:
        """``<task>-<arch>[-<tag>]``: the weights file's name (without suffix)."""
        return f"{task}-{self.arch}" + (f"-{self.tag}" if self.tag else "")

    def check(self, where: str | Path = "config") -> None:
        """Raise ConfigError on values the loop cannot run with."""
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ConfigError(f"{where}: steps, batch_size and checkpoint_every must be >= 1")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"{where}: unknown optimizer {self.optimizer!r}; known: sgd, adam")
        if self.holdout < 0 or self.eval_every < 0:
            raise ConfigError(f"{where}: holdout and eval_every must be >= 0")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ConfigError(
                f"{where}: unknown schedule {self.schedule!r}; known: cosine, step, constant")


def check_options(task, cfg: TrainConfig, where: str | Path = "config") -> None:
    """Raise ConfigError when the config sets an option the task does not know (a typo
    would otherwise train silently with the default); tasks without ``OPTIONS`` take any."""
    known = getattr(task, "OPTIONS", None)
    if known is None:
        return
    unknown = sorted(set(cfg.options) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown options {unknown} for {task.name}; "
                          f"known: {sorted(known)}")


class Task(Protocol):
    """What a model contributes to the loop (see ``baselines/resnet50/task.py``).

    ``dataset`` items are looked up by ``(epoch, index)`` keys (see
    :class:`occbench.train.data.FaceDataset`); ``loss`` returns the scalar loss and a dict of
    float metrics for the progress bar and the provenance file; ``weights`` picks the tensors
    to ship (e.g. without the classifier head); ``describe`` says what data was used.
    Optional: ``phases`` and ``parameters(model, phase)`` (see the module docstring),
    ``load_weights(model, tensors)``, the inverse of ``weights`` (for ``init``), and
    ``OPTIONS``, the config options it knows with their defaults (:func:`check_options`).
    """

    name: str

    def build(self, cfg: TrainConfig) -> nn.Module: ...

    def dataset(self, cfg: TrainConfig) -> Dataset: ...

    def loss(self, model: nn.Module, batch, cfg: TrainConfig) -> tuple[torch.Tensor, dict]: ...

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]: ...

    def describe(self) -> dict: ...


# --------------------------------------------------------------------------- schedule, data


def steps_per_epoch(n: int, batch_size: int, world: int) -> int:
    """Full batches per epoch on each rank (the tail that fills no batch is dropped)."""
    return (n // world) // batch_size


def lr_factor(step: int, cfg: TrainConfig, per_epoch: int) -> float:
    """Multiplier of ``cfg.lr`` at ``step`` (0-based)."""
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.decay ** (step // (cfg.decay_every or per_epoch))
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup) / span)))


class StepBatches:
    """Batch sampler of steps ``start`` .. ``stop - 1``: each batch is a list of
    ``(epoch, index)`` keys, this rank's share of the epoch's DistributedSampler order."""

    def __init__(self, n: int, cfg: TrainConfig, rank: int, world: int, start: int, stop: int):
        self.n, self.cfg, self.rank, self.world = n, cfg, rank, world
        self.start, self.stop = start, stop
        self.per_epoch = steps_per_epoch(n, cfg.batch_size, world)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def epoch_indices(self, epoch: int) -> list[int]:
        sampler = DistributedSampler(range(self.n), num_replicas=self.world, rank=self.rank,
                                     shuffle=True, seed=self.cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
        return list(sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        b = self.cfg.batch_size
        epoch, order = -1, []
        for step in range(self.start, self.stop):
            e, within = divmod(step, self.per_epoch)
            if e != epoch:
                epoch, order = e, self.epoch_indices(e)
            yield [(epoch, i) for i in order[within * b:(within + 1) * b]]


def to_device(batch, device: torch.device):
    """Tensors of a (nested) dict / list / tuple moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


# --------------------------------------------------------------------------- helpers


def _dist() -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether this call started the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1:
        import torch.distributed as dist

        started = not dist.is_initialized()
        if started:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), dist.get_world_size(), device, started
    return 0, 1, device, False


def precision(cfg: TrainConfig, device: torch.device) -> str:
    """``fp16`` (CUDA, amp), ``bf16`` (a bf16-native CPU, amp) or ``fp32``."""
    if not cfg.amp:
        return "fp32"
    if device.type == "cuda":
        return "fp16"
    return "bf16" if device.type == "cpu" and cpu_runs_bf16() else "fp32"


def use_all_cores(world: int = 1) -> int:
    """Give this process its share of the cores (``OCCBENCH_THREADS`` overrides); returns the
    thread count."""
    env = os.environ.get("OCCBENCH_THREADS")
    threads = int(env) if env else max(1, (os.cpu_count() or 1) // max(1, world))
    torch.set_num_threads(threads)
    return threads


def _all_ranks_agree(flag: bool, world: int) -> bool:
    """``flag`` if any rank raises it (every rank gets the same answer)."""
    if world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch RNG seed of one step on one rank (dropout masks differ across ranks)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _phases(task: Task) -> tuple[str, ...] | None:
    return tuple(task.phases) if getattr(task, "phases", None) else None


def _optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def _config_diff(saved: dict, cfg: TrainConfig) -> list[str]:
    now = asdict(cfg)
    now["betas"] = list(now["betas"])
    saved = dict(saved, betas=list(saved.get("betas", now["betas"])))
    return sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])


def load_init(task: Task, model: nn.Module, cfg: TrainConfig) -> dict | None:
    """Load ``cfg.init`` (if set) into ``model``; return what the provenance records of it
    (path, SHA-256, the file's own provenance summary, tensors the file did not hold).

    A task whose ``weights`` ships a part of the model (e.g. the backbone without its head)
    loads them back with ``load_weights(model, tensors) -> (missing, unexpected)``."""
    name = task.name
    if not cfg.init:
        return None
    from safetensors.torch import load_file

    path = Path(cfg.init.replace("{name}", name))
    if not path.is_file():
        raise ConfigError(f"init: no weights file at {path}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise ConfigError(f"init: {path} is not a readable safetensors file ({exc})") from None
    loader = getattr(task, "load_weights", None)
    missing, unexpected = (loader(model, tensors) if loader
                           else model.load_state_dict(tensors, strict=False))
    if unexpected:
        raise ConfigError(f"init: {path} holds tensors this model does not have "
                          f"({len(unexpected)}, e.g. {unexpected[0]!r}): another architecture?")
    record = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "missing": list(missing)}
    side = path.with_suffix(".json")
    if side.is_file():  # the chain of runs stays readable from the last weights file
        try:
            prev = json.loads(side.read_text())
            record["provenance"] = {k: prev.get(k) for k in (
                "command", "steps", "epochs", "git_commit", "train_seconds", "final", "init")}
        except ValueError:
            record["provenance"] = None
    return record


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename: a crash keeps the old one."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _measured(row: dict, key: str) -> bool:
    """Whether a history row holds a measurement of ``key``: present (a figure a resumed run
    added is absent before it), and not a figure of a phase idle at that step (its loss,
    ``loss_<phase>``, is exactly 0: what an idle phase returns, as :func:`diverged` and the
    training-curve figure also read it)."""
    phase = key.rsplit("_", 1)[1] if "_" in key else None
    return key in row and row.get(f"loss_{phase}") != 0.0


def _summary(history: list[dict], points: int = 20, tail: int = 50) -> tuple[dict, list]:
    """Mean of each figure over the last ``tail`` steps, and a ``points``-point curve (means
    over the steps that measured each figure: a window straddling C2FDAN's stage switch does
    not average the idle phase's zeros in)."""
    if not history:
        return {}, []
    keys = [k for k in history[-1] if k != "step"]

    def mean(rows):
        return {k: round(float(np.mean(v)), 5) for k in keys
                if (v := [r[k] for r in rows if _measured(r, k)])}

    final = mean(history[-tail:])
    size = max(1, math.ceil(len(history) / points))
    curve = [{"step": history[min(s + size, len(history)) - 1]["step"],
              **mean(history[s:s + size])} for s in range(0, len(history), size)]
    return final, curve


def _git_commit() -> str:
    from occbench.results import git_commit

    return git_commit()


# --------------------------------------------------------------------------- the loop


def train(task: Task, cfg: TrainConfig, out: str | Path, *,
          weights_dir: str | Path | None = None, resume: bool = False, until: int | None = None,
          command: str | None = None, progress: bool = True,
          minutes: float | None = None, segment: bool = False) -> Path | None:
    """Train ``task`` with ``cfg``.

    ``out``: checkpoint folder (``out/checkpoint.pt``). ``weights_dir`` (default ``out``):
    where ``<task>-<arch>.safetensors`` and its ``.json`` provenance go. ``resume``: continue
    from the checkpoint (ConfigError if there is none, or if it was made with other
    settings than ``steps``/``checkpoint_every``/``workers``, or by another number of
    processes). ``until``: stop after this
    global step with a checkpoint and no weights (to train in slices). ``command``: what the
    provenance records (default: this process's command line). Returns the weights path on
    rank 0 when training is complete, else None.

    Runs over several sessions (segments): ``minutes`` ends the run at the first checkpoint
    after that much wall time, a file ``out/STOP`` (:data:`STOP_FILE`) at the first
    checkpoint after it appears. With ``segment`` (implied by ``minutes``), a run that stops
    before ``cfg.steps`` still writes its weights and provenance (``complete``: false, the
    steps so far) and its whole state, ``<stem>.state.safetensors`` (:mod:`.state`), beside
    them: commit the three, and ``resume`` on a fresh machine continues from that state
    when ``out`` holds no checkpoint (the state file goes once the run is complete).
    """
    from safetensors.torch import save_file

    out = Path(out)
    cfg.check()
    commit = _git_commit()  # the code that trains, read before the run can outlast a checkout
    rank, world, device, started = _dist()
    threads = use_all_cores(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    try:
        torch.manual_seed(cfg.seed)  # identical initial parameters on every rank
        model = task.build(cfg).to(device)
        init = None if resume else load_init(task, model, cfg)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        data = task.dataset(cfg)
        per_epoch = steps_per_epoch(len(data), cfg.batch_size, world)
        if per_epoch < 1:
            raise ConfigError(
                f"{len(data)} training items fill no batch of {cfg.batch_size} x {world} "
                "processes: lower batch_size or add data")
        phases = _phases(task) or ("main",)
        if _phases(task):
            opts = {p: _optimizer(list(task.parameters(model, p)), cfg) for p in phases}
        else:
            opts = {"main": _optimizer(model.parameters(), cfg)}
        for opt in opts.values():
            for group in opt.param_groups:
                group.setdefault("lr_scale", 1.0)
        prec = precision(cfg, device)
        autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prec)
        scaler = torch.amp.GradScaler(device.type, enabled=prec == "fp16")
        evaluate = getattr(task, "evaluate", None) if cfg.eval_every else None
        ckpt = out / CHECKPOINT
        step, history, seconds, images, sessions, evals = 0, [], 0.0, 0, [], []
        state_file = Path(weights_dir or out) / f"{cfg.stem(task.name)}{STATE_SUFFIX}"
        segment = segment or minutes is not None
        if resume:
            if ckpt.exists():
                state = torch.load(ckpt, map_location=device, weights_only=False)
            elif state_file.exists():  # a segment's committed state (fresh machine)
                state = load_state(state_file, device)
                ckpt = state_file
            else:
                raise ConfigError(f"--resume: no checkpoint at {ckpt} and no state at "
                                  f"{state_file}")
            changed = _config_diff(state["config"], cfg)
            if changed:
                raise ConfigError(f"--resume: {ckpt} was made with other settings of {changed}")
            if state.get("world_size", 1) != world:  # another sample order and global batch
                raise ConfigError(f"--resume: {ckpt} was made by {state.get('world_size', 1)} "
                                  f"processes, this run has {world}")
            model.load_state_dict(state["model"])
            for p, opt in opts.items():
                opt.load_state_dict(state["opt"][p])
            if state["scaler"]:  # empty when the checkpoint was made without AMP
                scaler.load_state_dict(state["scaler"])
            step, history = state["step"], state["history"]
            seconds, images = state["seconds"], state["images"]
            sessions, evals = state["sessions"], state.get("evals", [])
            init = state.get("init")  # the first session's start, kept for the provenance
            ckpt = out / CHECKPOINT
        stop = min(cfg.steps, until) if until is not None else cfg.steps
        cmd = command or shlex.join(sys.argv)
        if world > 1 and not cmd.startswith("torchrun"):
            cmd = f"torchrun --nproc_per_node {os.environ.get('LOCAL_WORLD_SIZE', world)} " + (
                f"-m {cmd}" if cmd.startswith("occbench ") else cmd)
        session = {"command": cmd, "git_commit": commit, "from_step": step, "threads": threads,
                   "precision": prec, "device": str(device), "steps": 0, "images": 0,
                   "train_seconds": 0.0, "eval_seconds": 0.0, "images_per_s": None}
        sessions.append(session)
        wall0 = time.time()
        ddp = model
        if world > 1:
            ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=len(phases) > 1)
        loader = DataLoader(data, batch_sampler=StepBatches(len(data), cfg, rank, world, step,
                                                            max(step, stop)),
                            num_workers=cfg.workers, pin_memory=device.type == "cuda")

        def run_state() -> dict:
            session["wall_seconds"] = round(time.time() - wall0, 1)
            return {
                "model": model.state_dict(), "opt": {p: o.state_dict() for p, o in opts.items()},
                "scaler": scaler.state_dict(), "step": step, "history": history,
                "config": asdict(cfg), "world_size": world, "seconds": seconds,
                "images": images, "sessions": sessions, "init": init, "evals": evals}

        def checkpoint() -> None:
            save_checkpoint(ckpt, run_state())

        def held_out() -> None:
            """One point of the held-out curve (rank 0; not counted as training time)."""
            t = time.perf_counter()
            model.eval()
            with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype,
                                                 enabled=autocast_dtype is not None):
                figures = evaluate(model, cfg)
            model.train()
            session["eval_seconds"] = round(session["eval_seconds"] + time.perf_counter() - t, 1)
            evals.append({"step": step, "images": images, "session": len(sessions) - 1,
                          **{k: round(float(v), 5) for k, v in figures.items()}})
            if progress:
                tqdm.write(f"held-out @ step {step}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in figures.items()), file=sys.stderr)

        if evaluate and rank == 0 and not (evals and evals[-1]["step"] == step):
            held_out()
        model.train()
        recent: dict = {}  # each loss's recent values: the divergence guard's reference
        bar = tqdm(total=cfg.steps, initial=step, desc=f"train {task.name}", unit="step",
                   disable=not progress or rank != 0, file=sys.stderr, dynamic_ncols=True)
        t0 = time.perf_counter()
        deadline = None if minutes is None else time.time() + 60 * minutes
        for batch in loader:
            batch = to_device(batch, device)
            torch.manual_seed(step_seed(cfg.seed, step, rank))
            factor = lr_factor(step, cfg, per_epoch)
            row: dict[str, float] = {}
            for phase in phases:
                opt = opts[phase]
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * factor * group["lr_scale"]
                with torch.autocast(device.type, dtype=autocast_dtype,
                                    enabled=autocast_dtype is not None):
                    if phase == "main":
                        loss, metrics = task.loss(ddp, batch, cfg)
                    else:
                        loss, metrics = task.loss(ddp, batch, cfg, phase)
                model.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(
                        [p for g in opt.param_groups for p in g["params"]], cfg.clip_grad)
                scaler.step(opt)
                suffix = "" if phase == "main" else f"_{phase}"
                row[f"loss{suffix}"] = float(loss.detach())
                row.update({f"{k}{suffix}": float(v) for k, v in metrics.items()})
            scaler.update()
            ran_away = diverged(row, recent)
            if _all_ranks_agree(ran_away is not None, world):
                bar.close()
                kept = [f"{ckpt} (the last checkpoint)"] if ckpt.exists() else []
                if (out / EVAL_CHECKPOINT).exists():
                    last = evals[-1]["step"] if evals else "?"
                    kept.append(f"{out / EVAL_CHECKPOINT} (held-out evaluation at step {last}: "
                                f"cp it over {ckpt.name} to resume from there)")
                raise TrainingDiverged(
                    f"training diverged at step {step + 1}: {ran_away or 'on another rank'}; "
                    "stopped without writing weights; kept: " + ("; ".join(kept) or "nothing")
                    + ". Resume with a change that steadies it (e.g. clip_grad, which --resume "
                    "accepts)")
            step += 1
            images += cfg.batch_size * world
            history.append({"step": step, **row})
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items()}, refresh=False)
            at_eval = evaluate and (step % cfg.eval_every == 0 or step == cfg.steps)
            if step % cfg.checkpoint_every == 0 or step == stop or at_eval:
                spent = time.perf_counter() - t0
                seconds += spent
                session["steps"] = step - session["from_step"]
                session["images"] = session["steps"] * cfg.batch_size * world
                session["train_seconds"] = round(session["train_seconds"] + spent, 1)
                session["images_per_s"] = round(
                    session["images"] / max(session["train_seconds"], 1e-9), 1)
                if rank == 0:
                    if at_eval:
                        held_out()
                    checkpoint()
                    if at_eval:  # the rollback point if a later step runs away
                        atomic_write(out / EVAL_CHECKPOINT,  # the bytes just written, copied
                                     lambda tmp: shutil.copyfile(ckpt, tmp))
                t0 = time.perf_counter()
                asked = (out / STOP_FILE).exists()
                if _all_ranks_agree(asked or (deadline is not None and time.time() >= deadline),
                                    world):
                    segment = True  # the segment's time is up, or a user asked to stop:
                    break  # the checkpoint above holds the state
        bar.close()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        complete = step >= cfg.steps
        if rank != 0 or not (complete or segment):
            return None
        weights = {k: v.detach().cpu().contiguous() for k, v in task.weights(model).items()}
        path = Path(weights_dir or out) / f"{cfg.stem(task.name)}.safetensors"
        atomic_write(path, lambda tmp: save_file(weights, str(tmp)))
        if not complete:
            save_state(state_file, run_state())
        elif state_file.exists():
            state_file.unlink()  # the run is over: its weights are final
        (out / STOP_FILE).unlink(missing_ok=True)
        final, curve = _summary(history)
        provenance = {  # the first session's command (a resumed run ends the same way)
            "model": task.name, "arch": cfg.arch, "command": sessions[0]["command"],
            "complete": complete, "data": task.describe(), "steps": step,
            "of_steps": cfg.steps, "seed": cfg.seed,
            "epochs": round(step / per_epoch, 2), "world_size": world, "device": str(device),
            "precision": prec, "threads": threads, "git_commit": sessions[0]["git_commit"],
            "sessions": sessions,
            "torch": torch.__version__,
            "config": asdict(cfg), "init": init, "final": final, "curve": curve,
            "train_seconds": round(seconds, 1),
            "wall_seconds": round(sum(s.get("wall_seconds", 0.0) for s in sessions), 1),
            "evals": evals,
            "images_per_s": round(images / seconds, 1) if seconds > 0 else None,
            "parameters": sum(v.numel() for v in weights.values()),
        }
        atomic_write(path.with_suffix(".json"), json.dumps(provenance, indent=1).encode())
        return path if complete else None
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()
