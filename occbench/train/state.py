"""A training run's whole state as one safetensors file, to commit between run segments.

The loop's ``checkpoint.pt`` (a pickle in the cache) is lost with the machine; a run that
needs several sessions ends each segment by writing ``<stem>.state.safetensors`` beside its
weights: every tensor of the trained module (a GAN's discriminators too), every optimiser's
moments, and, as JSON in the file's metadata, the rest (step, config, history, held-out
figures, sessions, optimiser settings). ``occbench train ... --resume`` on a fresh clone reads
it when the cache has no checkpoint. Unlike a pickle, loading it runs no code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from occbench.errors import ConfigError
from occbench.imageio import atomic_write

KEY = "occbench_state"
SUFFIX = ".state.safetensors"


def _split(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """``obj`` with each tensor replaced by ``{"__tensor__": name}`` (stored in ``tensors``)."""
    if isinstance(obj, torch.Tensor):
        name = prefix.rstrip("/")
        tensors[name] = obj.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if not all(isinstance(k, str | int) for k in obj):
            raise TypeError(f"{prefix}: only str / int keys can be stored")
        return {"__dict__": [[k, _split(v, f"{prefix}{k}/", tensors)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return [_split(v, f"{prefix}{i}/", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"{prefix}: cannot store a {type(obj).__name__}")


def _join(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        return {k: _join(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_state(path: str | Path, state: dict) -> Path:
    """Write ``state`` (nested dicts / lists of tensors and JSON values; int keys kept)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "", tensors)
    meta = {KEY: json.dumps(skeleton, separators=(",", ":"))}
    path = Path(path)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return path


def load_state(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """The state :func:`save_state` wrote (ConfigError naming the file if it is not one)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            if KEY not in meta:
                raise ConfigError(f"{path}: a safetensors file, but not a training state")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable training state ({exc})") from None
    return _join(json.loads(meta[KEY]), tensors)
