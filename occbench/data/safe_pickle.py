"""Reading pickles other people publish without running them.

:func:`safe_loads` builds only lists, tuples, dicts, strings, bytes, booleans, numbers and
numpy arrays / scalars; a pickle that asks for any other global (a class, a function) is
refused with :class:`pickle.UnpicklingError`, never executed. insightface's ``.bin`` sets and
the ROF release's annotation files are read with it.
"""

from __future__ import annotations

import io
import pickle

ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
           ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
           ("numpy._core.multiarray", "scalar"), ("builtins", "bytes"), ("builtins", "bool"),
           ("_codecs", "encode")}


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def safe_loads(raw: bytes, encoding: str = "ASCII"):
    """The object pickled in ``raw``, built from the types above only."""
    return SafeUnpickler(io.BytesIO(raw), encoding=encoding).load()
