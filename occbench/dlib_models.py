"""Where dlib's model files are: the ``face-recognition-models`` package's ``models/`` folder.

The package is located without importing it (its ``__init__`` imports ``pkg_resources``,
which recent setuptools no longer ships).

    from occbench.dlib_models import model_path
    predictor = dlib.shape_predictor(str(model_path("shape_predictor_68_face_landmarks.dat")))
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

from occbench.errors import OccbenchError

PACKAGE = "face_recognition_models"

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
FACE_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
MMOD_DETECTOR = "mmod_human_face_detector.dat"


def models_dir() -> Path:
    """The folder holding dlib's ``.dat`` model files; :class:`OccbenchError` if not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise OccbenchError(
            f"package {PACKAGE!r} is not installed (pip install face-recognition-models): "
            "it ships dlib's landmark and face-recognition models"
        )
    return Path(locations[0]) / "models"


def model_path(name: str) -> Path:
    """Path of one model file, e.g. ``model_path(SHAPE_68)``; :class:`OccbenchError` if missing."""
    path = models_dir() / name
    if not path.is_file():
        raise OccbenchError(f"dlib model file {path} not found (reinstall face-recognition-models)")
    return path


_LOADERS = {
    SHAPE_68: "shape_predictor",
    SHAPE_5: "shape_predictor",
    FACE_RESNET: "face_recognition_model_v1",
    MMOD_DETECTOR: "cnn_face_detection_model_v1",
}
_LOADED: dict[str, object] = {}
_LOCK = threading.Lock()


def load(name: str):
    """The dlib object of a model file (``SHAPE_68``, ``SHAPE_5``, ``FACE_RESNET``,
    ``MMOD_DETECTOR``), loaded once
    per process (the 68-point predictor alone is 100 MB)."""
    with _LOCK:
        if name not in _LOADED:
            import dlib

            _LOADED[name] = getattr(dlib, _LOADERS[name])(str(model_path(name)))
        return _LOADED[name]
