"""Figures from the tidy results table alone (no recomputation), in the paper's layout.

* :func:`fig7` (paper Fig. 7), one row per occlusion form (rectangle, text), one line per
  model (completer, or ``occluded (resnet50-occ)`` for a -occ recognizer), for one base
  recognizer: TPIR vs rank (largest D), TPIR@1 vs number of distractors D (log scale), both
  averaged over the (position, size) conditions that every line has (:func:`comparable`);
  TPIR@1 vs occlusion size and SSIM vs size, one panel per position.
* :func:`fig8` (paper Fig. 8): landmark NME vs size per position and form.
* :func:`roc` (not in the paper): verification TAR vs FAR per condition, from the sampled
  ROC curve of the verification rows (``tar@far=F``).

Bands are the 95 % intervals stored in the table (per condition), or for averaged lines the
combined half-width of :func:`occbench.report.average`. Each figure is written as PNG and PDF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from occbench.imageio import save_figure
from occbench.report import (
    average,
    base_recognizer,
    form_order,
    form_title,
    headline_rows,
    model_rank,
    position_order,
)
from occbench.results import NONE


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    return plt, sns


def _label(model: str, recognizer: str, base: str) -> str:
    return model if recognizer == base else f"{model} ({recognizer})"


def _lines(df: pd.DataFrame, base: str) -> pd.DataFrame:
    """Rows of recognizers with this base, with a ``line`` label per (model, recognizer)."""
    df = df[df.recognizer.map(base_recognizer) == base].copy()
    df["line"] = [_label(m, r, base) for m, r in zip(df.model, df.recognizer, strict=True)]
    return df


def comparable(ident: pd.DataFrame) -> pd.DataFrame:
    """Rows for the rank and D panels: the (position, size) conditions that every line has.

    A line measured at under half as many conditions as the best-covered one (say one size
    only) is left out of those two panels, or it would shrink everyone's average to its few
    conditions; its points still appear in the per-size panels. With no condition in common,
    every row is kept.
    """
    cond = pd.Series(list(zip(ident.position, ident["size"], strict=True)), index=ident.index,
                     dtype=object)
    per_line = {line: set(c) for line, c in cond.groupby(ident.line)}
    if not per_line:
        return ident
    most = max(len(c) for c in per_line.values())
    kept = [line for line, c in per_line.items() if 2 * len(c) >= most]
    common = set.intersection(*(per_line[line] for line in kept))
    if not common:
        return ident
    return ident[ident.line.isin(kept) & cond.isin(common)]


def _line_order(labels) -> list[str]:
    def key(label: str):
        model = label.split(" (")[0]
        return (model_rank(model), label)

    return sorted(set(labels), key=key)


def _draw(ax, data: pd.DataFrame, x: str, palette: dict, order: list[str], scale: float = 1.0,
          marker: bool = True) -> None:
    """One line per ``line`` in its ``palette`` style (markers unless ``marker`` is False)
    with its band: ``value`` +- ``half`` (or ci_low..ci_high)."""
    if data.empty:  # e.g. no reconstruction rows: an empty panel
        return
    for label in order:
        d = data[data.line == label].sort_values(x)
        if d.empty:
            continue
        y = d.value.to_numpy() * scale
        if "half" in d:
            lo, hi = y - d.half.to_numpy() * scale, y + d.half.to_numpy() * scale
        else:
            lo, hi = d.ci_low.to_numpy() * scale, d.ci_high.to_numpy() * scale
        style = palette[label]
        ax.plot(d[x], y, marker=style["marker"] if marker else None, markersize=3.5, label=label,
                color=style["color"], ls=style["ls"])
        if np.isfinite(lo).any():
            ax.fill_between(d[x], lo, hi, alpha=0.18, color=style["color"], linewidth=0)


#: The PNG serves the README and RESULTS.md on a screen; the PDF (vector) serves a paper. At
#: 160 dpi a Fig. 7 PNG was 4146 x 1872 pixels and 1 MB, re-committed with every sweep part
#: that changed its picture.
PNG_DPI, PDF_DPI = 100, 160


def _save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [save_figure(fig, out / f"{stem}.png", dpi=PNG_DPI),
            save_figure(fig, out / f"{stem}.pdf", dpi=PDF_DPI)]


#: Beyond ten lines the tab10 colours repeat, each further ten with their own marker and dash
#: pattern ("--" is left for the clean reference lines).
_MARKERS, _DASHES = ("o", "s", "^", "D", "v"), ("-", "-.", ":", (0, (5, 1, 1, 1)), (0, (1, 3)))


def _save_closed(fig, out: Path, stem: str) -> list[Path]:
    """:func:`_save`, then close the figure (figures are many and large)."""
    plt, _ = _plt()
    paths = _save(fig, out, stem)
    plt.close(fig)
    return paths


def _palette(sns, order: list[str]) -> dict:
    """Each line's style: ``{"color", "marker", "ls"}``. Lines 0-9 take the tab10 colours (well
    apart, unlike evenly spaced hues past ten); line i >= 10 the colour of i % 10 with the
    marker and dash pattern of its ten, so no two lines look alike."""
    colours = sns.color_palette("tab10", 10)
    return {label: {"color": colours[i % 10], "marker": _MARKERS[i // 10 % len(_MARKERS)],
                    "ls": _DASHES[i // 10 % len(_DASHES)]}
            for i, label in enumerate(order)}


def _shared_reconstruction(df: pd.DataFrame, lines: set[str]) -> pd.DataFrame:
    """SSIM rows of the models drawn as ``lines``, whichever recognizer's sweep measured them
    (reconstruction does not depend on the recognizer): one row per (model, set, condition)."""
    ssim = headline_rows(df).get("ssim", pd.DataFrame())
    if ssim.empty:
        return ssim
    ssim = ssim.drop_duplicates(["model", "dataset", "form", "position", "size"]).copy()
    ssim["line"] = ssim.model
    return ssim[ssim.line.isin(lines)]


def _legend(fig, axes, order: list[str], top: float) -> None:
    """One legend entry per line drawn in any panel (a line measured at a few conditions only
    is absent from the averaged panels but drawn in the per-size ones), in ``order``."""
    found = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    labels = [label for label in order if label in found]
    fig.legend([found[label] for label in labels], labels, loc="upper center",
               ncol=min(len(labels), 6), bbox_to_anchor=(0.5, top), frameon=False)


def fig7(df: pd.DataFrame, recognizer: str, out: Path) -> list[Path]:
    """Paper Fig. 7 for ``recognizer`` (and its -occ variant) -> fig7_<recognizer>.png/pdf."""
    return _save_closed(figure7(df, recognizer), out, f"fig7_{recognizer}")


def figure7(df: pd.DataFrame, recognizer: str):
    """The matplotlib figure of :func:`fig7` (not saved)."""
    plt, sns = _plt()
    all_rows, df = df, _lines(df, recognizer)
    ident = df[(df.protocol == "identification") & (df.metric == "tpir") & (df.form != NONE)]
    if ident.empty:
        raise ValueError(f"no identification rows for recognizer {recognizer!r}")
    heads = headline_rows(df)
    order = _line_order(df.line)
    palette = _palette(sns, order)
    forms = form_order(set(ident.form))
    # each form its own positions (a form without positions: one panel of its sizes)
    by_form = {f: position_order(set(ident[ident.form == f].position)) for f in forms}
    width = max(len(p) for p in by_form.values())
    ncols = 2 + 2 * width
    fig, axes = plt.subplots(len(forms), ncols, figsize=(2.6 * ncols, 2.6 * len(forms) + 0.6),
                             squeeze=False)
    dmax = ident.groupby("line").D.transform("max")
    ssim = _shared_reconstruction(all_rows, set(order))
    for i, form in enumerate(forms):
        f_ident = comparable(ident[ident.form == form])
        # TPIR vs rank at the largest D
        cmc = f_ident[(f_ident.D == dmax[f_ident.index]) & (f_ident["rank"] <= 1000)]
        ax = axes[i, 0]
        _draw(ax, average(cmc, ["line", "rank"]), "rank", palette, order, 100, marker=False)
        ax.set_xscale("log")
        ax.set(xlabel="rank", ylabel=f"{form_title(form)}\nTPIR %", title="TPIR vs rank")
        # TPIR@1 vs D
        byd = f_ident[f_ident["rank"] == 1]
        ax = axes[i, 1]
        _draw(ax, average(byd, ["line", "D"]), "D", palette, order, 100)
        ax.set_xscale("log")
        ax.set(xlabel="distractors D", ylabel="TPIR@1 %", title="TPIR@1 vs D")
        top = heads.get("tpir1", pd.DataFrame())
        clean = top[top.form == NONE] if len(top) else top
        positions = by_form[form]
        for j in range(len(positions), width):  # panels this form has no position for
            axes[i, 2 + j].set_visible(False)
            axes[i, 2 + width + j].set_visible(False)
        for j, pos in enumerate(positions):
            at = "" if pos == NONE else f", {pos}"
            ax = axes[i, 2 + j]
            if j:  # positions side by side on one scale
                ax.sharey(axes[i, 2])
                axes[i, 2 + width + j].sharey(axes[i, 2 + width])
            sub = top[(top.form == form) & (top.position == pos)] if len(top) else top
            _draw(ax, sub, "size", palette, order, 100)
            for r in clean.itertuples():  # the clean end of the gap, dashed
                if r.line in palette:
                    ax.axhline(100 * r.value, ls="--", lw=0.9, color=palette[r.line]["color"])
            ax.set(xlabel="size", ylabel="TPIR@1 % (dashed: clean)" if j == 0 else "",
                   title=f"TPIR@1{at}")
            ax = axes[i, 2 + width + j]
            sub = ssim[(ssim.form == form) & (ssim.position == pos)] if len(ssim) else ssim
            _draw(ax, sub, "size", palette, order)
            ax.set(xlabel="size", ylabel="SSIM" if j == 0 else "", title=f"SSIM{at}")
    _legend(fig, axes, order, 1.0 + 0.02)
    fig.suptitle(f"Recognizer {recognizer}: FaceScrub probes, LFW distractors", y=1.06)
    fig.tight_layout()
    return fig


def fig8(df: pd.DataFrame, out: Path, recognizer: str | None = None) -> list[Path]:
    """Paper Fig. 8: landmark NME vs size per position (rows: forms) -> fig8_landmarks."""
    plt, sns = _plt()
    lm = df[(df.protocol == "landmarks") & (df.metric == "nme") & (df.form != NONE)]
    if recognizer is not None:
        lm = lm[lm.recognizer == recognizer]
    if lm.empty:
        raise ValueError("no landmark rows in the results table")
    # landmarks do not depend on the recognizer: one line per completer
    lm = lm.drop_duplicates(["model", "dataset", "form", "position", "size"]).copy()
    lm["line"] = lm.model
    order = _line_order(lm.line)
    palette = _palette(sns, order)
    forms = form_order(set(lm.form))
    positions = position_order(set(lm.position))
    fig, axes = plt.subplots(len(forms), len(positions),
                             figsize=(2.8 * len(positions), 2.6 * len(forms) + 0.5),
                             squeeze=False, sharey=True)
    for i, form in enumerate(forms):
        for j, pos in enumerate(positions):
            ax = axes[i, j]
            _draw(ax, lm[(lm.form == form) & (lm.position == pos)], "size", palette, order)
            ax.set(xlabel="size", title=f"{form}, {pos}",
                   ylabel="NME (outer-eye distance)" if j == 0 else "")
    _legend(fig, axes, order, 1.0 + 0.03)
    fig.suptitle("68-point landmark error against the clean face's landmarks (LFW)", y=1.08)
    fig.tight_layout()
    paths = _save(fig, out, "fig8_landmarks")
    plt.close(fig)
    return paths


def all_figures(df: pd.DataFrame, out: Path) -> list[Path]:
    """Fig. 7 for each base recognizer in the table, Fig. 8 when landmark rows exist, the ROC
    per recognizer with verification curves, and the real-vs-synthetic figure when
    ``identification-real`` rows exist."""
    paths = []
    ident = df[(df.protocol == "identification") & (df.form != NONE)]
    for base in sorted(set(ident.recognizer.map(base_recognizer))):
        paths += fig7(df, base, out)
    if not df[(df.protocol == "landmarks") & (df.metric == "nme")].empty:
        paths += fig8(df, out)
    for base in sorted(set(_tar_rows(df).recognizer.map(base_recognizer))):
        paths += roc(df, base, out)
    if not df[(df.protocol == "identification-real") & (df.form == "real")].empty:
        paths += real_figure(df, out)
    return paths


TAR = "tar@far="


def _tar_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Verification rows of the sampled ROC curve, with their FAR as a number."""
    rows = df[(df.protocol == "verification") & df.metric.str.startswith(TAR)].copy()
    rows["far"] = rows.metric.str[len(TAR):].astype(float)
    return rows


