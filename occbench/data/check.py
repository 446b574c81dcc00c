"""``occbench data check``: what a data root holds, what is broken, and how to get the rest."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from occbench.data.base import Dataset
from occbench.errors import DataError
from occbench.imageio import read_rgb


@dataclass
class SetReport:
    name: str
    present: bool
    images: int = 0
    identities: int = 0
    per_identity: tuple[int, int, int] = (0, 0, 0)  # min, median, max
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    problem: str = ""  # a set that is present but cannot be listed
    notes: list[str] = field(default_factory=list)


@dataclass
class DataReport:
    root: Path
    sets: list[SetReport]

    @property
    def ok(self) -> bool:
        """False when a data set that is present has unreadable files or cannot be listed."""
        return all(not s.unreadable and not s.problem for s in self.sets if s.present)

    def render(self) -> str:
        lines = [f"data root {self.root}", ""]
        lines.append(f"{'set':<11}{'images':>8}{'people':>8}  {'per person min/median/max':<27}"
                     f"{'unreadable':>10}")
        for s in self.sets:
            if not s.present:
                lines.append(f"{s.name:<11}{'-':>8}{'-':>8}  {'not present':<27}{'-':>10}")
            elif s.problem:
                lines.append(f"{s.name:<11}{'-':>8}{'-':>8}  {'BROKEN':<27}{'-':>10}")
            else:
                lo, med, hi = s.per_identity
                lines.append(f"{s.name:<11}{s.images:>8}{s.identities:>8}  "
                             f"{f'{lo} / {med} / {hi}':<27}{len(s.unreadable):>10}")
        for s in self.sets:
            for note in s.notes:
                lines.append(f"  {s.name}: {note}")
            if s.problem:
                lines.append(f"  {s.name}: {s.problem}")
            for path, reason in s.unreadable[:20]:
                lines.append(f"  {s.name}: unreadable {path}: {reason}")
            if len(s.unreadable) > 20:
                lines.append(f"  {s.name}: ... and {len(s.unreadable) - 20} more unreadable files")
        lines.append("")
        lines.append("OK" if self.ok else "PROBLEMS FOUND (see above)")
        return "\n".join(lines)


def _probe(path: str) -> str | None:
    """None if the image decodes, else the reason."""
    try:
        read_rgb(path)
    except DataError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


def _unreadable(ds: Dataset, workers: int, progress: bool) -> list[tuple[str, str]]:
    paths = [str(s.path) for s in ds.samples]
    bar = dict(total=len(paths), desc=f"check {ds.name}", unit="img", file=sys.stderr,
               disable=not progress, leave=False)
    if workers > 1 and len(paths) > 200:
        with ProcessPoolExecutor(workers) as pool:
            reasons = list(tqdm(pool.map(_probe, paths, chunksize=64), **bar))
    else:
        reasons = [_probe(p) for p in tqdm(paths, **bar)]
    return [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]


def check_set(name: str, root: Path, *, workers: int | None = None,
              progress: bool = True) -> SetReport:
    """Report on one data set; absent sets say how to get them."""
    from occbench.data import load_dataset
    from occbench.data.readers import HOW_TO_GET, megaface_lists

    folder = root / name
    if not folder.is_dir() or (name == "megaface" and not megaface_lists(root)):
        return SetReport(name, False, notes=[f"not present; to get it, {HOW_TO_GET[name]}"])
    try:
        ds = load_dataset(name, root)
    except DataError as exc:
        return SetReport(name, True, problem=str(exc))
    counts = np.bincount(np.unique([s.identity for s in ds.samples], return_inverse=True)[1])
    report = SetReport(name, True, len(ds), len(counts),
                       (int(counts.min()), int(np.median(counts)), int(counts.max())),
                       notes=list(ds.notes))
    report.unreadable = _unreadable(ds, workers or os.cpu_count() or 1, progress)
    if name == "lfw":
        from occbench.data.pairs import read_pairs

        try:
            pairs = read_pairs(folder / "pairs.txt", ds)
            report.notes.append(f"pairs.txt: {len(pairs)} pairs in {len({p.fold for p in pairs})}"
                                f" folds, {sum(p.same for p in pairs)} same-person")
        except DataError as exc:
            report.problem = str(exc)
    return report


def check_data(root: Path, *, sets=("lfw", "facescrub", "celeba", "megaface"),
               workers: int | None = None, progress: bool = True) -> DataReport:
    """Check every known data set under ``root`` (each image is decoded once)."""
    return DataReport(Path(root), [check_set(n, Path(root), workers=workers, progress=progress)
                                   for n in sets])
