"""Readers for faces with real occlusions: ROF (Real World Occluded Faces) and MFR2 (real masks).

Both readers take ``root``, the folder that *contains* the set's own folder: ``root/ROF/``
and ``root/mfr2/`` (names as in the public snapshots, case included). Registered as data
sets, ``root`` is the data root (``--data`` / ``$OCCBENCH_DATA``); the snapshots can stay in
the folder of fetched snapshots (``$OCCBENCH_EXTRA``) with a link from the data root, e.g.
``ln -s $OCCBENCH_EXTRA/rof/ROF $OCCBENCH_DATA/ROF``.

ROF: ``ROF/<condition>/<person folder>/<NNNNNN>.jpg`` for the conditions ``neutral``
(``joe_biden/``), ``sunglasses`` (``joe_biden_wearing_sunglasses/``) and ``masked``
(``joe_biden_wearing_mask/``). Each condition is its own data set, ``rof-<condition>``, keyed
``rof-<condition>/<person folder>/<file>``; the identity is :func:`normalise_rof_name` of the
folder, so one person has one identity in all three conditions. The snapshot's
``ROF/*_pairs.txt`` files are not read: their pairs are random and some compare an image
with itself.

MFR2: ``mfr2/<Name>/<Name>_NNNN.png`` (160x160 crops), ``mfr2/pairs.txt`` (verification
pairs) and ``mfr2/mfr2_labels.txt`` (the mask type of each image); see :func:`load_mfr2`
and :func:`mfr2_mask_types`.
"""

from __future__ import annotations

import re
from pathlib import Path

from occbench.data.base import Dataset, Sample, is_image_file, sub_folders
from occbench.data.given_landmarks import attach
from occbench.data.pairs import Pair
from occbench.data.readers import read_lines
from occbench.errors import ConfigError, DataError

ROF_DIR = "ROF"
ROF_CONDITIONS = ("neutral", "sunglasses", "masked")
ROF_PREFIX = "rof-"  # data set names and keys: rof-<condition>
# suffix of a person's folder name in each occluded condition
ROF_SUFFIXES = {"sunglasses": "_wearing_sunglasses", "masked": "_wearing_mask"}
# Names the ROF folders misspell (the same way in every condition), by their normalised
# form: spelled right they match other sets' names (LFW has Colin_Farrell and
# Recep_Tayyip_Erdogan).
ROF_SPELLING = {
    "Colin_Farell": "Colin_Farrell",
    "Guiseppe_Marotta": "Giuseppe_Marotta",
    "Immanuel_Macron": "Emmanuel_Macron",
    "Kamala_Haris": "Kamala_Harris",
    "Recep_Tayip_Erdogan": "Recep_Tayyip_Erdogan",
}
ROF_HOW_TO_GET = ("clone github.com/leen-coding/Dissertation at commit "
                  "9fc6bb73190ce494cdd5a3cae00f023228cddc43 and put (or link) its ROF/ folder, "
                  "with neutral/, sunglasses/ and masked/, as ROOT/ROF/")

MFR2_DIR = "mfr2"
MFR2_PAIRS = "pairs.txt"
MFR2_LABELS = "mfr2_labels.txt"
MFR2_FOLDS = 10
# MFR2's 160x160 crops are tight: dlib's HOG detector finds more faces with a border of a
# quarter of the side (masked faces: 88 of 171 without, 101 with; unmasked: 98 of 98 both).
MFR2_PAD = 0.25
# Where no face is found (70 of the 171 masked crops): the mean five points (x, y, in a
# 160x160 crop) of the 199 crops where it was found, with that border (one HOG pass over the
# snapshot; the points' standard deviation was 10.8 px, the crops are not aligned).
MFR2_FRAMING_5 = ((61.1, 78.5), (98.9, 77.9), (80.4, 99.7), (63.9, 120.7), (97.6, 120.1))
MFR2_HOW_TO_GET = ("clone github.com/vitaliikovalkovskyi/FaceVerificationProject at commit "
                   "9728ba4b852c2f428bf7436c85b391413200bc58 and put (or link) its mfr2/ folder "
                   "as ROOT/mfr2/, or fetch MFR2 with MaskTheFace's "
                   "'python utils/fetch_dataset.py --dataset mfr2' (github.com/aqeelanwar/"
                   "MaskTheFace) and unpack it into ROOT/")

_SEPARATORS = re.compile(r"[\s_.]+")


def _require_dir(path: Path, what: str, how_to_get: str) -> None:
    if not path.is_dir():
        raise DataError(f"{path}: no {what} folder; to get it, {how_to_get}")


# ---- ROF --------------------------------------------------------------------------------

