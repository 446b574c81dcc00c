"""Reference completers: the two ends of the gap every real completer sits between."""

from __future__ import annotations

import numpy as np

from occbench.errors import ConfigError
from occbench.models.base import Completer


class OccludedCompleter(Completer):
    """No-op: returns the occluded face unchanged and predicts no mask (lower bound)."""

    name = "occluded"
    returns_input = True

    def complete(self, occluded, clean=None):
        occluded = np.asarray(occluded, dtype=np.uint8)
        return occluded, np.zeros(occluded.shape[:3], dtype=np.float32)


class CleanCompleter(Completer):
    """Oracle: returns the clean face (upper bound). Needs the clean images."""

    name = "clean"
    outputs_clean = True

    def complete(self, occluded, clean=None):
        if clean is None:
            raise ConfigError("the 'clean' oracle completer needs the clean images")
        clean = np.asarray(clean, dtype=np.uint8)
        occluded = np.asarray(occluded, dtype=np.uint8)
        mask = np.any(occluded != clean, axis=-1).astype(np.float32)
        return clean, mask
