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
from occbench.workers import ignore_interrupt

KNOWN_SETS = ("lfw", "facescrub", "celeba", "megaface",
              "rof:neutral", "rof:sunglasses", "rof:masked", "mfr2")  # the last four: issue 33
SHOWN = 20  # files listed by name per set and kind of fault; the rest are counted


@dataclass
class SetReport:
    """One data set: counts, faults, and notes (for an absent set: how to get it)."""

    name: str
    present: bool
    images: int = 0
    identities: int = 0
    per_identity: tuple[int, float, int] = (0, 0.0, 0)  # min, median, max images per person
    missing: list[str] = field(default_factory=list)  # listed files that do not exist
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    problem: str = ""  # why a present set cannot be read (or its pairs.txt is bad)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unreadable or self.problem)


@dataclass
class DataReport:
    root: Path
    sets: list[SetReport]

    @property
    def ok(self) -> bool:
        """False when a data set that is present has missing or unreadable files, or cannot
        be read; an absent set is not a fault."""
        return all(s.ok for s in self.sets if s.present)

    def render(self) -> str:
        """A plain-text table, then per set its notes and faults, then OK or PROBLEMS FOUND."""
        head = (f"{'set':<11}{'images':>8}{'people':>8}  {'per person min/median/max':<27}"
                f"{'missing':>8}{'unreadable':>11}")
        lines = [f"data root {self.root}", "", head]
        for s in self.sets:
            if not s.present or (s.problem and not s.images):
                status = "not present" if not s.present else "CANNOT BE READ"
                lines.append(f"{s.name:<11}{'-':>8}{'-':>8}  {status:<27}{'-':>8}{'-':>11}")
                continue
            lo, med, hi = s.per_identity
            lines.append(f"{s.name:<11}{s.images:>8}{s.identities:>8}  "
                         f"{f'{lo} / {med:g} / {hi}':<27}{len(s.missing):>8}"
                         f"{len(s.unreadable):>11}")
        for s in self.sets:
            lines += [f"  {s.name}: {note}" for note in s.notes]
            if s.problem:
                lines.append(f"  {s.name}: {s.problem}")
            faults = [f"missing {p}" for p in s.missing[:SHOWN]]
            faults += [f"unreadable {p}: {why}" for p, why in s.unreadable[:SHOWN]]
            lines += [f"  {s.name}: {fault}" for fault in faults]
            more = max(0, len(s.missing) - SHOWN) + max(0, len(s.unreadable) - SHOWN)
            if more:
                lines.append(f"  {s.name}: ... and {more} more missing or unreadable files")
        lines += ["", "OK" if self.ok else "PROBLEMS FOUND (see above)"]
        return "\n".join(lines)


def _probe(path: str) -> str | None:
    """None if the image decodes, else the reason."""
    try:
        read_rgb(path)
    except DataError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


def _unreadable(ds: Dataset, workers: int, progress: bool) -> list[tuple[str, str]]:
    """Decode every image (in ``workers`` processes when there are many); the failures."""
    paths = [str(s.path) for s in ds.samples]
    bar = dict(total=len(paths), desc=f"check {ds.name}", unit="img", file=sys.stderr,
               disable=not progress, leave=False)
    if workers > 1 and len(paths) > 200:
        with ProcessPoolExecutor(workers, initializer=ignore_interrupt) as pool:
            reasons = list(tqdm(pool.map(_probe, paths, chunksize=64), **bar))
    else:
        reasons = [_probe(p) for p in tqdm(paths, **bar)]
    return [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]


def check_set(name: str, root: Path, *, workers: int | None = None,
              progress: bool = True) -> SetReport:
    """Report on one data set under ``root``; an absent set says how to get it.

    ``workers`` (default: the CPU count) processes decode the images; ``progress`` shows a
    progress bar on stderr.
    """
    from occbench.data import load_dataset
    from occbench.data.readers import HOW_TO_GET, MissingImages
    from occbench.data.real_occlusions import MFR2_HOW_TO_GET, ROF_DIR, ROF_HOW_TO_GET

    root = Path(root)
    scheme, _, arg = name.partition(":")
    folder = root / ROF_DIR / arg if scheme == "rof" else root / name
    how = {"rof": ROF_HOW_TO_GET, "mfr2": MFR2_HOW_TO_GET}.get(scheme) or HOW_TO_GET[name]
    if not folder.is_dir():
        return SetReport(name, False, notes=[f"not present; to get it, {how}"])
    report = SetReport(name, True)
    try:
        ds = load_dataset(name, root)
    except MissingImages as exc:
        ds, report.missing = exc.dataset, [str(p) for p in exc.missing]
    except DataError as exc:
        report.problem = str(exc)
        return report
    report.notes = list(ds.notes)
    if not ds.samples:
        return report
    counts = np.unique([s.identity for s in ds.samples], return_counts=True)[1]
    report.images, report.identities = len(ds), len(counts)
    report.per_identity = (int(counts.min()), float(np.median(counts)), int(counts.max()))
    report.unreadable = _unreadable(ds, workers or os.cpu_count() or 1, progress)
    if name == "lfw":
        from occbench.data.pairs import read_pairs

        try:
            pairs = read_pairs(root / name / "pairs.txt", ds)
        except DataError as exc:
            report.problem = str(exc)
        else:
            report.notes.append(f"pairs.txt: {len(pairs)} pairs in {len({p.fold for p in pairs})}"
                                f" folds, {sum(p.same for p in pairs)} same-person")
    if name == "mfr2":
        from occbench.data.real_occlusions import mfr2_mask_types

        try:
            types = mfr2_mask_types(root)
        except DataError as exc:
            report.problem = str(exc)
        else:
            masked = sum(t != "no-mask" for t in types.values())
            report.notes.append(f"mfr2_labels.txt: {masked} of {len(types)} images masked "
                                f"({len(set(types.values()) - {'no-mask'})} mask types)")
    return report


def check_data(root: Path, *, sets=KNOWN_SETS, workers: int | None = None,
               progress: bool = True) -> DataReport:
    """Check the data sets ``sets`` (default: every known one) under ``root``, decoding each
    image once; see :func:`check_set`."""
    return DataReport(Path(root), [check_set(n, root, workers=workers, progress=progress)
                                   for n in sets])
