"""Training faces from several sources, described by one JSON file.

    {"sources": [
      {"name": "celeba", "reader": "celeba", "root": "${OCCBENCH_DATA}"},
      {"name": "celeba-test", "reader": "celeba-files", "images": "${OCCBENCH_EXTRA}/validation",
       "labels": "${OCCBENCH_EXTRA}/identity_CelebA.txt", "pad": 0.25,
       "origin": {"repo": "Trung-Jeager-2019/validation", "commit": "62fff513..."}},
      {"name": "utkface", "reader": "unlabelled", "images": "${OCCBENCH_EXTRA}/utkface", "pad": 0.3}
    ]}

Readers: ``celeba`` (``<root>/celeba`` with ``identity.txt``, the shared layout), ``celeba-files``
(official CelebA file names + ``identity_CelebA.txt``, any crop and folder layout) and
``unlabelled`` (a folder of face photos, person unknown). ``${VAR}`` expands environment
variables (``OCCBENCH_DATA``, and ``OCCBENCH_EXTRA`` for the fetched snapshots); ``pad`` adds
a black border (a fraction of the image size on each side) before face detection, for tight
crops. Every source is aligned by occbench's aligner (cached). CelebA files are deduplicated
by file name across sources (the first source listing a file keeps it); CelebA identities are
shared across CelebA sources. Unlabelled faces get label -1.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occbench.data.labelled import LabelledFaces
from occbench.errors import ConfigError, DataError

READERS = ("celeba", "celeba-files", "unlabelled")
_VAR = re.compile(r"\$\{(\w+)\}")


def expand_vars(value: str, where: str) -> str:
    """``value`` with each ``${VAR}`` replaced by that environment variable (clear error if
    it is not set)."""
    def sub(m):
        name = m.group(1)
        if name == "OCCBENCH_DATA" and not os.environ.get(name):
            raise ConfigError(f"{where}: ${{{name}}} is not set (pass --data or set it)")
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]
    return _VAR.sub(sub, value)


@dataclass
class Source:
    """One entry of a sources file."""

    name: str
    reader: str
    images: Path
    labels: Path | None = None
    pad: float = 0.0
    origin: dict = field(default_factory=dict)


def read_sources(path: str | Path) -> list[Source]:
    """The sources of a JSON sources file (one clear error per malformed entry)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: sources file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: expected {{\"sources\": [...]}} with at least one source")
    out = []
    for i, e in enumerate(entries):
        where = f"{path}: source {i}"
        if not isinstance(e, dict) or "name" not in e or e.get("reader") not in READERS:
            raise DataError(f"{where}: needs 'name' and 'reader' (one of {', '.join(READERS)})")
        if e["reader"] == "celeba":
            images = Path(expand_vars(e.get("root", "${OCCBENCH_DATA}"), where))
        elif "images" in e:
            images = Path(expand_vars(e["images"], where))
        else:
            raise DataError(f"{where}: needs 'images' (a folder)")
        labels = Path(expand_vars(e["labels"], where)) if e.get("labels") else None
        if e["reader"] == "celeba-files" and labels is None:
            raise DataError(f"{where}: reader celeba-files needs 'labels' (identity_CelebA.txt)")
        out.append(Source(e["name"], e["reader"], images, labels, float(e.get("pad", 0.0)),
                          dict(e.get("origin", {}))))
    return out


def _dataset(src: Source):
    from occbench.data import load_dataset
    from occbench.data.readers import load_celeba_files, load_unlabelled

    if src.reader == "celeba":
        ds = load_dataset("celeba", src.images)
        ds.name = src.name
        ds.samples = [type(s)(f"{src.name}/{s.key.split('/', 1)[1]}", f"celeba:{s.identity}",
                              s.path) for s in ds.samples]
    elif src.reader == "celeba-files":
        ds = load_celeba_files(src.images, src.labels, src.name)
        ds.samples = [type(s)(s.key, f"celeba:{s.identity}", s.path) for s in ds.samples]
    else:
        ds = load_unlabelled(src.images, src.name)
    ds.pad = src.pad
    return ds


def load_training_faces(path: str | Path, limit: int | None = None,
                        progress: bool = True) -> tuple[LabelledFaces, list[dict]]:
    """The aligned faces of every source of ``path`` (each source's first ``limit`` images if
    given), and a report per source: images, detected, fallback, dropped (unreadable files and
    CelebA files already taken from an earlier source)."""
    from occbench.align import align_dataset

    sources = read_sources(path)
    seen_celeba: set[str] = set()
    images, identities, keys, report = [], [], [], []
    for src in sources:
        ds = _dataset(src)
        if limit:
            ds.samples = ds.samples[:limit]
        listed = len(ds.samples)
        duplicates = 0
        if src.reader != "unlabelled":
            fresh = [s for s in ds.samples if s.path.name not in seen_celeba]
            duplicates = listed - len(fresh)
            ds.samples = fresh
            seen_celeba.update(s.path.name for s in fresh)
        faces = align_dataset(ds, progress=progress)
        detected = int(faces.aligned.sum())
        report.append({"source": src.name, "reader": src.reader, "images": listed,
                       "detected": detected, "fallback": len(faces) - detected,
                       "dropped": len(faces.bad) + duplicates, "duplicates": duplicates,
                       "unreadable": len(faces.bad), "pad": src.pad,
                       "people": len({s.identity for s in faces.samples} - {""}),
                       **({"origin": src.origin} if src.origin else {})})
        images.append(faces.images)
        identities += [s.identity for s in faces.samples]
        keys += faces.keys
    people = sorted(set(identities) - {""})
    lookup = {p: i for i, p in enumerate(people)}
    labels = np.array([lookup.get(i, -1) for i in identities], dtype=np.int64)
    all_images = np.concatenate(images) if images else np.zeros((0, 112, 112, 3), np.uint8)
    unaligned = sum(r["fallback"] for r in report)
    faces = LabelledFaces(Path(path).stem, Path(path), all_images, labels, people, keys, unaligned)
    return faces, report