def normalise_rof_name(folder: str) -> str:
    """The person's name of an ROF folder name, spelled like LFW's names.

    The condition suffix (``_wearing_sunglasses``, ``_wearing_mask``) is removed; dots,
    spaces and underscores become single underscores; each word (and each part of a
    hyphenated word) is capitalised; ROF's misspellings are corrected (:data:`ROF_SPELLING`).
    So ``joe_biden``, ``joe_biden_wearing_sunglasses`` and ``joe_biden_wearing_mask`` all give
    ``Joe_Biden``, ``samuel_l._jackson`` gives ``Samuel_L_Jackson`` and
    ``recep_tayip_erdogan`` gives LFW's ``Recep_Tayyip_Erdogan``. Names with capitals inside
    a word (LFW's ``Leonardo_DiCaprio``, ROF's ``leonardo_dicaprio`` -> ``Leonardo_Dicaprio``)
    match other sets only when compared case-insensitively. Applying it twice changes
    nothing; a name made only of a suffix and separators gives ``""``.
    """
    name = folder.strip()
    for suffix in ROF_SUFFIXES.values():
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    words = [w for w in _SEPARATORS.split(name) if w]
    normal = "_".join("-".join(part.capitalize() for part in w.split("-")) for w in words)
    return ROF_SPELLING.get(normal, normal)


def rof_condition(key: str) -> str:
    """The condition (``neutral``, ``sunglasses`` or ``masked``) of an ROF image key
    (``rof-masked/joe_biden_wearing_mask/000001.jpg`` -> ``masked``); ConfigError for a key
    of any other set."""
    head, sep, _ = key.partition("/")
    condition = head.removeprefix(ROF_PREFIX)
    if not (sep and head.startswith(ROF_PREFIX) and condition in ROF_CONDITIONS):
        raise ConfigError(f"{key!r} is not an ROF image key (expected "
                          f"{ROF_PREFIX}<condition>/<person>/<file>, condition one of "
                          f"{', '.join(ROF_CONDITIONS)})")
    return condition


def load_rof(root: Path, condition: str) -> Dataset:
    """``root/ROF/<condition>/<person folder>/*.jpg`` as the data set ``rof-<condition>``.

    ``condition``: ``neutral``, ``sunglasses`` or ``masked`` (ConfigError otherwise). Keys are
    ``rof-<condition>/<person folder>/<file>``; the identity is :func:`normalise_rof_name` of
    the folder. Hidden entries and non-image files are skipped; ``ROF/*_pairs.txt`` is not
    read. A folder of an occluded condition without that condition's suffix is read all the
    same, with a note.
    """
    if condition not in ROF_CONDITIONS:
        raise ConfigError(f"unknown ROF condition {condition!r}; known: "
                          f"{', '.join(ROF_CONDITIONS)}")
    base = Path(root) / ROF_DIR
    _require_dir(base, ROF_DIR, ROF_HOW_TO_GET)
    folder = base / condition
    _require_dir(folder, f"ROF {condition}", ROF_HOW_TO_GET)
    name = f"{ROF_PREFIX}{condition}"
    suffix = ROF_SUFFIXES.get(condition, "")
    samples, unsuffixed = [], []
    for person in sub_folders(folder):
        identity = normalise_rof_name(person.name)
        if not identity:
            raise DataError(f"{person}: the folder name holds no person's name")
        if suffix and not person.name.lower().endswith(suffix):
            unsuffixed.append(person.name)
        samples += [Sample(f"{name}/{person.name}/{img.name}", identity, img)
                    for img in person.iterdir() if is_image_file(img)]
    if not samples:
        raise DataError(f"{folder}: no images in <person>/ sub-folders; to get it, "
                        f"{ROF_HOW_TO_GET}")
    notes = ([f"{len(unsuffixed)} folders without the {suffix} suffix: "
              f"{', '.join(unsuffixed)}"] if unsuffixed else [])
    return attach(Dataset(name, folder, sorted(samples), notes), folder)


# ---- MFR2 -------------------------------------------------------------------------------

def mfr2_key(name: str, number: str, where: str) -> str:
    """The key of image ``number`` (as written in MFR2's text files: ``1``, ``10``) of person
    ``name``: ``mfr2/<name>/<name>_NNNN.png``; DataError at ``where`` if it is not a positive
    integer."""
    if not (number.isascii() and number.isdigit()) or int(number) < 1:
        raise DataError(f"{where}: image number {number!r} is not a positive integer")
    return f"{MFR2_DIR}/{name}/{name}_{int(number):04d}.png"


def _mfr2_images(root: Path) -> Dataset:
    base = Path(root) / MFR2_DIR
    _require_dir(base, MFR2_DIR, MFR2_HOW_TO_GET)
    samples = [Sample(f"{MFR2_DIR}/{person.name}/{img.name}", person.name, img)
               for person in sub_folders(base) for img in person.iterdir() if is_image_file(img)]
    if not samples:
        raise DataError(f"{base}: no images in <Name>/ sub-folders; to get it, "
                        f"{MFR2_HOW_TO_GET}")
    return Dataset(MFR2_DIR, base, sorted(samples))


