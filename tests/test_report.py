"""Table I, Fig. 7/8 and the report CLI on hand-built results tables (figures checked by hand)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from occbench.cli import main
from occbench.protocols.base import Headline
from occbench.report import average, table1, table1_markdown, write_report
from occbench.results import Row, rows_to_frame


@pytest.fixture(autouse=True)
def dlib_occ():
    """An occlusion-trained variant of dlib, compared with dlib's rows (registered as a
    plug-in would register it)."""
    from occbench import registry

    registry.recognizers.register("dlib-occ", "occbench.models.dlib_recognizer:DlibRecognizer",
                                  base="dlib")
    yield
    registry.recognizers.unregister("dlib-occ")


def _tpir(model, rec, form, pos, size, value, half=0.02, D=1000, rank=1, n=100):
    return Row(model, rec, "facescrub", "identification", form, pos, size, "tpir", value, n,
               value - half, value + half, D=D, rank=rank)


def _frame():
    rows = []
    # occluded: clean 0.80; rect eyes 0.40 / 0.60 over two sizes (mean 0.50); text eyes 0.70
    # c2fdan: rect eyes 0.60 / 0.70 (mean 0.65), text eyes 0.75; clean condition 0.80
    for model, clean, rect, text in (("occluded", 0.80, (0.40, 0.60), 0.70),
                                     ("c2fdan", 0.80, (0.60, 0.70), 0.75)):
        for D in (10, 1000):
            rows.append(_tpir(model, "dlib", "none", "none", 0.0, clean, D=D))
            for size, v in zip((0.05, 0.1), rect, strict=True):
                rows.append(_tpir(model, "dlib", "rect", "eyes", size, v, D=D))
            rows.append(_tpir(model, "dlib", "text", "eyes", 0.3, text, D=D))
        for rank in (2, 5):
            rows.append(_tpir(model, "dlib", "rect", "eyes", 0.1, 0.9, rank=rank))
        rows.append(Row(model, "dlib", "lfw", "verification", "rect", "eyes", 0.1, "accuracy",
                        0.95, 6000, 0.94, 0.96))
        rows.append(Row(model, "dlib", "facescrub", "reconstruction", "rect", "eyes", 0.1,
                        "ssim", 0.9 if model == "c2fdan" else 0.8, 50, 0.79, 0.81))
        rows.append(Row(model, "dlib", "lfw", "landmarks", "rect", "eyes", 0.1, "nme",
                        0.05, 100, 0.04, 0.06))
    # the paper's ResNet-50-occ row: the occluded faces with an occlusion-trained recognizer
    rows.append(_tpir("occluded", "dlib-occ", "rect", "eyes", 0.1, 0.62))
    return rows_to_frame(rows, {"test": True})


def test_average_combines_half_widths():
    df = pd.DataFrame({"g": ["a", "a"], "value": [0.4, 0.6], "ci_low": [0.38, 0.57],
                       "ci_high": [0.42, 0.63], "n": [10, 20]})
    out = average(df, ["g"]).iloc[0]
    assert out.value == pytest.approx(0.5)
    assert out.half == pytest.approx(math.sqrt(0.02**2 + 0.03**2) / 2)
    assert out.n == 30 and out.k == 2


def test_table1_hand_computed():
    t = table1(_frame()).set_index(["model", "recognizer", "column"])
    v = t["value"]
    # largest D only (1000): sizes averaged per position
    assert v[("occluded", "dlib", "TPIR@1 rect eyes")] == pytest.approx(50.0)
    assert v[("occluded", "dlib", "TPIR@1 text")] == pytest.approx(70.0)
    # avg over the three occluded conditions (2 rect sizes + 1 text)
    assert v[("occluded", "dlib", "TPIR@1 avg")] == pytest.approx(100 * (0.4 + 0.6 + 0.7) / 3)
    assert v[("c2fdan", "dlib", "TPIR@1 avg")] == pytest.approx(100 * (0.6 + 0.7 + 0.75) / 3)
    assert v[("c2fdan", "dlib", "TPIR@1 clean")] == pytest.approx(80.0)
    low, high = (0.4 + 0.6 + 0.7) / 3, 0.80
    c2 = (0.6 + 0.7 + 0.75) / 3
    assert v[("c2fdan", "dlib", "gap closed %")] == pytest.approx(100 * (c2 - low) / (high - low))
    assert v[("occluded", "dlib", "gap closed %")] == pytest.approx(0.0)
    # the -occ recognizer is measured against its base recognizer's occluded/clean figures,
    # over the conditions it has (rect eyes 0.1 only: occluded 0.60 there)
    assert v[("occluded", "dlib-occ", "gap closed %")] == pytest.approx(
        100 * (0.62 - 0.60) / (high - 0.60))
    assert v[("c2fdan", "dlib", "SSIM")] == pytest.approx(0.9)
    assert v[("c2fdan", "dlib", "LFW rect")] == pytest.approx(95.0)
    assert t.loc[("occluded", "dlib", "TPIR@1 rect eyes"), "k"] == 2
    md = table1_markdown(table1(_frame()))
    assert "### Recognizer `dlib`" in md and "occluded (dlib-occ)" in md
    assert "50.00 ±1.41" in md  # two half-widths of 2 points: sqrt(2^2 + 2^2) / 2


def test_table1_sizes_filter():
    t = table1(_frame(), sizes=(0.1,)).set_index(["model", "recognizer", "column"])
    assert t.loc[("occluded", "dlib", "TPIR@1 rect eyes"), "value"] == pytest.approx(60.0)
    assert t.loc[("occluded", "dlib", "TPIR@1 rect eyes"), "k"] == 1
    assert ("occluded", "dlib", "TPIR@1 text") not in t.index  # text was measured at 0.3 only
    assert t.loc[("c2fdan", "dlib", "gap closed %"), "value"] == pytest.approx(
        100 * (0.70 - 0.60) / (0.80 - 0.60))
    t = table1(_frame(), sizes=("rect:0.05", "text:0.3")).set_index(
        ["model", "recognizer", "column"])
    assert t.loc[("occluded", "dlib", "TPIR@1 rect eyes"), "value"] == pytest.approx(40.0)
    assert t.loc[("occluded", "dlib", "TPIR@1 text"), "value"] == pytest.approx(70.0)


def test_write_report_files(tmp_path):
    md = write_report(_frame(), tmp_path)
    assert (tmp_path / "report.md").read_text() == md
    t1 = pd.read_csv(tmp_path / "table1.csv")
    assert {"model", "recognizer", "column", "value", "half", "n", "k"} <= set(t1.columns)
    flat = pd.read_csv(tmp_path / "results.csv")
    assert len(flat) == len(_frame()) and "config" not in flat
    configs = json.loads((tmp_path / "configs.json").read_text())
    assert list(configs.values()) == [{"test": True}]
    assert set(flat.config_id) == set(configs)


def test_plot_cli_writes_figures(tmp_path, capsys):
    _frame().to_parquet(tmp_path / "results.parquet")
    assert main(["plot", "--results", str(tmp_path), "--out", str(tmp_path / "fig")]) == 0
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == ["fig7_dlib.pdf", "fig7_dlib.png", "fig8_landmarks.pdf",
                     "fig8_landmarks.png"]
    assert all((tmp_path / "fig" / n).stat().st_size > 5000 for n in names)
    # drawn again from the same rows: the same bytes, so no file is rewritten (no churn in git)
    stamps = {n: (tmp_path / "fig" / n).stat().st_mtime_ns for n in names}
    for n in names:
        os.utime(tmp_path / "fig" / n, ns=(1, 1))
    assert main(["plot", "--results", str(tmp_path), "--out", str(tmp_path / "fig")]) == 0
    assert all((tmp_path / "fig" / n).stat().st_mtime_ns == 1 for n in names), stamps


def test_plot_cli_errors(tmp_path, capsys):
    assert main(["plot", "--results", str(tmp_path / "missing")]) == 2
    assert "no results table" in capsys.readouterr().err
    _frame().to_parquet(tmp_path / "results.parquet")
    assert main(["plot", "--results", str(tmp_path), "--recognizer", "nope",
                 "--out", str(tmp_path / "fig")]) == 2
    assert "no identification rows for recognizer 'nope'" in capsys.readouterr().err


def test_rank_panels_compare_the_conditions_every_line_has():
    from occbench.plots import comparable

    def rows(line, conditions):
        return [{"line": line, "position": p, "size": s, "value": 1.0} for p, s in conditions]

    four = [("eyes", 0.05), ("eyes", 0.1), ("nose", 0.05), ("nose", 0.1)]
    df = pd.DataFrame(rows("a", four) + rows("b", four[:3]) + rows("one-size", [four[1]]))
    kept = comparable(df)
    # "one-size" has under half of a's conditions: left out, instead of cutting all to eyes 0.1
    assert set(kept.line) == {"a", "b"}
    assert set(zip(kept.position, kept["size"], strict=True)) == set(four[:3])  # what a and b share
    assert len(kept) == 6
    # a line with half the conditions stays and sets the comparison
    kept = comparable(pd.DataFrame(rows("a", four) + rows("half", four[:2])))
    assert set(zip(kept.position, kept["size"], strict=True)) == set(four[:2])
    # nothing in common: every row is kept
    df = pd.DataFrame(rows("a", four[:2]) + rows("b", four[2:]))
    assert len(comparable(df)) == 4


def test_every_line_gets_its_own_style():
    import seaborn as sns

    from occbench.plots import _palette

    for n in (3, 10, 12, 25):
        styles = list(_palette(sns, [f"line {i}" for i in range(n)]).values())
        looks = {(s["color"], s["marker"], str(s["ls"])) for s in styles}
        assert len(styles) == n and len(looks) == n
        # the first ten: ten different colours, solid; none dashed like the clean lines
        assert len({s["color"] for s in styles[:10]}) == min(n, 10)
        assert all(s["ls"] == "-" for s in styles[:10])
        assert all(s["ls"] != "--" for s in styles)


def test_fig7_legend_names_every_line_and_ssim_comes_from_any_recognizer():
    import matplotlib.pyplot as plt

    from occbench.plots import figure7

    # a completer measured at one condition only (left out of the averaged panels) and a
    # reconstruction row measured in another recognizer's sweep ("onnx")
    rows = [_tpir("bvmr", "dlib", "rect", "eyes", 0.1, 0.55, D=D) for D in (10, 1000)]
    rows += [_tpir("occluded", "dlib", "rect", "nose", size, 0.5, D=D)  # occluded: 4 conditions
             for size in (0.05, 0.1) for D in (10, 1000)]
    rows.append(Row("bvmr", "onnx", "facescrub", "reconstruction", "rect", "eyes", 0.1,
                    "ssim", 0.85, 50, 0.84, 0.86))
    rows.append(Row("c2fdan", "onnx", "facescrub", "reconstruction", "rect", "eyes", 0.1,
                    "ssim", 0.9, 50, 0.79, 0.81))  # c2fdan's figure a second time: drawn once
    df = pd.concat([_frame(), rows_to_frame(rows, {"test": True})], ignore_index=True)
    fig = figure7(df, "dlib")
    try:
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        averaged = {line.get_label() for line in fig.axes[1].get_lines()}
        assert averaged == {"occluded", "c2fdan"}  # the panel the legend used to come from
        assert legend == ["occluded", "occluded (dlib-occ)", "bvmr", "c2fdan"]
        ssim_axes = [ax for ax in fig.axes if ax.get_title().startswith("SSIM")]
        drawn = {line.get_label(): list(line.get_ydata()) for ax in ssim_axes
                 for line in ax.get_lines()}
        assert drawn["bvmr"] == [0.85] and drawn["c2fdan"] == [0.9]
    finally:
        plt.close(fig)


def test_clean_gallery_columns():
    from occbench.report import CLEAN_GALLERY, summary_table

    def cg(model, form, pos, size, value):
        return Row(model, "dlib", "facescrub", CLEAN_GALLERY, form, pos, size, "tpir", value,
                   100, value - 0.01, value + 0.01, D=1000, rank=1)

    extra = [cg("occluded", "none", "none", 0.0, 0.80), cg("occluded", "rect", "eyes", 0.05, 0.3),
             cg("occluded", "rect", "eyes", 0.1, 0.5), cg("occluded", "text", "eyes", 0.3, 0.6)]
    df = pd.concat([_frame(), rows_to_frame(extra, {"test": True})], ignore_index=True)
    t = table1(df).set_index(["model", "recognizer", "column"])
    assert t.loc[("occluded", "dlib", "TPIR@1 cg rect"), "value"] == pytest.approx(40.0)
    assert t.loc[("occluded", "dlib", "TPIR@1 cg avg"), "value"] == pytest.approx(
        100 * (0.3 + 0.5 + 0.6) / 3)
    # the plain identification columns are unchanged by the variant's rows
    assert t.loc[("occluded", "dlib", "TPIR@1 avg"), "value"] == pytest.approx(
        100 * (0.4 + 0.6 + 0.7) / 3)
    assert ("occluded", "dlib", "TPIR@1 cg clean") not in t.index
    header = table1_markdown(table1(df)).splitlines()[2]
    cols = [c.strip() for c in header.split("|")[1:-1]]
    assert cols.index("gap closed %") < cols.index("TPIR@1 cg rect") < cols.index(
        "TPIR@1 cg text") < cols.index("TPIR@1 cg avg") < cols.index("LFW rect")
    wide = summary_table(df)
    assert wide.loc[("occluded", "dlib", "rect", "eyes", 0.1), "TPIR@1 cg %"].startswith("50.00")


class Sharpness:
    """A plug-in protocol as a user would write it in their own module: one headline figure
    (lower is better), declared on the class; no core file knows it."""

    name = "sharpness"
    on_clean = False
    headlines = (Headline("blur", "blur px", digits=1, higher_is_better=False),)

    def __init__(self, config):
        self.config = config

    def prepare(self, ctx):
        pass

    def needs(self, ctx):
        return []

    def evaluate(self, ctx, cond):
        return []


def test_a_plugin_protocol_gets_its_own_report_column(tmp_path):
    from occbench import registry

    rows = [Row("c2fdan", "dlib", "facescrub", "sharpness", "rect", "eyes", 0.1, "blur", 2.345,
                50, 2.0, 2.7),
            Row("c2fdan", "dlib", "facescrub", "sharpness", "rect", "eyes", 0.1, "other", 9.0,
                50)]
    df = pd.concat([_frame(), rows_to_frame(rows, {"test": True})], ignore_index=True)
    before = write_report(df)
    assert "blur px" not in before  # unregistered: its rows are in the table only
    registry.protocols.register("sharpness", f"{__name__}:Sharpness")
    try:
        md = write_report(df, tmp_path)
    finally:
        registry.protocols.unregister("sharpness")
    every = md.split("## Every condition")[1]
    header = next(line for line in every.splitlines() if line.startswith("| model"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    # after the built-in columns, in the order the protocols declare
    assert cols[-3:] == ["SSIM", "landmark NME", "blur px"]
    assert "| 2.3 [2.0, 2.7] |" in every and "9.0" not in every
    assert (tmp_path / "report.md").read_text() == md


def test_roc_figure_draws_the_tar_at_far_rows(tmp_path):
    from occbench.plots import figure_roc, roc

    fars = (0.001, 0.01, 0.1)
    rows = []
    for model, shift in (("occluded", 0.0), ("c2fdan", 0.05)):
        for form, pos, size in (("none", "none", 0.0), ("rect", "eyes", 0.1)):
            for i, far in enumerate(fars):
                rows.append(Row(model, "dlib", "lfw", "verification", form, pos, size,
                                f"tar@far={far:g}", 0.5 + 0.1 * i + shift, 3000))
    df = pd.concat([_frame(), rows_to_frame(rows, {"test": True})], ignore_index=True)
    fig = figure_roc(df, "dlib")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["clean", "rect eyes 0.1"]
    for ax in panels:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"occluded", "c2fdan"} and ax.get_xscale() == "log"
        np.testing.assert_allclose(lines["occluded"].get_xdata(), fars)
        np.testing.assert_allclose(lines["c2fdan"].get_ydata(), [55, 65, 75])
    assert [p.name for p in roc(df, "dlib", tmp_path)] == ["roc_dlib.png", "roc_dlib.pdf"]
    with pytest.raises(ValueError, match="no tar@far rows"):
        figure_roc(_frame(), "dlib")


# ---- real occlusions vs synthetic twins ------------------------------------------------------


NEUTRAL_M = "rof:neutral (rof:masked people)"


def _real_frame():
    """identification-real rows of two real sets. rof:masked: clean 0.90, real 0.50; twins
    mask 0.1 / 0.4 / 0.8 at 0.85 / 0.60 / 0.45 (drops 5, 30, 45 vs the real 40: mask 0.8 is
    closest); a smaller D that must not be read. rof:sunglasses (other people, so another
    baseline): clean 0.80, real 0.70, twin glasses 1.6 at 0.75."""
    def r(form, size, value, dataset=NEUTRAL_M, D=1000, metric="tpir", rank=1, n=200):
        return Row("occluded", "dlib", dataset, "identification-real", form, "none", size,
                   metric, value, n, value - 0.02, value + 0.02, D=D, rank=rank)

    rows = [r("none", 0.0, 0.90), r("none", 0.0, 0.10, D=10),
            r("real", 0.0, 0.50, dataset="rof:masked", n=900),
            r("real", 0.0, 65, dataset="rof:masked", metric="people", rank=0, n=900),
            r("real", 0.0, 494, dataset="rof:masked", metric="probes", rank=0, n=900)]
    rows += [r("mask", s, v) for s, v in ((0.1, 0.85), (0.4, 0.60), (0.8, 0.45))]
    sun = "rof:neutral (rof:sunglasses people)"
    rows += [r("none", 0.0, 0.80, dataset=sun), r("glasses", 1.6, 0.75, dataset=sun),
             r("real", 0.0, 0.70, dataset="rof:sunglasses", n=3000)]
    return rows_to_frame(rows, {"test": True})


def test_real_vs_synthetic_by_hand(tmp_path):
    from occbench.report_real import real_vs_synthetic

    t = real_vs_synthetic(_real_frame()).set_index("real set")
    assert sorted(t.index) == ["rof:masked", "rof:sunglasses"]
    sun = t.loc["rof:sunglasses"]  # its own baseline and twins, not the masked set's
    assert (sun.clean, sun.real, sun["real drop"]) == pytest.approx((80, 70, 10))
    assert sun["closest synthetic"] == "glasses 1.6" and pd.isna(sun["mask 0.4"])
    row = t.loc["rof:masked"]
    assert (row.people, row.probes, row.pairs) == (65, 494, 900)
    assert row.clean == pytest.approx(90) and row.real == pytest.approx(50)
    assert row["real drop"] == pytest.approx(40)
    assert [row[f"mask {s} drop"] for s in ("0.1", "0.4", "0.8")] == pytest.approx([5, 30, 45])
    assert row["closest synthetic"] == "mask 0.8"
    md = write_report(_real_frame(), tmp_path)
    assert "## Real occlusions vs their synthetic twins" in md
    section = md.split("## Real occlusions")[1]
    assert "rof:masked" in section and "90.0" in section and "40.0" in section
    back = pd.read_csv(tmp_path / "real_vs_synthetic.csv")
    assert back["closest synthetic"].tolist() == ["mask 0.8", "glasses 1.6"]
    assert "Real occlusions" not in write_report(_frame())  # no such rows, no section


def test_real_figure_has_a_panel_per_recognizer_and_real_set(tmp_path):
    from occbench.plots import figure_real, real_figure

    fig = figure_real(_real_frame())
    masked, sun = fig.axes
    assert (masked.get_title(), sun.get_title()) == ("dlib: rof:masked", "dlib: rof:sunglasses")
    for ax, want in ((masked, [50.0, 90.0]), (sun, [70.0, 80.0])):  # its real and clean level
        levels = sorted(round(line.get_ydata()[0], 6) for line in ax.lines
                        if line.get_linestyle() in ("--", ":"))
        assert levels == want
    paths = real_figure(_real_frame(), tmp_path)
    assert [p.name for p in paths] == ["real_vs_synthetic.png", "real_vs_synthetic.pdf"]
