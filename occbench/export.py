"""Export occluded faces in the layout of the paper's released occluded gallery.

    occbench occlude --set lfw --form text --position eyes --size 0.3 --out DIR

writes, for every readable image of the data set (aligned to 112x112, cached)::

    DIR/{square,text}/{eyes,mouth,nose,outside}/<size>/img/<Name>/<file>.png   occluded face
    DIR/{square,text}/{eyes,mouth,nose,outside}/<size>/mask/<Name>/<file>.png  mask, 0 / 255

``square`` is the folder of the ``rect`` form; ``<size>`` is written ``f"{size:g}"`` like the
paper's release (0.05, 0.1, 0.15, 0.3, 0.5); ``<Name>`` is the identity (LFW: the person's
folder) and ``<file>`` the source file's stem. Every PNG is written atomically and always
overwritten, so a rerun (same seed) rewrites the same bytes and an interrupted one can be
rerun safely.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePath

import numpy as np

from occbench.errors import DataError
from occbench.imageio import write_png
from occbench.occlusion import check_spec, get_form, occlude

MAX_LISTED = 20  # unreadable files named in the summary


def condition_dir(out: str | os.PathLike, form: str, position: str, size: float) -> Path:
    """``out/<square|text>/<position>/<size:g>``: the folder holding ``img/`` and ``mask/``
    (the form's ``export_name``; a form without positions: ``out/<form>/<size:g>``)."""
    form, size = check_spec(form, size, position)
    f = get_form(form)
    folder = Path(out) / f.export_name
    return (folder / position if f.positions else folder) / f"{size:g}"


def _safe_part(name: str, what: str, key: str) -> str:
    """One path component; :class:`DataError` for a name that would escape its folder."""
    if not name or name in (".", "..") or len(PurePath(name).parts) != 1 or "/" in name:
        raise DataError(f"{key}: {what} {name!r} cannot be used as a folder or file name")
    return name


def export_occluded(
    data_root: str | os.PathLike,
    set_name: str,
    form: str,
    position: str,
    size: float,
    out: str | os.PathLike,
    seed: int = 0,
    limit: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> str:
    """Occlude every face of ``set_name`` and write image and mask PNGs under ``out``.

    ``seed`` (default 0) selects the occlusions (see :func:`occbench.occlusion.occlude`);
    ``limit`` keeps the data set's first N images; ``workers`` are the alignment processes
    (default: all CPUs; occluding and writing run in this process); ``progress`` shows a
    tqdm bar on stderr. Returns a summary: images written, where, and unreadable files.
    The setting is validated before any data is read (:class:`ConfigError`).
    """
    from tqdm import tqdm

    from occbench.align import align_dataset
    from occbench.data import load_dataset

    form, size = check_spec(form, size, position)
    target = condition_dir(out, form, position, size)
    ds = load_dataset(set_name, Path(data_root))
    faces = align_dataset(ds, limit=limit, workers=workers, progress=progress)
    points = faces.landmarks68 if get_form(form).needs_landmarks else [None] * len(faces)

    seen: dict[tuple[str, str], str] = {}
    written = 0
    bar = tqdm(faces.samples, desc=f"occlude {set_name}", unit="img", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    for sample, face, marks in zip(bar, faces.images, points, strict=True):
        name = _safe_part(str(sample.identity), "identity", sample.key)
        stem = _safe_part(Path(sample.path).stem, "file name", sample.key)
        other = seen.setdefault((name, stem), sample.key)
        if other != sample.key:
            raise DataError(f"{sample.key} and {other} would both be written as {name}/{stem}.png")
        occ = occlude(face, sample.key, form, size, position, seed=seed, landmarks=marks)
        write_png(target / "img" / name / f"{stem}.png", occ.image)
        write_png(target / "mask" / name / f"{stem}.png", (occ.mask * np.uint8(255)))
        written += 1
    bar.close()

    lines = [
        f"wrote {written} occluded faces of {set_name} ({form} {position} {size:g}, seed {seed}) "
        f"to {target} (img/ and mask/)",
        f"alignment: face found in {int(faces.aligned.sum())}, "
        f"fixed framing used for {len(faces) - int(faces.aligned.sum())}",
    ]
    if faces.bad:
        lines.append(f"skipped {len(faces.bad)} unreadable files:")
        lines += [f"  {key}: {reason}" for key, _, reason in faces.bad[:MAX_LISTED]]
        if len(faces.bad) > MAX_LISTED:
            lines.append(f"  ... and {len(faces.bad) - MAX_LISTED} more")
    return "\n".join(lines)
