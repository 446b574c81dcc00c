"""Qualitative grids: occluded / each completer's output / clean, for a few real faces.

Unlike the tables and curves (which read the results table alone), a grid needs pictures, so
it aligns (from the cache), occludes and completes ``n`` faces again: the same faces and
occlusions as a run with the same seed, because both are keyed by the image and the seed.

    occbench grid --data ROOT --models c2fdan,bvmr --form rect --position eyes --size 0.1
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occbench.condition import Condition
from occbench.imageio import save_figure


def grid_images(data_root: str | Path, models: list[str], condition: Condition, n: int = 8,
                dataset: str = "facescrub", seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Row labels and a (rows, n, 112, 112, 3) uint8 array: occluded, each model, clean.

    The ``n`` faces are drawn from ``dataset`` with ``seed``, one per identity where possible.
    """
    from occbench.align import align_dataset
    from occbench.completions import occlude_and_complete
    from occbench.data import load_dataset
    from occbench.models import create_completer
    from occbench.occlusion import get_form

    ds = load_dataset(dataset, data_root)
    rng = np.random.default_rng(seed)
    by_person: dict[str, list] = {}
    for s in ds.samples:
        by_person.setdefault(s.identity, []).append(s)
    people = sorted(by_person)
    rng.shuffle(people)
    picked = [by_person[p][int(rng.integers(len(by_person[p])))] for p in people[:n]]
    if len(picked) < n:  # fewer people than faces asked for: fill with other images
        rest = [s for s in ds.samples if s not in picked]
        picked += [rest[i] for i in rng.choice(len(rest), n - len(picked), replace=False)]
    ds.samples = picked
    faces = align_dataset(ds, progress=False)
    clean, keys = faces.images, faces.keys
    landmarks = faces.landmarks68 if get_form(condition.form).needs_landmarks else None
    rows, labels = [], ["occluded"]
    for name in ["occluded"] + [m for m in models if m != "occluded"]:
        occluded, completed, _, _ = occlude_and_complete(
            create_completer(name), None, keys, faces.digests, clean, condition, landmarks)
        if not rows:
            rows.append(occluded)
        if name != "occluded":
            rows.append(completed)
            labels.append(name)
    rows.append(clean)
    labels.append("clean")
    return labels, np.stack(rows)


def write_grid(labels: list[str], images: np.ndarray, out: Path, title: str = "") -> list[Path]:
    """Draw the grid (one row per label) as ``out``.png; returns ``[path]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols + 0.9, 1.25 * rows + 0.4),
                             squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[r, 0].set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=10)
    top = 1.0
    if title:
        fig.suptitle(title, fontsize=11)
        top -= 0.35 / fig.get_figheight()  # keep the title above the first row
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, top))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # one PNG near the faces' own resolution (~1 px per pixel of a 112-px face): a PDF copy
    # of the same bitmaps adds megabytes and no detail
    path = save_figure(fig, out.parent / f"{out.name}.png", dpi=100)  # "0.1" is no suffix
    plt.close(fig)
    return [path]
