"""The tidy results table: one row per (model, recognizer, dataset, protocol, form, position,
size, D, rank, metric), holding value, n and a 95 % confidence interval, plus provenance.

Stored in a results folder as append-only Parquet parts: each run writes its rows to
``<out>/parts/<UTC time>-<model>-<recognizer>-<key>.parquet`` and never rewrites another part, so
a folder under version control grows by the size of each run's own rows. Read as one table
(:func:`read_results`): an older single-file ``<out>/results.parquet`` first, then the parts in
the order they were written; where two parts hold the same row identity the later one wins (a
rerun replaces the figures it measured again). A part whose every row a later part replaces is
deleted when that later part is written. Reports and plots read this table alone.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from occbench import __version__
from occbench.errors import DataError
from occbench.imageio import atomic_write, locked

ID_COLUMNS = [
    "model", "recognizer", "dataset", "protocol", "form", "position", "size", "D", "rank", "metric",
]
VALUE_COLUMNS = ["value", "n", "ci_low", "ci_high"]
PROVENANCE_COLUMNS = ["occbench_version", "git_commit", "config", "created"]
COLUMNS = ID_COLUMNS + VALUE_COLUMNS + PROVENANCE_COLUMNS

# Placeholders in identity columns where a row has no such coordinate.
NONE = "none"
# Suffix of the model column for a non-blind completer (given the true occlusion mask).
NON_BLIND = "(non-blind)"
# identification-real (occbench.protocols.real_occlusion): the form of its real rows, and the
# dataset of its baseline and twin rows, the neutral set of the real set's people only (so the
# rows of two real sets keep apart), e.g. "rof:neutral (rof:masked people)".
REAL = "real"
_PEOPLE_OF = " ({} people)"


def neutral_of(probes: str, real_set: str) -> str:
    """The dataset column of ``probes`` restricted to the people of ``real_set``."""
    return probes + _PEOPLE_OF.format(real_set)


def is_neutral_of(dataset: str, real_set: str) -> bool:
    """Whether a row's dataset is a :func:`neutral_of` of ``real_set``."""
    return dataset.endswith(_PEOPLE_OF.format(real_set))


@dataclass
class Row:
    """One measured figure. ``D``/``rank`` are 0 where they do not apply (and size 0 = clean)."""

    model: str
    recognizer: str
    dataset: str
    protocol: str
    form: str
    position: str
    size: float
    metric: str
    value: float
    n: int
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    D: int = 0
    rank: int = 0


def git_commit(path: Path | None = None) -> str:
    """The current commit of the occbench checkout (``+dirty`` if modified), or ``unknown``."""
    where = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def rows_to_frame(rows: list[Row], config: dict) -> pd.DataFrame:
    """Rows plus provenance columns, in the table's column order."""
    df = pd.DataFrame([asdict(r) for r in rows])
    if df.empty:
        df = pd.DataFrame(columns=ID_COLUMNS + VALUE_COLUMNS)
    df["occbench_version"] = __version__
    df["git_commit"] = git_commit()
    df["config"] = json.dumps(config, sort_keys=True, default=str)
    df["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    df = df[COLUMNS]
    return df.astype({"size": float, "D": int, "rank": int, "n": int, "value": float})


LEGACY = "results.parquet"
PARTS = "parts"


def part_files(folder: str | Path) -> list[Path]:
    """The files that make up the results table of ``folder``, in reading order (an older
    ``results.parquet`` first, then the parts as written); empty if it holds none."""
    folder = Path(folder)
    legacy = [folder / LEGACY] if (folder / LEGACY).is_file() else []
    return legacy + sorted((folder / PARTS).glob("*.parquet"))


def _read_one(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable results table ({exc})") from None
    missing = [c for c in ID_COLUMNS + VALUE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: not an occbench results table (missing columns {missing})")
    return check_table(df, path)


def read_results(path: str | Path) -> pd.DataFrame:
    """The results table of a results folder (every part, later parts winning) or of one
    Parquet file, with a clear error if there is none or a file is not one."""
    path = Path(path)
    files = part_files(path) if path.is_dir() else [path] if path.exists() else []
    if not files:
        raise DataError(f"{path}: no results table (run `occbench run` first)")
    frames = [_read_one(f) for f in files]
    if len(frames) == 1:
        return frames[0]
    df = pd.concat(frames, ignore_index=True)
    df = df.drop_duplicates(subset=ID_COLUMNS, keep="last")
    return df.sort_values(ID_COLUMNS, kind="stable").reset_index(drop=True)


NUMERIC_COLUMNS = ["size", "D", "rank", "value", "n", "ci_low", "ci_high"]


def check_table(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """``df`` if its figures are numbers and each row identity occurs once; else a
    :class:`DataError` naming ``path`` (rows repeated with the same figures are dropped)."""
    for col in NUMERIC_COLUMNS:
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            raise DataError(f"{path}: column {col!r} holds {df[col].dtype} values, not numbers; "
                            "this table was not written by occbench (rerun to rewrite it)")
    dup = df.duplicated(subset=ID_COLUMNS, keep=False)
    if dup.any():
        clash = df[dup].groupby(ID_COLUMNS, dropna=False)[VALUE_COLUMNS].nunique(dropna=False)
        clash = clash[(clash > 1).any(axis=1)]
        if len(clash):
            first = {c: v.item() if hasattr(v, "item") else v
                     for c, v in zip(ID_COLUMNS, clash.index[0], strict=True)}
            raise DataError(f"{path}: {len(clash)} row identities occur more than once with "
                            f"different figures (e.g. {first}); which one is right is unknown: "
                            "rerun those conditions into a fresh table")
        df = df.drop_duplicates(subset=ID_COLUMNS, keep="last").reset_index(drop=True)
    return df


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40]


def append_results(folder: str | Path, new: pd.DataFrame) -> Path:
    """Write ``new`` as a new part of the results folder ``folder`` and return its path.

    The part is named by its creation time, model, recognizer and a digest of its rows, and
    written atomically; no other part is rewritten. Older parts whose every row identity
    ``new`` holds are deleted (all their figures are replaced), under a lock, so parallel
    sweeps into one folder never lose each other's rows.
    """
    folder = Path(folder)
    new = new.sort_values(ID_COLUMNS, kind="stable").reset_index(drop=True)
    new = check_table(new, "the rows to store")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    digest = hashlib.sha256(pd.util.hash_pandas_object(new, index=False).values.tobytes())
    who = "-".join(_slug(str(v)) for v in
                   (new["model"].iloc[0], new["recognizer"].iloc[0])) if len(new) else "empty"
    parts = folder / PARTS
    with locked(parts):
        older = part_files(folder)
        dest = parts / f"{stamp}-{who}-{digest.hexdigest()[:12]}.parquet"
        atomic_write(dest, lambda tmp: new.to_parquet(tmp, index=False))
        ids = pd.MultiIndex.from_frame(new[ID_COLUMNS])
        for old in older:
            if old.parent != parts:
                continue  # an older single-file table is read, never rewritten or deleted
            try:
                theirs = pd.MultiIndex.from_frame(pd.read_parquet(old, columns=ID_COLUMNS))
            except Exception:  # unreadable: leave it for read_results to name
                continue
            if theirs.isin(ids).all():
                old.unlink()
    return dest