def read_mfr2_pairs(path: Path, ds: Dataset) -> list[Pair]:
    """MFR2's ``pairs.txt``: no header, one pair a line, ``name i j`` (two images of one
    person) or ``name1 i name2 j`` (same person only if the names are equal); blank lines
    are skipped. Every image must be in ``ds`` (the MFR2 data set).

    The file has no folds (same- and different-person lines are mixed, 424 of each in the
    848 lines of the public copy), so the pairs are split in the file's order into
    :data:`MFR2_FOLDS` contiguous folds as insightface splits its ``.bin`` pairs
    (:func:`occbench.metrics.verification.contiguous_folds`: for 848 pairs, 8 folds of 85
    then 2 of 84).
    """
    from occbench.metrics.verification import contiguous_folds

    path = Path(path)
    entries = [(n, line) for n, line in enumerate(read_lines(path, MFR2_HOW_TO_GET), start=1)
               if line.strip()]
    if not entries:
        raise DataError(f"{path}: no pairs")
    known = ds.by_key()
    folds = contiguous_folds(len(entries), MFR2_FOLDS)
    pairs = []
    for (n, line), fold in zip(entries, folds, strict=True):
        where, parts = f"{path}:{n}", line.split()
        if len(parts) == 3:
            k1, k2 = mfr2_key(parts[0], parts[1], where), mfr2_key(parts[0], parts[2], where)
            same = True
        elif len(parts) == 4:
            k1, k2 = mfr2_key(parts[0], parts[1], where), mfr2_key(parts[2], parts[3], where)
            same = parts[0] == parts[2]
        else:
            raise DataError(f"{where}: expected 'name i j' (same person) or 'name1 i name2 j' "
                            f"(different people), got {line!r}")
        for key in (k1, k2):
            if key not in known:
                raise DataError(f"{where}: image {key} is not in the MFR2 data set "
                                f"({ds.root.parent / key} does not exist)")
        pairs.append(Pair(k1, k2, same, int(fold)))
    return pairs


def load_mfr2(root: Path) -> Dataset:
    """``root/mfr2/<Name>/*.png`` as the data set ``mfr2`` (keys ``mfr2/<Name>/<file>``,
    identity ``<Name>`` as the folder spells it: ``JoeBiden``), with the verification pairs
    of ``root/mfr2/pairs.txt`` in ``Dataset.pairs`` (folds: see :func:`read_mfr2_pairs`).

    DataError naming the file and line for a malformed pairs line or a pair whose image does
    not exist. Mask types: :func:`mfr2_mask_types`. Alignment: HOG on the crop with a border
    (:data:`MFR2_PAD`), MFR2's own mean points where no face is found
    (:data:`MFR2_FRAMING_5`).
    """
    ds = _mfr2_images(root)
    ds.pad, ds.framing5 = MFR2_PAD, MFR2_FRAMING_5
    ds.pairs = read_mfr2_pairs(ds.root / MFR2_PAIRS, ds)
    same = sum(p.same for p in ds.pairs)
    ds.notes.append(f"{MFR2_PAIRS}: {len(ds.pairs)} pairs ({same} same-person) in "
                    f"{len({p.fold for p in ds.pairs})} contiguous folds")
    selfpairs = sum(p.key1 == p.key2 for p in ds.pairs)
    if selfpairs:
        ds.notes.append(f"{MFR2_PAIRS}: {selfpairs} pairs compare an image with itself")
    return ds


def mfr2_mask_types(root: Path) -> dict[str, str]:
    """Mask type by image key from ``root/mfr2/mfr2_labels.txt``: lines
    ``<Name>, <image number>, <mask type>`` (no header; blank lines skipped), e.g.
    ``AdrianDunbar, 1, surgical_blue`` -> ``{"mfr2/AdrianDunbar/AdrianDunbar_0001.png":
    "surgical_blue"}``; ``no-mask`` marks an unmasked face. Types are kept as written.

    DataError naming the file and line for a malformed line, an image that does not exist,
    or an image labelled twice with different types (exact repeats are fine).
    """
    base = Path(root) / MFR2_DIR
    _require_dir(base, MFR2_DIR, MFR2_HOW_TO_GET)
    path = base / MFR2_LABELS
    types: dict[str, str] = {}
    for n, line in enumerate(read_lines(path, MFR2_HOW_TO_GET), start=1):
        if not line.strip():
            continue
        where, parts = f"{path}:{n}", [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not all(parts) or any(" " in p for p in parts[:2]):
            raise DataError(f"{where}: expected '<Name>, <image number>, <mask type>', "
                            f"got {line!r}")
        key = mfr2_key(parts[0], parts[1], where)
        if not (base.parent / key).is_file():
            raise DataError(f"{where}: labelled image {base.parent / key} does not exist")
        if types.setdefault(key, parts[2]) != parts[2]:
            raise DataError(f"{where}: {key} is labelled again with another mask type "
                            f"({parts[2]!r}, before {types[key]!r})")
    if not types:
        raise DataError(f"{path}: labels no images")
    return types
