"""Completers ``c2fdan``, ``c2fdan-coarse``, ``c2fdan-no-cross``, ``c2fdan-no-self`` and
``c2fdan-no-local``: the C2FDAN generator (Hörmann et al., FG 2021, III-B) and its Table I
ablations, trained here.

Weights: ``baselines/c2fdan/weights/<name>-<arch>.safetensors`` (default arch ``small``;
provenance in the .json beside them; ``occbench train <name> --config small --data ROOT``
makes them; the ``-51k`` completers, e.g. ``c2fdan-51k``, load ``<name>-small-faces51k``,
trained from those on the ~51k faces by ``--config faces51k``), loaded with no network access; ``weights=PATH`` loads another file. A missing
file raises OccbenchError naming the training command.

Output: the final completed face I_f,r = (1 - M) I + M I_f (I_c,r for ``c2fdan-coarse``), as
the network composes it (Eq. 2; so ``compose=False`` here: composing again would blend twice),
and the predicted mask M.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from baselines.c2fdan.model import VARIANTS, create
from occbench.models.torch_adapter import TorchCompleter

WEIGHTS = Path(__file__).resolve().parent / "weights"


class C2FDANCompleter(TorchCompleter):
    """``create_completer("c2fdan", arch="small", weights=None, device=None,
    precision="fp32")`` (any variant; precision: :class:`TorchCompleter`)."""

    weights_dir = WEIGHTS
    compose = False  # the generator returns the composed image already

    def build(self, arch: str) -> nn.Module:
        return create(arch, self.name)  # forward(x) -> (I_f,r, M)


def _factory(name: str, tag: str = ""):
    config = "faces51k" if tag else None

    def factory(arch: str = "small", weights: str | Path | None = None,
                device: str | None = None, precision: str = "fp32") -> C2FDANCompleter:
        return C2FDANCompleter(name, arch, weights, device, tag=tag, config=config,
                               precision=precision)

    suffix = f"_{tag}" if tag else ""
    factory.__name__ = name.replace("-", "_") + suffix
    factory.__doc__ = (f"``create_completer({name!r}, arch='small', weights=None, device=None, "
                       "precision='fp32')``"
                       + (f", weights ``{name}-small-{tag}``." if tag else "."))
    return factory


# one factory per variant, by its name with "_" for "-" (the plug-in's lazy targets), and
# one per variant trained on the ~51k faces (``configs/faces51k.json``; ``c2fdan_faces51k``)
for _name in VARIANTS:
    globals()[_name.replace("-", "_")] = _factory(_name)
    globals()[_name.replace("-", "_") + "_faces51k"] = _factory(_name, "faces51k")
