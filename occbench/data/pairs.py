"""LFW ``pairs.txt`` (View 2), identity overlap between sets, and exclusion lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from occbench.data.base import Dataset
from occbench.data.readers import read_path_list
from occbench.errors import DataError


@dataclass(frozen=True)
class Pair:
    """Two LFW image keys, whether they show the same person, and the fold (0-based)."""

    key1: str
    key2: str
    same: bool
    fold: int


def _lfw_key(name: str, index: str, where: str) -> str:
    if not (index.isascii() and index.isdigit()) or int(index) < 1:
        raise DataError(f"{where}: image number {index!r} is not a positive integer")
    number = int(index)
    return f"lfw/{name}/{name}_{number:04d}.jpg"


def read_pairs(path: Path, lfw: Dataset | None = None) -> list[Pair]:
    """Parse ``pairs.txt``: a ``<folds> <n>`` header, then per fold n same-person lines
    ``name i j`` and n different-person lines ``name1 i name2 j`` (blank lines are skipped).

    Keys are LFW keys, e.g. ``lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg``. With ``lfw`` given
    (default: not checked), every pair's images must be in that data set.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (LFW's pairs.txt, from the LFW site)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if not lines:
        raise DataError(f"{path}: empty file")
    head = lines[0].split()
    if len(head) != 2 or not all(h.isdigit() for h in head):
        raise DataError(f"{path}:1: expected header '<folds> <pairs per half-fold>', "
                        f"got {lines[0]!r}")
    folds, n = int(head[0]), int(head[1])
    body = [(i, ln) for i, ln in enumerate(lines[1:], start=2) if ln.strip()]
    if len(body) != folds * 2 * n:
        raise DataError(f"{path}: header promises {folds} folds x {2 * n} pairs = {folds * 2 * n} "
                        f"lines, found {len(body)}")
    known = set(lfw.by_key()) if lfw is not None else None
    pairs = []
    for j, (lineno, line) in enumerate(body):
        where = f"{path}:{lineno}"
        parts = line.split()
        fold, same = j // (2 * n), (j % (2 * n)) < n
        if same and len(parts) == 3:
            k1, k2 = _lfw_key(parts[0], parts[1], where), _lfw_key(parts[0], parts[2], where)
        elif not same and len(parts) == 4:
            k1, k2 = _lfw_key(parts[0], parts[1], where), _lfw_key(parts[2], parts[3], where)
        else:
            want = "'name i j' (same person)" if same else "'name1 i name2 j' (different people)"
            raise DataError(f"{where}: expected {want}, got {line!r}")
        if known is not None:
            for k in (k1, k2):
                if k not in known:
                    raise DataError(f"{where}: image {k} is not in the LFW data set")
        pairs.append(Pair(k1, k2, same, fold))
    return pairs


def dataset_pairs(ds: Dataset) -> list[Pair]:
    """The verification pairs of ``ds``: its ``pairs``, else those of its ``pairs_file``
    (checked against its images); DataError if it has neither."""
    if ds.pairs is None and ds.pairs_file is not None:
        ds.pairs = read_pairs(ds.pairs_file, ds)
    if ds.pairs is None:
        raise DataError(f"data set {ds.name!r} has no verification pairs")
    return ds.pairs


def overlapping_identities(a: Dataset, b: Dataset) -> set[str]:
    """People of ``b`` also in ``a``, as ``b`` spells them (so :func:`remove_identities` can
    take them out of ``b``), by identity name compared case-insensitively (LFW's
    ``Leonardo_DiCaprio`` is ROF's ``Leonardo_Dicaprio``; numeric ids such as CelebA's only
    match other numeric ids)."""
    theirs = {s.identity.casefold() for s in a.samples}
    return {s.identity for s in b.samples if s.identity.casefold() in theirs}


def remove_identities(ds: Dataset, names: Iterable[str]) -> Dataset:
    """A copy of ``ds`` without the images of ``names``, saying so in ``notes``."""
    names = set(names)
    kept = [s for s in ds.samples if s.identity not in names]
    gone = sorted(names & {s.identity for s in ds.samples})
    notes = list(ds.notes)
    if gone:
        notes.append(f"removed {len(ds.samples) - len(kept)} images of {len(gone)} people: "
                     f"{', '.join(gone)}")
    return replace(ds, samples=kept, notes=notes)


def read_exclusion_list(path: Path) -> set[str]:
    """A user's noise/exclusion list: keys, relative paths or identity names, one a line
    (``#`` lines are comments; in tab-separated lines the second field counts)."""
    if not Path(path).is_file():
        raise DataError(f"{path}: exclusion list not found")
    return read_path_list(Path(path))
