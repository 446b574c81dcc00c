"""Tables from the tidy results table alone (no recomputation).

``summary_table`` gives one line per (model, recognizer, form, position, size) with the
headline figures: TPIR@1 at the largest D, LFW verification accuracy, PSNR and SSIM.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from occbench.imageio import atomic_write

KEYS = ["model", "recognizer", "form", "position", "size"]


def _fmt_ci(value: float, lo: float, hi: float, scale: float, digits: int) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return f"{value * scale:.{digits}f}"
    return f"{value * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of the headline metrics, one row per KEYS + column name."""
    parts = []
    ident = df[(df.protocol == "identification") & (df.metric == "tpir") & (df["rank"] == 1)]
    if not ident.empty:
        dmax = ident.groupby(KEYS)["D"].transform("max")
        top = ident[ident.D == dmax].copy()
        top["column"] = "TPIR@1 %"
        top["scale"], top["digits"] = 100.0, 2
        parts.append(top)
    ver = df[(df.protocol == "verification") & (df.metric == "accuracy")].copy()
    if not ver.empty:
        ver["column"], ver["scale"], ver["digits"] = "LFW acc %", 100.0, 2
        parts.append(ver)
    for metric, name, digits in (("psnr", "PSNR dB", 2), ("ssim", "SSIM", 4),
                                 ("mask_iou", "mask IoU", 3)):
        rec = df[(df.protocol == "reconstruction") & (df.metric == metric)]
        # the probe set (facescrub) is the paper's reconstruction set (MegaFace)
        rec = rec[rec.dataset != "lfw"].copy()
        if not rec.empty:
            rec["column"], rec["scale"], rec["digits"] = name, 1.0, digits
            parts.append(rec)
    lm = df[(df.protocol == "landmarks") & (df.metric == "nme")].copy()
    if not lm.empty:
        lm["column"], lm["scale"], lm["digits"] = "landmark NME", 1.0, 4
        parts.append(lm)
    if not parts:
        return pd.DataFrame(columns=KEYS + ["column", "text", "value"])
    long = pd.concat(parts, ignore_index=True)
    long["text"] = [
        _fmt_ci(v, lo, hi, s, int(d))
        for v, lo, hi, s, d in zip(long.value, long.ci_low, long.ci_high, long.scale,
                                   long.digits, strict=True)
    ]
    return long


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per KEYS, headline figures with their 95 % intervals."""
    long = headline(df)
    if long.empty:
        return pd.DataFrame()
    wide = long.pivot_table(index=KEYS, columns="column", values="text", aggfunc="first")
    order = [c for c in ("TPIR@1 %", "LFW acc %", "PSNR dB", "SSIM", "mask IoU", "landmark NME")
             if c in wide]
    return wide[order].sort_index()


def write_report(df: pd.DataFrame, out: Path | None = None) -> str:
    """Markdown of the summary table; with ``out``, also writes report.md and results.csv."""
    table = summary_table(df).reset_index()
    md = "# occbench results\n\n" + (table.to_markdown(index=False) if not table.empty
                                     else "(no headline rows)") + "\n"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "report.md", md.encode())
        atomic_write(out / "results.csv", lambda p: df.to_csv(p, index=False))
    return md
