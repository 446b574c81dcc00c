"""What a protocol plug-in is (lm-eval's ``Task``); the context the runner hands it is
:class:`occbench.context.Context`.

A :class:`Protocol` says which faces it needs and turns their features into result rows:

* :meth:`Protocol.prepare` loads and aligns its faces once (through ``Context.aligned``,
  which shares them with every other protocol of the run);
* :meth:`Protocol.needs` lists the :class:`Need` s of each occlusion condition: which aligned
  faces must have cached features (the recognizer's embedding of the completed face) and
  which cached reconstruction figures. The runner fills the union of every protocol's needs
  once per condition (on every torchrun rank, each taking its share) before any protocol
  reads them;
* :meth:`Protocol.evaluate` reads them back from the context and returns
  :class:`~occbench.results.Row` s (rank 0 only).

Register a protocol class with ``registry.protocols.register(name, "module:Class")``; it is
created with the run's :class:`~occbench.runner.RunConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    from occbench.context import Context
    from occbench.occlusion import Condition
    from occbench.results import Row


@dataclass
class Need:
    """Cached results a protocol reads for ``faces`` under each condition: ``features`` (the
    recognizer's embedding of the completed faces) and/or ``quality`` (PSNR / SSIM / mask
    IoU). ``clean_only``: the features of the faces as they are, once for the whole run
    (e.g. the distractors). ``what`` labels the progress bar."""

    faces: object  # occbench.faces.AlignedFaces
    what: str
    features: bool = True
    quality: bool = False
    clean_only: bool = False


class Protocol:
    """A protocol plug-in. ``name``: its registered name (rows' ``protocol`` column);
    ``on_clean``: evaluated on the clean condition too (reconstruction and landmarks are not:
    there is nothing to reconstruct)."""

    name = ""
    on_clean = True

    def __init__(self, config):
        self.config = config

    def prepare(self, ctx: Context) -> None:
        """Load and align this protocol's faces (once per run)."""

    def needs(self, ctx: Context) -> list[Need]:
        """The cached results :meth:`evaluate` reads, for every condition."""
        return []

    def evaluate(self, ctx: Context, cond: Condition) -> list[Row]:
        raise NotImplementedError
