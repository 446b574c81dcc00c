"""Real occlusions against their synthetic twins, from the tidy rows of ``identification-real``
(:mod:`occbench.protocols.real_occlusion`) alone.

:func:`real_vs_synthetic`: one row per (completer, recognizer, real set): how many people,
probe images and pairs the real rows come from; TPIR@1 (largest D) of the clean baseline,
of the real occluded probes and of the synthetic twin at each (form, size); the drop from
clean of the real occlusion and of each twin; and which synthetic (form, size) drops by the
amount closest to the real drop (the synthetic setting that predicts the real one).
:func:`real_markdown` formats it for ``report.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from occbench.results import NONE, REAL, is_neutral_of

PROTOCOL = "identification-real"


def tpir1_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """TPIR@1 rows at the largest D of each (model, recognizer, dataset, form, size)."""
    top = rows[(rows.metric == "tpir") & (rows["rank"] == 1)]
    keys = ["model", "recognizer", "dataset", "form", "size"]
    return top[top.D == top.groupby(keys)["D"].transform("max")]


def real_vs_synthetic(df: pd.DataFrame) -> pd.DataFrame:
    """The comparison table (empty without ``identification-real`` rows); TPIR figures and
    drops in percent / percentage points."""
    rows = df[df.protocol == PROTOCOL]
    if rows.empty:
        return pd.DataFrame()
    top = tpir1_rows(rows)
    out = []
    for (model, rec), part in top.groupby(["model", "recognizer"], sort=True):
        for real_set, real in part[part.form == REAL].groupby("dataset"):
            mine = part[[is_neutral_of(d, real_set) for d in part.dataset]]
            clean = mine[mine.form == NONE]
            if clean.empty:
                continue
            base, hit = 100 * clean.value.iloc[0], 100 * real.value.iloc[0]
            counts = rows[(rows.model == model) & (rows.recognizer == rec)
                          & (rows.dataset == real_set) & (rows.form == REAL)]
            count = dict(zip(counts.metric, counts.value, strict=False))
            line = {"model": model, "recognizer": rec, "real set": real_set,
                    "people": int(count["people"]) if "people" in count else None,
                    "probes": int(count["probes"]) if "probes" in count else None,
                    "pairs": int(real.n.iloc[0]), "clean": base, "real": hit,
                    "real drop": base - hit}
            twins = mine[~mine.form.isin([NONE, REAL])].sort_values(["form", "size"])
            best, best_gap = None, np.inf
            for t in twins.itertuples():
                name = f"{t.form} {t.size:g}"
                line[name] = 100 * t.value
                line[f"{name} drop"] = base - 100 * t.value
                gap = abs((base - 100 * t.value) - (base - hit))
                if gap < best_gap:
                    best, best_gap = name, gap
            line["closest synthetic"] = best
            out.append(line)
    return pd.DataFrame(out)


def real_markdown(table: pd.DataFrame) -> str:
    """The table as markdown: TPIR@1 % with one decimal, drops in points."""
    if table.empty:
        return ""
    shown = table.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    return shown.to_markdown(index=False, disable_numparse=True)
