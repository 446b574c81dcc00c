"""An evaluated occlusion setting (form, position, size, seed), and the clean condition.

Every cache row, completion and result row is keyed by one; the drawing of occluders is
:mod:`occbench.occlusion`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    """An evaluated occlusion setting: ``form='none'`` is the clean (unoccluded) condition;
    ``position='none'`` for a form without a position axis."""

    form: str = "none"
    position: str = "none"
    size: float = 0.0
    seed: int = 0

    @property
    def clean(self) -> bool:
        return self.form == "none"

    def tag(self) -> str:
        if self.clean:
            return "clean"
        return f"{self.form}-{self.position}-{self.size:g}-s{self.seed}"


CLEAN = Condition()
