"""Readers for the data sets occbench knows; each yields samples sorted by key.

Keys are ``<set>/<path relative to the set folder>`` with forward slashes: stable across
machines. Readers list files only; whether each image decodes is ``occbench data check``'s job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from occbench.data.base import IMAGE_SUFFIXES, Dataset, Sample, register_dataset
from occbench.errors import DataError

HOW_TO_GET = {
    "lfw": "download the deep-funneled LFW tarball (lfw-deepfunneled.tgz) and pairs.txt from the "
           "official LFW site and unpack them into ROOT/lfw/",
    "facescrub": "download FaceScrub with its official download script (or the MegaFace "
                 "challenge's FaceScrub probe set) into ROOT/facescrub/<Name>/",
    "celeba": "download CelebA (img_celeba + identity_CelebA.txt) from the CelebA site; put the "
              "images in ROOT/celeba/ and a '<relative path> <identity>' list in "
              "ROOT/celeba/identity.txt",
    "megaface": "request MegaFace challenge 1 from the MegaFace organisers; put FlickrFinal2/ and "
                "the devkit lists megaface_features_list.json_<D>_1 in ROOT/megaface/",
}


def _require_dir(path: Path, name: str) -> None:
    if not path.is_dir():
        raise DataError(f"{path}: no {name} folder; to get it, {HOW_TO_GET.get(name, 'add it')}")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def load_folder(path: Path, name: str) -> Dataset:
    """A folder with one sub-folder of images per identity."""
    path = Path(path)
    _require_dir(path, name)
    samples = [
        Sample(f"{name}/{img.relative_to(path).as_posix()}", person.name, img)
        for person in path.iterdir() if person.is_dir()
        for img in person.iterdir() if img.is_file() and _is_image(img)
    ]
    if not samples:
        raise DataError(f"{path}: no images in <identity>/ sub-folders")
    return Dataset(name, path, sorted(samples))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def read_path_list(path: Path) -> set[str]:
    """A noise/exclusion list: one relative path or identity per line (``#`` comments)."""
    return {ln.strip() for ln in _read_lines(path) if ln.strip() and not ln.startswith("#")}


def _read_json_paths(path: Path) -> tuple[list[str], list[str] | None]:
    """The ``path`` (and optional ``id``) lists of a MegaFace devkit JSON file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable JSON list ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("path"), list):
        raise DataError(f"{path}: expected a JSON object with a 'path' list (MegaFace devkit format)")
    ids = doc.get("id")
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(doc["path"])):
        raise DataError(f"{path}: 'id' list does not match the 'path' list in length")
    return [str(p) for p in doc["path"]], ids


def _listed(base: Path, name: str, rel_paths, identities, listing: Path) -> list[Sample]:
    samples = []
    for i, rel in enumerate(rel_paths):
        img = base / rel
        if not img.is_file():
            raise DataError(f"{listing}: listed image {img} does not exist")
        ident = str(identities[i]) if identities is not None else Path(rel).parent.as_posix()
        samples.append(Sample(f"{name}/{Path(rel).as_posix()}", ident, img))
    return sorted(samples)


@register_dataset("lfw")
def load_lfw(root: Path) -> Dataset:
    """``ROOT/lfw/<Name>/<Name>_NNNN.jpg`` (pairs in ``ROOT/lfw/pairs.txt``)."""
    return load_folder(Path(root) / "lfw", "lfw")


@register_dataset("facescrub")
def load_facescrub(root: Path) -> Dataset:
    """``ROOT/facescrub/<Name>/*``, or the devkit's ``facescrub_features_list.json`` if present.

    ``facescrub_noises.txt`` (insightface's noise list), if present, removes those images.
    """
    base = Path(root) / "facescrub"
    _require_dir(base, "facescrub")
    listing = base / "facescrub_features_list.json"
    if listing.exists():
        paths, ids = _read_json_paths(listing)
        ds = Dataset("facescrub", base, _listed(base, "facescrub", paths, ids, listing),
                     [f"images listed by {listing.name}"])
    else:
        ds = load_folder(base, "facescrub")
    noise = base / "facescrub_noises.txt"
    if noise.exists():
        drop = read_path_list(noise)
        before = len(ds.samples)
        ds.samples = [s for s in ds.samples if s.key.split("/", 1)[1] not in drop
                      and s.path.name not in drop]
        ds.notes.append(f"{before - len(ds.samples)} images removed by {noise.name}")
    return ds


@register_dataset("celeba")
def load_celeba(root: Path) -> Dataset:
    """``ROOT/celeba/identity.txt``: ``<relative path> <identity>`` per line."""
    base = Path(root) / "celeba"
    _require_dir(base, "celeba")
    ident_file = base / "identity.txt"
    samples = []
    for n, line in enumerate(_read_lines(ident_file), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{ident_file}:{n}: expected '<relative path> <identity>', got {line!r}")
        img = base / parts[0]
        if not img.is_file():
            raise DataError(f"{ident_file}:{n}: listed image {img} does not exist")
        samples.append(Sample(f"celeba/{Path(parts[0]).as_posix()}", parts[1], img))
    if not samples:
        raise DataError(f"{ident_file}: lists no images")
    return Dataset("celeba", base, sorted(samples))


MEGAFACE_LIST = re.compile(r"^megaface_features_list\.json_(\d+)_1$")


def megaface_lists(root: Path) -> dict[int, Path]:
    """The devkit's distractor lists found in ``ROOT/megaface``, by D."""
    base = Path(root) / "megaface"
    if not base.is_dir():
        return {}
    found = {int(m.group(1)): p for p in base.iterdir() if (m := MEGAFACE_LIST.match(p.name))}
    return dict(sorted(found.items()))


def load_megaface(root: Path, D: int | None = None) -> Dataset:
    """MegaFace distractors from the devkit list for ``D`` (default: the largest list).

    Image paths in the lists are relative to ``ROOT/megaface/FlickrFinal2`` (or to
    ``ROOT/megaface`` if that folder does not exist); ``megaface_noises.txt`` is honoured.
    """
    base = Path(root) / "megaface"
    _require_dir(base, "megaface")
    lists = megaface_lists(root)
    if not lists:
        raise DataError(f"{base}: no megaface_features_list.json_<D>_1 lists; "
                        f"to get them, {HOW_TO_GET['megaface']}")
    if D is None:
        D = max(lists)
    if D not in lists:
        raise DataError(f"{base}: no list for D={D}; found D in {sorted(lists)}")
    images = base / "FlickrFinal2" if (base / "FlickrFinal2").is_dir() else base
    paths, _ = _read_json_paths(lists[D])
    noise = base / "megaface_noises.txt"
    notes = [f"D={D} from {lists[D].name}"]
    if noise.exists():
        drop = read_path_list(noise)
        kept = [p for p in paths if p not in drop]
        notes.append(f"{len(paths) - len(kept)} images removed by {noise.name}")
        paths = kept
    return Dataset("megaface", base, _listed(images, "megaface", paths, None, lists[D]), notes)


register_dataset("megaface")(load_megaface)