def roc(df: pd.DataFrame, recognizer: str, out: Path) -> list[Path]:
    """ROC curves of ``recognizer`` (and its -occ variant) -> roc_<recognizer>.png/pdf: TAR
    vs FAR (log scale) from the ``tar@far=F`` rows, one panel per verification condition
    (clean first), one line per model."""
    return _save_closed(figure_roc(df, recognizer), out, f"roc_{recognizer}")


def figure_roc(df: pd.DataFrame, recognizer: str):
    """The matplotlib figure of :func:`roc` (not saved)."""
    plt, sns = _plt()
    rows = _lines(_tar_rows(df), recognizer)
    if rows.empty:
        raise ValueError(f"no tar@far rows (ROC) for recognizer {recognizer!r}")
    forms = [NONE] + form_order(set(rows.form))
    positions = position_order(set(rows.position))
    conds = sorted({(f, p, s) for f, p, s in zip(rows.form, rows.position, rows["size"],
                                                    strict=True)},
                   key=lambda c: (forms.index(c[0]), positions.index(c[1]), c[2]))
    order = _line_order(rows.line)
    palette = _palette(sns, order)
    fig, axes = plt.subplots(1, len(conds), figsize=(3.2 * len(conds), 3.2), squeeze=False,
                             sharey=True)
    for ax, (form, pos, size) in zip(axes[0], conds, strict=True):
        sub = rows[(rows.form == form) & (rows.position == pos) & (rows["size"] == size)]
        _draw(ax, sub.assign(ci_low=np.nan, ci_high=np.nan), "far", palette, order, 100.0)
        ax.set_xscale("log")
        title = "clean" if form == NONE else " ".join(x for x in (form, pos, f"{size:g}")
                                                        if x != NONE)
        ax.set(xlabel="FAR", ylabel="TAR %" if ax is axes[0, 0] else "", title=title)
    _legend(fig, axes, order, 1.0 + 0.04)
    dataset = ", ".join(sorted(set(rows.dataset)))
    fig.suptitle(f"Recognizer {recognizer}: verification ROC ({dataset})", y=1.1)
    fig.tight_layout()
    return fig


