"""The tidy results table: one row per (model, recognizer, dataset, protocol, form, position,
size, D, rank, metric), holding value, n and a 95 % confidence interval, plus provenance.

Stored as Parquet (``results.parquet``), merged run after run: a new row replaces an old one
with the same identity columns. Reports and plots read this table alone.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
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


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results table, with a clear error if it is missing or not one."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.parquet"
    if not path.exists():
        raise DataError(f"{path}: no results table (run `occbench run` first)")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable results table ({exc})") from None
    missing = [c for c in ID_COLUMNS + VALUE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: not an occbench results table (missing columns {missing})")
    return check_table(df, path)


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


def merge_results(path: str | Path, new: pd.DataFrame) -> pd.DataFrame:
    """Merge ``new`` into the table at ``path`` (new rows win) and write it atomically, under
    a lock, so runs that share one table (parallel sweeps) never lose each other's rows."""
    path = Path(path)
    with locked(path):
        if path.exists():
            old = read_results(path)
            combined = pd.concat([old, new], ignore_index=True)
            combined = combined.drop_duplicates(subset=ID_COLUMNS, keep="last")
        else:
            combined = new
        combined = combined.sort_values(ID_COLUMNS, kind="stable").reset_index(drop=True)
        atomic_write(path, lambda tmp: combined.to_parquet(tmp, index=False))
    return combined


def mean_ci(values: np.ndarray, *, seed: int = 0, reps: int = 1000) -> tuple[float, float, float]:
    """Mean of per-item values with a 95 % percentile bootstrap interval over items.

    Non-finite values (a PSNR of inf for an untouched image) are left out of all three.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(reps, v.size))
    boot = v[idx].mean(axis=1)
    return float(v.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
