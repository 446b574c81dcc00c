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
    from occbench.condition import Condition
    from occbench.context import Context
    from occbench.results import Row


@dataclass
class Need:
    """Cached results a protocol reads for ``faces`` under each condition: ``features`` (the
    recognizer's embedding of the completed faces) and/or ``quality`` (PSNR / SSIM / mask
    IoU). ``clean_only``: the features of the faces as they are, once for the whole run
    (e.g. the distractors). ``clean_condition_only``: the completed faces' features under the
    clean condition only (faces that are occluded already, e.g. real occlusions, get no
    synthetic occluder). ``what`` labels the progress bar."""

    faces: object  # occbench.faces.AlignedFaces
    what: str
    features: bool = True
    quality: bool = False
    clean_only: bool = False
    clean_condition_only: bool = False  # completed faces needed under the clean condition only


@dataclass(frozen=True)
class Headline:
    """One headline figure of a protocol: a column of the report's every-condition table
    (``occbench report``, ``occbench run``'s summary), read from the rows alone.

    ``metric``: the rows' ``metric``; ``column``: the column label (unique over protocols);
    the cell shows ``value * scale`` with ``digits`` decimals and the 95 % interval;
    ``higher_is_better`` says which way is good. Which rows: ``rank`` (only rows of that
    rank, e.g. 1 for TPIR@1), ``largest_d`` (only the largest distractor set D of each
    model / recognizer / condition), ``exclude_datasets`` (rows of these data sets left
    out). ``order``: the column's place (the built-ins use 10-50; a plug-in's default 100
    puts it after them).
    """

    metric: str
    column: str
    scale: float = 1.0
    digits: int = 2
    higher_is_better: bool = True
    rank: int | None = None
    largest_d: bool = False
    exclude_datasets: tuple[str, ...] = ()
    order: float = 100.0


class Protocol:
    """A protocol plug-in. ``name``: its registered name (rows' ``protocol`` column);
    ``on_clean``: evaluated on the clean condition too (reconstruction and landmarks are not:
    there is nothing to reconstruct); ``headlines``: its :class:`Headline` figures, the
    columns the report shows for it (none: its rows are in the results table only)."""

    name = ""
    on_clean = True
    headlines: tuple[Headline, ...] = ()

    def __init__(self, config):
        self.config = config

    def prepare(self, ctx: Context) -> None:
        """Load and align this protocol's faces (once per run)."""

    def needs(self, ctx: Context) -> list[Need]:
        """The cached results :meth:`evaluate` reads, for every condition."""
        return []

    def evaluate(self, ctx: Context, cond: Condition) -> list[Row]:
        raise NotImplementedError
