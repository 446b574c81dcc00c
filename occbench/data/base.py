"""Common types of every data set reader and the registry of readers by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occbench.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_file(path: Path) -> bool:
    """A visible (not dot-named) file with an image suffix."""
    return (path.is_file() and not path.name.startswith(".")
            and path.suffix.lower() in IMAGE_SUFFIXES)


def sub_folders(folder: Path) -> list[Path]:
    """The visible sub-folders of ``folder``, sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass(frozen=True, order=True)
class Sample:
    """One image: ``key`` is stable across machines (``<set>/<path relative to the set>``)."""

    key: str
    identity: str
    path: Path


@dataclass
class Dataset:
    """An ordered list of samples (sorted by key) plus what the reader noticed."""

    name: str
    root: Path
    samples: list[Sample]
    notes: list[str] = field(default_factory=list)
    # Border added on each side before face detection, as a fraction of the image's size:
    # tight face crops (UTKFace, CelebA test crops) need it to look like the LFW framing the
    # detector and the fallback crop expect. 0 for every evaluation set.
    pad: float = 0.0
    # The face detector alignment uses for this set (occbench.align.DETECTORS): "hog" for the
    # evaluation sets; a set of occluded faces may ask for "cnn".
    detector: str = "hog"
    # Five points (x, y) per image key, in the image's pixels, given with the set (e.g. ROF's
    # landmarks5.tsv): detector "given" warps them onto the template instead of detecting.
    landmarks5: dict | None = None
    # Where no face is detected: these five points (x, y) in the pixels of the set's images
    # (a set of crops of one size and framing, e.g. MFR2) instead of the LFW framing.
    framing5: object | None = None
    # Verification pairs (occbench.data.pairs.Pair), or the file they are read from on
    # first use (LFW's pairs.txt): see occbench.data.pairs.dataset_pairs.
    pairs: list | None = None
    pairs_file: Path | None = None
    # Faces that come aligned to the 112x112 template already (an in-memory set, an
    # insightface .bin): an occbench.faces.AlignedFaces used as it is, no detection.
    faces: object | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def identities(self) -> list[str]:
        return sorted({s.identity for s in self.samples})

    def by_key(self) -> dict[str, Sample]:
        return {s.key: s for s in self.samples}


def identity_labels(samples) -> tuple[np.ndarray, list[str]]:
    """Integer labels (int64) of ``samples``' identities, numbered in sorted identity order,
    and that sorted identity list."""
    identities = sorted({s.identity for s in samples})
    lookup = {name: i for i, name in enumerate(identities)}
    return np.array([lookup[s.identity] for s in samples], dtype=np.int64), identities


DatasetLoader = Callable[[Path], Dataset]


def register_dataset(name: str, **meta):
    """Decorator: register ``loader(data_root) -> Dataset`` under ``name`` (on
    ``registry.datasets``; built-ins are declared in :mod:`occbench.plugin`)."""
    from occbench import registry

    return registry.datasets.register(name, **meta)


def load_dataset(name: str, data_root: Path) -> Dataset:
    """Load a data set by name, or ``SCHEME:ARG`` for a data set registered with
    ``scheme=True`` (called as ``loader(data_root, ARG)``): ``folder:NAME`` reads
    ``ROOT/NAME`` as folder-per-identity, ``bin:PATH`` an insightface ``.bin`` file."""
    from occbench import registry

    scheme, sep, arg = name.partition(":")
    try:
        entry = registry.datasets.get(scheme if sep else name)
        if bool(sep) != bool(entry.meta.get("scheme")):
            raise ConfigError(name)
    except ConfigError:
        known = [e.name + (":ARG" if e.meta.get("scheme") else "")
                 for e in registry.datasets.entries()]
        raise ConfigError(f"unknown data set {name!r}; known: {', '.join(known)}") from None
    return entry.load()(data_root, arg) if sep else entry.load()(data_root)
