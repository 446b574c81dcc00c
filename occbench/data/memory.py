"""Data sets held in memory: faces that come aligned to the 112x112 template already.

:func:`memory_dataset` wraps aligned faces (an array) and their identities, and optionally
verification pairs, as a :class:`~occbench.data.base.Dataset` the runner uses as it is (no
detection, no alignment cache). ``toy`` and ``toy-distractors`` are two small synthetic sets
of that kind (lm-eval's dummy model, for data): they let the runner, caches, protocols and
reports be tested in milliseconds with the ``fake`` recognizer::

    occbench run --data . --recognizer fake --probes toy --distractor-set toy-distractors \\
        --pairs-set toy --model occluded

They are not faces: numbers from them measure nothing but the wiring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occbench.data.base import Dataset, Sample
from occbench.data.pairs import Pair
from occbench.template import SIZE

TOY_PEOPLE, TOY_IMAGES, TOY_DISTRACTORS, TOY_FOLDS = 20, 3, 60, 10


def memory_dataset(name: str, images: np.ndarray, identities: list[str],
                   pairs: list[Pair] | None = None) -> Dataset:
    """A data set of aligned (N, 112, 112, 3) uint8 ``images`` of ``identities`` (N names);
    keys ``<name>/<identity>/<i>.png``."""
    from occbench.faces import AlignedFaces
    from occbench.template import TEMPLATE_5

    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3) or len(identities) != len(images):
        raise ValueError(f"expected (N, {SIZE}, {SIZE}, 3) uint8 images and N identities, got "
                         f"{images.shape} and {len(identities)}")
    samples = [Sample(f"{name}/{who}/{i:05d}.png", who, Path(f"<memory>/{name}/{i:05d}.png"))
               for i, who in enumerate(identities)]
    order = sorted(range(len(samples)), key=lambda i: samples[i].key)
    samples, images = [samples[i] for i in order], images[order]
    faces = AlignedFaces(name=name, samples=samples, images=images,
                         aligned=np.ones(len(samples), bool),
                         landmarks5=np.broadcast_to(np.asarray(TEMPLATE_5, np.float64),
                                                    (len(samples), 5, 2)).copy())
    return Dataset(name=name, root=Path("<memory>"), samples=samples, pairs=pairs, faces=faces)


def _smooth_faces(rng: np.random.Generator, n: int) -> np.ndarray:
    """n smooth random colour images (8x8 noise, bilinearly enlarged to 112x112)."""
    from PIL import Image

    small = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((SIZE, SIZE), Image.BILINEAR))
                     for s in small])


def _toy_people(seed: int, people: int, per_person: int, prefix: str):
    rng = np.random.default_rng(seed)
    base = _smooth_faces(rng, people).astype(np.int16)
    images, names = [], []
    for p in range(people):
        for _ in range(per_person):  # each image: the person's pattern plus its own noise
            noise = rng.normal(0, 12, size=(SIZE, SIZE, 3))
            images.append(np.clip(base[p] + noise, 0, 255).astype(np.uint8))
            names.append(f"{prefix}_{p:03d}")
    return np.stack(images), names


def load_toy(root: Path | None = None) -> Dataset:
    """``toy``: 20 synthetic people x 3 images, with 10 folds of 3 same and 3 different
    pairs (the probe and verification set of wiring tests; ``root`` is not read)."""
    images, names = _toy_people(1, TOY_PEOPLE, TOY_IMAGES, "person")
    key = [f"toy/{n}/{i:05d}.png" for i, n in enumerate(names)]
    pairs = []
    for f in range(TOY_FOLDS):
        a, b = 2 * f, 2 * f + 1  # two people per fold
        first = [key[a * TOY_IMAGES + j] for j in range(TOY_IMAGES)]
        other = [key[b * TOY_IMAGES + j] for j in range(TOY_IMAGES)]
        pairs += [Pair(first[0], first[1], True, f), Pair(first[0], first[2], True, f),
                  Pair(other[1], other[2], True, f)]
        pairs += [Pair(first[j], other[j], False, f) for j in range(TOY_IMAGES)]
    return memory_dataset("toy", images, names, pairs)


def load_toy_distractors(root: Path | None = None) -> Dataset:
    """``toy-distractors``: 60 other synthetic people, one image each."""
    images, names = _toy_people(2, TOY_DISTRACTORS, 1, "other")
    return memory_dataset("toy-distractors", images, names)
