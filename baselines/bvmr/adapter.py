"""Completer ``bvmr``: the BVMR network (Hertz et al. 2019) trained here.

Weights: ``baselines/bvmr/weights/bvmr-<arch>.safetensors`` (default arch ``small``;
provenance in the .json beside them; ``occbench train bvmr --config small --data ROOT``
makes them; ``bvmr-51k`` loads ``bvmr-small-faces51k``, trained from them on the ~51k faces
by ``--config faces51k``), loaded with no network access; ``weights=PATH`` loads another file. A missing
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
    """``create_completer("bvmr", arch="small", weights=None, device=None, precision="fp32")``
    (precision: :class:`TorchCompleter`)."""

    weights_dir = WEIGHTS
    compose = True

    def __init__(self, arch: str = "small", weights: str | Path | None = None,
                 device: str | None = None, tag: str = "", precision: str = "fp32"):
        super().__init__("bvmr", arch, weights, device, tag=tag,
                         config="faces51k" if tag else None, precision=precision)

    def build(self, arch: str) -> nn.Module:
        return create(arch)  # forward(x) -> (image, mask); the motif is for training only


def bvmr_faces51k(arch: str = "small", weights: str | Path | None = None,
                  device: str | None = None, precision: str = "fp32") -> BVMRCompleter:
    """``bvmr-51k``: the weights ``bvmr-small-faces51k`` (``--config faces51k``: continued
    from ``bvmr-small`` on the ~51k faces)."""
    return BVMRCompleter(arch, weights, device, tag="faces51k", precision=precision)
