"""Readers for the data sets occbench knows; each yields samples sorted by key.

Keys are ``<set>/<path relative to the set's image folder>`` with forward slashes: stable
across machines. Readers list files only; whether each image decodes is
``occbench data check``'s job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

from occbench.data.base import Dataset, Sample, is_image_file, sub_folders
from occbench.data.given_landmarks import attach
from occbench.errors import DataError

HOW_TO_GET = {
    "lfw": "download the deep-funneled LFW tarball (lfw-deepfunneled.tgz) and pairs.txt from "
           "the official LFW site (vis-www.cs.umass.edu/lfw) and unpack them into ROOT/lfw/",
    "facescrub": "download FaceScrub with the download script of the FaceScrub site "
                 "(vintage.winklerbros.net/facescrub.html) or the MegaFace challenge's FaceScrub "
                 "probe set, into ROOT/facescrub/<Name>/ (or with the devkit's "
                 "facescrub_features_list.json in ROOT/facescrub/)",
    "celeba": "download CelebA from the CelebA site (mmlab.ie.cuhk.edu.hk/projects/CelebA.html): "
              "put the images of img_celeba in ROOT/celeba/ and identity_CelebA.txt as "
              "ROOT/celeba/identity.txt ('<relative path> <identity>' per line)",
    "megaface": "request MegaFace challenge 1 from the MegaFace organisers; put FlickrFinal2/ and "
                "the devkit lists megaface_features_list.json_<D>_1 in ROOT/megaface/",
}


class MissingImages(DataError):
    """Images named by a list file do not exist; ``dataset`` holds the listed ones that do."""

    def __init__(self, message: str, missing: list[Path], dataset: Dataset):
        super().__init__(message)
        self.missing = missing
        self.dataset = dataset


def _how_to_get(name: str) -> str:
    return f"; to get it, {HOW_TO_GET[name]}" if name in HOW_TO_GET else ""


def _require_dir(path: Path, name: str) -> None:
    if not path.is_dir():
        raise DataError(f"{path}: no {name} folder{_how_to_get(name)}")


def load_folder_scheme(root: Path, name: str) -> Dataset:
    """``folder:NAME``: ``ROOT/NAME/<identity>/<image>`` as a data set named NAME."""
    return load_folder(Path(root) / name, name=name)


def load_folder(path: Path, name: str) -> Dataset:
    """A folder with one sub-folder of images per identity (hidden entries are skipped);
    a ``landmarks5.tsv`` in it gives five points per image (:mod:`.given_landmarks`)."""
    path = Path(path)
    _require_dir(path, name)
    samples = [Sample(f"{name}/{img.relative_to(path).as_posix()}", person.name, img)
               for person in sub_folders(path) for img in person.iterdir() if is_image_file(img)]
    if not samples:
        raise DataError(f"{path}: no images in <identity>/ sub-folders{_how_to_get(name)}")
    return attach(Dataset(name, path, sorted(samples)), path)


def read_lines(path: Path, how_to_get: str = "") -> list[str]:
    """The lines of a text file (UTF-8, a BOM allowed); DataError naming it when it is
    missing (with ``how_to_get`` it, if given) or unreadable."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        hint = f"; to get it, {how_to_get}" if how_to_get else ""
        raise DataError(f"{path}: file not found{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def read_path_list(path: Path) -> set[str]:
    """A noise/exclusion list: one entry a line; blank lines and ``#`` lines are skipped.

    In a tab-separated line the entry is the second field (insightface's
    ``megaface_noises.txt`` has lines of that form).
    """
    entries = set()
    for line in read_lines(Path(path)):
        if line.strip() and not line.lstrip().startswith("#"):
            fields = line.split("\t")
            entries.add((fields[1] if len(fields) > 1 else fields[0]).strip())
    return entries


def _read_json_lists(path: Path) -> tuple[list[str], list[str] | None]:
    """The ``path`` list (and the ``id`` list, if any) of a MegaFace devkit JSON file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("path"), list):
        raise DataError(f"{path}: expected a JSON object with a 'path' list "
                        "(MegaFace devkit format)")
    ids = doc.get("id")
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(doc["path"])):
        raise DataError(f"{path}: the 'id' list does not match the 'path' list in length")
    return [str(p) for p in doc["path"]], None if ids is None else [str(i) for i in ids]


def _from_list(name: str, images: Path, entries, listing: Path, notes: list[str]) -> Dataset:
    """A data set from ``(where, relative path, identity)`` entries of a list file.

    Raises :class:`MissingImages` when listed files do not exist, and :class:`DataError` when
    the list is empty or names one image twice with two identities (exact repeats are dropped).
    """
    samples: dict[str, Sample] = {}
    missing: list[tuple[str, Path]] = []
    repeats = 0
    for where, rel, identity in entries:
        key = f"{name}/{PurePosixPath(rel)}"
        if key in samples:
            if samples[key].identity != identity:
                raise DataError(f"{where}: {rel} is listed again with another identity "
                                f"({identity!r}, before {samples[key].identity!r})")
            repeats += 1
            continue
        img = images / rel
        if img.is_file():
            samples[key] = Sample(key, identity, img)
        else:
            missing.append((where, img))
    if repeats:
        notes = [*notes, f"{repeats} repeated lines of {listing.name} ignored"]
    ds = Dataset(name, images, sorted(samples.values()), notes)
    if missing:
        where, img = missing[0]
        more = f" ({len(missing)} listed images missing in all)" if len(missing) > 1 else ""
        raise MissingImages(f"{where}: listed image {img} does not exist{more}",
                            [m[1] for m in missing], ds)
    if not samples:
        raise DataError(f"{listing}: lists no images")
    return ds


def load_lfw(root: Path) -> Dataset:
    """``ROOT/lfw/<Name>/<Name>_NNNN.jpg`` (the View 2 pairs are in ``ROOT/lfw/pairs.txt``)."""
    ds = load_folder(Path(root) / "lfw", "lfw")
    ds.pairs_file = Path(root) / "lfw" / "pairs.txt"
    return ds


def load_facescrub(root: Path) -> Dataset:
    """``ROOT/facescrub/<Name>/*``, or the images the MegaFace devkit's
    ``facescrub_features_list.json`` lists (paths relative to ``ROOT/facescrub``; identity
    from its ``id`` list) when that file is present.

    ``facescrub_noises.txt`` (insightface's noise list: image file names), when present,
    removes those images; names match without their extension (copies differ: .png / .jpg).
    """
    base = Path(root) / "facescrub"
    _require_dir(base, "facescrub")
    listing = base / "facescrub_features_list.json"
    if listing.exists():
        paths, ids = _read_json_lists(listing)
        entries = ((f"{listing}: entry {i}", rel, ids[i] if ids else str(PurePosixPath(rel).parent))
                   for i, rel in enumerate(paths))
        ds = _from_list("facescrub", base, entries, listing, [f"images listed by {listing.name}"])
    else:
        ds = load_folder(base, "facescrub")
    noise = base / "facescrub_noises.txt"
    if noise.exists():
        stems = {PurePosixPath(entry).stem for entry in read_path_list(noise)}
        before = len(ds.samples)
        ds.samples = [s for s in ds.samples if s.path.stem not in stems]
        ds.notes.append(f"{before - len(ds.samples)} images removed by {noise.name}")
    return ds


def load_celeba(root: Path) -> Dataset:
    """``ROOT/celeba/identity.txt``: ``<path relative to ROOT/celeba> <identity>`` per line."""
    base = Path(root) / "celeba"
    _require_dir(base, "celeba")
    ident_file = base / "identity.txt"
    if not ident_file.exists():
        raise DataError(f"{ident_file}: file not found{_how_to_get('celeba')}")
    entries = []
    for n, line in enumerate(read_lines(ident_file), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{ident_file}:{n}: expected '<relative path> <identity>', "
                            f"got {line!r}")
        entries.append((f"{ident_file}:{n}", parts[0], parts[1]))
    return _from_list("celeba", base, entries, ident_file, [])


MEGAFACE_LIST = re.compile(r"^megaface_features_list\.json_(\d+)_1$")


def megaface_lists(root: Path) -> dict[int, Path]:
    """The devkit's distractor lists in ``ROOT/megaface``, by D (ascending; {} if none)."""
    base = Path(root) / "megaface"
    if not base.is_dir():
        return {}
    found = {int(m.group(1)): p for p in base.iterdir() if (m := MEGAFACE_LIST.match(p.name))}
    return dict(sorted(found.items()))


def load_megaface(root: Path, D: int | None = None) -> Dataset:
    """MegaFace distractors from the devkit list for ``D`` (default: the largest list found).

    Image paths in the lists are relative to ``ROOT/megaface/FlickrFinal2`` (or to
    ``ROOT/megaface`` when that folder does not exist), and keys are ``megaface/<that path>``.
    A distractor's identity is its parent folder path. ``megaface_noises.txt`` (insightface's
    noise list), when present, removes the images it names.
    """
    base = Path(root) / "megaface"
    _require_dir(base, "megaface")
    lists = megaface_lists(root)
    if not lists:
        raise DataError(f"{base}: no megaface_features_list.json_<D>_1 lists"
                        f"{_how_to_get('megaface')}")
    if D is None:
        D = max(lists)
    if D not in lists:
        raise DataError(f"{base}: no list for D={D}; found D in {sorted(lists)}")
    images = base / "FlickrFinal2" if (base / "FlickrFinal2").is_dir() else base
    paths, _ = _read_json_lists(lists[D])
    notes = [f"D={D} from {lists[D].name} (lists found for D in {sorted(lists)})"]
    noise = base / "megaface_noises.txt"
    drop = read_path_list(noise) if noise.exists() else set()
    entries = [(f"{lists[D]}: entry {i}", rel, str(PurePosixPath(rel).parent))
               for i, rel in enumerate(paths) if rel not in drop]
    if noise.exists():
        notes.append(f"{len(paths) - len(entries)} images removed by {noise.name}")
    return _from_list("megaface", images, entries, lists[D], notes)


def _image_files(folder: Path) -> list[Path]:
    """Every visible image file under ``folder`` (recursively), sorted."""
    return sorted(p for p in folder.rglob("*") if is_image_file(p)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def load_celeba_files(images: Path, identity_file: Path, name: str) -> Dataset:
    """CelebA images named as in the official release (``182638.jpg``: any crop, any sub-folder
    layout) under ``images``, labelled by the official ``identity_CelebA.txt`` (``<file>
    <identity>`` per line; a header line ``image identity`` is skipped). Keys are
    ``<name>/<path relative to images>``; files the label file does not list are left out
    with a note."""
    images, identity_file = Path(images), Path(identity_file)
    _require_dir(images, name)
    labels: dict[str, str] = {}
    for n, line in enumerate(read_lines(identity_file), start=1):
        parts = line.split()
        if not parts or (n == 1 and parts[0] == "image"):
            continue
        if len(parts) != 2:
            raise DataError(f"{identity_file}:{n}: expected '<file> <identity>', got {line!r}")
        labels[parts[0]] = parts[1]
    samples, unlisted = [], 0
    for img in _image_files(images):
        identity = labels.get(img.name)
        if identity is None:
            unlisted += 1
            continue
        samples.append(Sample(f"{name}/{img.relative_to(images).as_posix()}", identity, img))
    if not samples:
        raise DataError(f"{images}: no image named in {identity_file.name}")
    notes = [f"{unlisted} images not in {identity_file.name} left out"] if unlisted else []
    return Dataset(name, images, sorted(samples), notes)


UNLABELLED = ""  # the identity of a face whose person is unknown


def load_unlabelled(folder: Path, name: str) -> Dataset:
    """Every image under ``folder`` (recursively) as one face of an unknown person (identity
    :data:`UNLABELLED`): completion training and distillation need no identities."""
    folder = Path(folder)
    _require_dir(folder, name)
    samples = [Sample(f"{name}/{p.relative_to(folder).as_posix()}", UNLABELLED, p)
               for p in _image_files(folder)]
    if not samples:
        raise DataError(f"{folder}: no images")
    return Dataset(name, folder, samples)