def real_figure(df: pd.DataFrame, out: Path) -> list[Path]:
    """real_vs_synthetic.png/pdf from the ``identification-real`` rows: one panel per
    (recognizer, real set); per completer, TPIR@1 of its synthetic twins against the size
    (one line per form), its real level as a dashed line of its colour and its clean level
    as a dotted one."""
    return _save_closed(figure_real(df), out, "real_vs_synthetic")


def figure_real(df: pd.DataFrame):
    """The matplotlib figure of :func:`real_figure` (not saved)."""
    from occbench.report_real import PROTOCOL, tpir1_rows
    from occbench.results import REAL, is_neutral_of

    plt, sns = _plt()
    top = tpir1_rows(df[df.protocol == PROTOCOL])
    real = top[top.form == REAL]
    if real.empty:
        raise ValueError("no identification-real rows to plot")
    panels = sorted({(r, d) for r, d in zip(real.recognizer, real.dataset, strict=True)})
    order = sorted(set(top.model), key=lambda m: (model_rank(m), m))
    palette = _palette(sns, order)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False,
                             sharey=True)
    for ax, (rec, real_set) in zip(axes[0], panels, strict=True):
        ours = np.array([d == real_set or is_neutral_of(d, real_set) for d in top.dataset])
        mine = top[(top.recognizer == rec) & ours]
        twins = mine[~mine.form.isin([NONE, REAL])]
        for model in order:
            style = palette[model]
            for form, d in twins[twins.model == model].groupby("form"):
                d = d.sort_values("size")
                ax.plot(d["size"], 100 * d.value, marker=style["marker"], color=style["color"],
                        label=f"{model}: {form}")
            for form, ls in ((REAL, "--"), (NONE, ":")):
                level = mine[(mine.model == model) & (mine.form == form)]
                if not level.empty:
                    ax.axhline(100 * level.value.iloc[0], color=style["color"], ls=ls, lw=1)
        ax.set(xlabel="synthetic size", ylabel="TPIR@1 %" if ax is axes[0, 0] else "",
               title=f"{rec}: {real_set}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle("Synthetic twins (lines), real occlusion (dashed), clean (dotted)")
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", ncol=min(4, max(1, len(labels))),
               bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=8)
    return fig
