"""Tables from the tidy results table alone (no recomputation).

* :func:`summary_table`: one line per (model, recognizer, form, position, size) with the
  headline figures each registered protocol declares (``Protocol.headlines``): TPIR@1 at the
  largest D (and of the clean-gallery variant where run), LFW verification accuracy, PSNR,
  SSIM, mask IoU, landmark NME, and a plug-in protocol's own columns.
* :func:`table1`: the paper's Table I: one row per (model, recognizer), TPIR@1 per position
  for rectangles and text averaged over sizes, the averages, LFW accuracy, PSNR, SSIM and the
  share of the occluded->clean gap a row closes.

Averages over conditions (:func:`average`) are plain means of the per-condition figures; their
95 % intervals combine the per-condition half-widths as if the conditions were independent,
sqrt(sum h_i^2) / k. The conditions share their probes, so these intervals are narrower than a
joint bootstrap would give: read them as a lower bound on the uncertainty.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from occbench.imageio import atomic_write
from occbench.protocols.base import Headline
from occbench.results import NON_BLIND, NONE

KEYS = ["model", "recognizer", "form", "position", "size"]
#: The identification variant with a clean gallery (its columns: ``TPIR@1 cg ...``).
CLEAN_GALLERY = "identification-clean-gallery"


def model_rank(model: str) -> float:
    """A completer's place in tables and legends: its registered ``order`` (the paper's row
    order for the built-ins); unregistered or unordered ones after them, by name."""
    from occbench import registry

    order = registry.completers.meta(model.removesuffix(f" {NON_BLIND}"), "order")
    return float("inf") if order is None else float(order)


def form_order(forms) -> list[str]:
    """The forms of a table by their registered ``order`` (the paper's rect, text first),
    then the others by name; a form no plug-in registers any more is still listed."""
    from occbench import registry

    def key(form):
        order = registry.forms.meta(form, "order")
        return (order is None, order if order is not None else 0, form)

    return sorted(set(forms) - {NONE}, key=key)


def position_order(positions) -> list[str]:
    """Positions of a table: eyes, nose, mouth, outside, then any other (``none`` last)."""
    from occbench.occlusion import POSITIONS

    present = set(positions)
    return ([p for p in POSITIONS if p in present]
            + sorted(present - set(POSITIONS) - {NONE}) + ([NONE] if NONE in present else []))


def form_title(form: str) -> str:
    """A form's title in figures (its registered ``title``), else its name."""
    from occbench import registry

    return registry.forms.load(form).title if form in registry.forms else form


def _fmt_ci(value: float, lo: float, hi: float, scale: float, digits: int) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return f"{value * scale:.{digits}f}"
    return f"{value * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def headline_figures() -> list[tuple[str, Headline]]:
    """(protocol name, :class:`~occbench.protocols.base.Headline`) of every registered
    protocol that declares headlines, in column order (``order``, then by name)."""
    from occbench import registry

    found = []
    for name in registry.protocols.names():
        for h in getattr(registry.protocols.load(name), "headlines", ()):
            found.append((h.order, name, h))
    found.sort(key=lambda t: (t[0], t[1]))
    return [(name, h) for _, name, h in found]


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of the headline figures every registered protocol declares, one row per
    KEYS + column name."""
    parts = []
    for protocol, h in headline_figures():
        rows = df[(df.protocol == protocol) & (df.metric == h.metric)]
        if h.rank is not None:
            rows = rows[rows["rank"] == h.rank]
        if h.exclude_datasets:
            rows = rows[~rows.dataset.isin(h.exclude_datasets)]
        if h.largest_d and not rows.empty:
            rows = rows[rows.D == rows.groupby(KEYS)["D"].transform("max")]
        if not rows.empty:
            rows = rows.copy()
            rows["column"], rows["scale"], rows["digits"] = h.column, h.scale, h.digits
            parts.append(rows)
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
    """Wide table: one row per KEYS, a column per headline figure (registered protocols'
    :class:`~occbench.protocols.base.Headline` s) with its 95 % interval."""
    long = headline(df)
    if long.empty:
        return pd.DataFrame()
    wide = long.pivot_table(index=KEYS, columns="column", values="text", aggfunc="first")
    order = [h.column for _, h in headline_figures() if h.column in wide]
    return wide[order].sort_index()


def split_configs(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The table with its ``config`` JSON column replaced by a short ``config_id`` (the first
    12 hex digits of the JSON's SHA-256), and the id -> configuration map. The same JSON of a
    few hundred characters repeats on every one of a run's thousands of rows."""
    if "config" not in df:
        return df, {}
    texts = df["config"].astype(str)
    ids = {t: hashlib.sha256(t.encode()).hexdigest()[:12] for t in texts.unique()}
    flat = df.drop(columns="config").assign(config_id=texts.map(ids))
    return flat, {i: json.loads(t) for t, i in ids.items()}


def write_report(df: pd.DataFrame, out: Path | None = None,
                 sizes: tuple | None = None, forms: tuple | None = None) -> str:
    """Markdown of Table I and the summary table; with ``out``, also writes report.md,
    results.csv (the whole tidy table, each row's run configuration named by ``config_id``),
    configs.json (``config_id`` -> configuration), table1.csv (Table I, long form) and, with
    ``identification-real`` rows, real_vs_synthetic.csv (:mod:`occbench.report_real`).
    ``sizes`` restricts Table I (see :func:`table1`)."""
    t1 = table1(df, sizes, forms)
    table = summary_table(df).reset_index()
    which = f"sizes {', '.join(map(str, sizes))}" if sizes else "averaged over sizes"
    if forms:
        which = f"forms {', '.join(forms)}; {which}"
    from occbench.report_real import real_markdown, real_vs_synthetic

    real = real_vs_synthetic(df)
    md = (f"# occbench results\n\n## Table I ({which}; ± = 95 % interval)\n\n"
          + table1_markdown(t1)
          + "\n## Every condition (TPIR@1 at the largest D; [95 % interval])\n\n"
          + (table.to_markdown(index=False) if not table.empty else "(no headline rows)")
          + "\n")
    if not real.empty:
        md += ("\n## Real occlusions vs their synthetic twins (identification-real; TPIR@1 % "
               "at the largest D, drops in points)\n\n" + real_markdown(real) + "\n")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "report.md", md.encode())
        flat, configs = split_configs(df)
        atomic_write(out / "results.csv", lambda p: flat.to_csv(p, index=False))
        atomic_write(out / "configs.json", json.dumps(configs, indent=1).encode())
        atomic_write(out / "table1.csv", lambda p: t1.to_csv(p, index=False))
        if not real.empty:
            atomic_write(out / "real_vs_synthetic.csv", lambda p: real.to_csv(p, index=False))
    return md


