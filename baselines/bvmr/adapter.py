"""Completer ``bvmr``: the BVMR network (Hertz et al. 2019) trained here.

Weights: ``baselines/bvmr/weights/bvmr-<arch>.safetensors`` (default arch ``small``;
provenance in the .json beside them; ``occbench train bvmr --config small --data ROOT``
makes them), loaded with no network access; ``weights=PATH`` loads another file. A missing
file raises OccbenchError naming the training command.

Output: the predicted image composed with the input by the predicted soft mask,
(1 - M) * I + M * I_c, as the authors compose it at test time, and M itself.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from baselines.bvmr.model import create
from occbench.models.torch_adapter import TorchCompleter

WEIGHTS = Path(__file__).resolve().parent / "weights"


class BVMRCompleter(TorchCompleter):
    """``create_completer("bvmr", arch="small", weights=None, device=None)``."""

    weights_dir = WEIGHTS
    compose = True

    def __init__(self, arch: str = "small", weights: str | Path | None = None,
                 device: str | None = None):
        super().__init__("bvmr", arch, weights, device)

    def build(self, arch: str) -> nn.Module:
        return create(arch)  # forward(x) -> (image, mask); the motif is for training only