# --------------------------------------------------------------------------- Table I


def headline_rows(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The per-condition rows Table I and the figures average: ``tpir1`` (identification
    TPIR@1 at the largest D of each model/recognizer), ``lfw`` (verification accuracy),
    ``psnr``, ``ssim`` and ``mask_iou`` (reconstruction, probe set), ``nme`` (landmarks),
    ``tpir1_cg`` (as ``tpir1``, of the clean-gallery identification variant)."""
    out = {}
    for name, protocol in (("tpir1", "identification"), ("tpir1_cg", CLEAN_GALLERY)):
        ident = df[(df.protocol == protocol) & (df.metric == "tpir") & (df["rank"] == 1)]
        if not ident.empty:
            dmax = ident.groupby(["model", "recognizer"])["D"].transform("max")
            out[name] = ident[ident.D == dmax]
    out["lfw"] = df[(df.protocol == "verification") & (df.metric == "accuracy")]
    rec = df[(df.protocol == "reconstruction") & (df.dataset != "lfw")]
    for metric in ("psnr", "ssim", "mask_iou"):
        out[metric] = rec[rec.metric == metric]
    out["nme"] = df[(df.protocol == "landmarks") & (df.metric == "nme")]
    return {k: v for k, v in out.items() if not v.empty}


def average(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean ``value`` per ``by`` group with a combined 95 % half-width ``half`` (see the
    module docstring), ``n`` (measurements summed over the group) and ``k`` (conditions)."""
    if rows.empty:
        return pd.DataFrame(columns=by + ["value", "half", "n", "k"])
    r = rows.assign(_h2=((rows.ci_high - rows.ci_low) / 2.0) ** 2)
    g = r.groupby(by, dropna=False)
    out = g.agg(value=("value", "mean"), _h2=("_h2", "sum"), n=("n", "sum"), k=("value", "size"))
    out["half"] = np.sqrt(out.pop("_h2")) / out.k
    return out.reset_index()


def base_recognizer(name: str) -> str:
    """The recognizer whose occluded / clean rows ``name`` is compared with: its registered
    ``base`` (``resnet50`` for ``resnet50-occ``), else itself."""
    from occbench import registry

    return registry.recognizers.meta(name, "base") or name


def _size_filter(df: pd.DataFrame, sizes) -> np.ndarray:
    """Rows of the clean condition or of an occluded condition whose size is listed; an entry
    ``"rect:0.1"`` keeps that size for that form only, a bare number for every form."""
    keep = (df.form == NONE).to_numpy().copy()
    for entry in sizes:
        form, _, value = str(entry).rpartition(":")
        match = np.isclose(df["size"].to_numpy(dtype=float), float(value))
        if form:
            match &= (df.form == form).to_numpy()
        keep |= match
    return keep


def table1(df: pd.DataFrame, sizes: tuple | None = None,
           forms: tuple | None = None) -> pd.DataFrame:
    """Long Table I: one row per (model, recognizer, column) with value, half, n, k.

    Columns: ``TPIR@1 clean``; ``TPIR@1 <form> <position>`` (mean over sizes), ``TPIR@1
    <form>`` and ``TPIR@1 avg`` (over positions and sizes); ``LFW clean``, ``LFW <form>``,
    ``LFW avg``; ``TPIR@1 cg <form>`` and ``TPIR@1 cg avg`` where the clean-gallery variant
    (protocol ``identification-clean-gallery``) was run; ``PSNR``, ``SSIM`` (over every
    occluded condition); ``gap closed %``: (row's
    TPIR@1 avg - occluded's) / (clean's - occluded's), where occluded and clean are the
    ``occluded`` model's occluded average and clean condition with the row's base recognizer
    (``resnet50`` for ``resnet50-occ``), in percent, over the same conditions as the row.
    ``sizes``: only occluded conditions of these sizes, e.g. ``("rect:0.1", "text:0.3")`` (the
    paper's middle sizes) so that rows measured on different size sets compare on the same
    ones; a bare number applies to both forms. ``forms``: only these occlusion forms (e.g.
    the paper's ``("rect", "text")``, so that a row's average is over the paper's forms).
    """
    if forms:  # e.g. the paper's rect and text only: averages over the same kind of occlusion
        df = df[(df.form == NONE) | df.form.isin(list(forms))]
    if sizes:
        df = df[_size_filter(df, sizes)]
    heads = headline_rows(df)
    parts = []
    who = ["model", "recognizer"]

    def add(frame: pd.DataFrame, column: str, scale: float = 1.0):
        if frame.empty:
            return
        f = frame.copy()
        f["value"] *= scale
        f["half"] *= scale
        f["column"] = column
        parts.append(f[who + ["column", "value", "half", "n", "k"]])

    for metric, label, scale in (("tpir1", "TPIR@1", 100.0), ("tpir1_cg", "TPIR@1 cg", 100.0),
                                 ("lfw", "LFW", 100.0)):
        rows = heads.get(metric)
        if rows is None:
            continue
        clean = rows[rows.form == NONE]
        occ = rows[rows.form != NONE]
        if metric != "tpir1_cg":  # its clean condition is identification's
            add(average(clean, who), f"{label} clean", scale)
        if metric == "tpir1":
            for (form, pos), sub in occ.groupby(["form", "position"]):
                if pos != NONE:  # a form without positions: its form column says it all
                    add(average(sub, who), f"{label} {form} {pos}", scale)
        for form, sub in occ.groupby("form"):
            add(average(sub, who), f"{label} {form}", scale)
        add(average(occ, who), f"{label} avg", scale)
    for metric, label in (("psnr", "PSNR"), ("ssim", "SSIM")):
        rows = heads.get(metric)
        if rows is not None:
            add(average(rows[rows.form != NONE], who), label)
    if not parts:
        return pd.DataFrame(columns=who + ["column", "value", "half", "n", "k"])
    long = pd.concat(parts, ignore_index=True)
    if "tpir1" in heads:
        long = pd.concat([long, _gap_closed(heads["tpir1"])], ignore_index=True)
    return long


def _gap_closed(tpir1: pd.DataFrame) -> pd.DataFrame:
    """Gap closed per (model, recognizer) over exactly the conditions that row has: the
    occluded baseline (base recognizer) is averaged over the same conditions."""
    cond = ["form", "position", "size"]
    occ_rows = tpir1[tpir1.form != NONE]
    rows = []
    for (model, rec), part in occ_rows.groupby(["model", "recognizer"]):
        base = base_recognizer(rec)
        ref = tpir1[(tpir1.model == "occluded") & (tpir1.recognizer == base)]
        clean = ref[ref.form == NONE]
        low = part[cond].merge(ref[ref.form != NONE], on=cond, how="left")
        if clean.empty or low.value.isna().any():
            continue  # the baseline lacks some of this row's conditions: no fair comparison
        low_v, high_v = low.value.mean(), clean.value.iloc[0]
        if high_v - low_v <= 0:
            continue
        rows.append({"model": model, "recognizer": rec, "column": "gap closed %",
                     "value": 100.0 * (part.value.mean() - low_v) / (high_v - low_v),
                     "half": float("nan"), "n": int(part.n.sum()), "k": len(part)})
    return pd.DataFrame(rows)


def _column_order(columns) -> list[str]:
    order = ["TPIR@1 clean"]
    # the forms and positions these columns name ("TPIR@1 <form> <position>", "LFW <form>")
    plain = [c for c in columns if not c.startswith("TPIR@1 cg ")]
    forms = form_order(({c.split()[-1] for c in columns if c.startswith(("TPIR@1 cg ", "LFW "))}
                        | {c.split()[1] for c in plain if c.startswith("TPIR@1 ")})
                       - {"clean", "avg"})
    positions = position_order({c.split()[2] for c in plain
                                if c.startswith("TPIR@1 ") and len(c.split()) == 3})
    for form in forms:
        order += [f"TPIR@1 {form} {p}" for p in positions] + [f"TPIR@1 {form}"]
    order += ["TPIR@1 avg", "gap closed %"] + [f"TPIR@1 cg {f}" for f in forms]
    order += ["TPIR@1 cg avg", "LFW clean"] + [f"LFW {f}" for f in forms]
    order += ["LFW avg", "PSNR", "SSIM"]
    return [c for c in order if c in set(columns)]


def _row_order(index) -> list[tuple[str, str]]:
    def key(mr):
        model, rec = mr
        m = model_rank(model)
        # a -occ recognizer's rows right after the base recognizer's occluded/clean rows
        return (base_recognizer(rec), rec != base_recognizer(rec) and m > 1, m, model, rec)

    return sorted(index, key=key)


def table1_markdown(long: pd.DataFrame) -> str:
    """Markdown of :func:`table1`, one table per base recognizer; cells "value ±half"."""
    if long.empty:
        return "(no Table I rows)\n"
    digits = {"PSNR": 2, "SSIM": 4}
    out = []
    long = long.assign(base=long.recognizer.map(base_recognizer))
    for base, part in long.groupby("base", sort=True):
        cols = _column_order(part.column.unique())
        cells = {}
        for r in part.itertuples():
            d = digits.get(r.column, 2)
            text = f"{r.value:.{d}f}"
            if not pd.isna(r.half):
                text += f" ±{r.half:.{d}f}"
            cells[(r.model, r.recognizer, r.column)] = text
        rows = _row_order({(r.model, r.recognizer) for r in part.itertuples()})
        table = pd.DataFrame(
            [[m if rec == base else f"{m} ({rec})"] + [cells.get((m, rec, c), "") for c in cols]
             for m, rec in rows],
            columns=["model"] + cols)
        counts = part.groupby("column").agg(k=("k", "max"), n=("n", "max"))
        notes = "; ".join(f"{c}: k={int(counts.loc[c, 'k'])}, n={int(counts.loc[c, 'n']):,}"
                          for c in cols if c in counts.index and c != "gap closed %")
        out.append(f"### Recognizer `{base}`\n\n{table.to_markdown(index=False)}\n\n"
                   f"k = conditions averaged, n = measurements summed over them (probe/gallery "
                   f"pairs for TPIR, LFW pairs, faces for PSNR/SSIM): {notes}.\n")
    return "\n".join(out)
