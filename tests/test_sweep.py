"""`occbench sweep` on a small slice of the real data: every part lands in one table, a
second sweep skips the finished parts, unknown names fail before any work."""

from __future__ import annotations

import json

from occbench.cli import main
from occbench.results import part_files, read_results


def _sweep(data_root, out, *extra):
    return main(["sweep", "--data", str(data_root), "--out", str(out), "--limit", "20",
                 "--quiet", "--form", "rect", "--position", "eyes", "--size", "0.1",
                 "--protocol", "identification,reconstruction", *extra])


def test_sweep_runs_every_part_once(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    assert _sweep(data_root, out, "--models", "occluded,clean", "--recognizers", "dlib") == 0
    df = read_results(out)
    assert set(df.model) == {"occluded", "clean"}
    state = json.loads((out / "sweep.json").read_text())
    assert sorted(v["model"] for v in state["done"].values()) == ["clean", "occluded"]
    assert "Table I" in capsys.readouterr().out
    created = df.created.copy()
    assert _sweep(data_root, out, "--models", "occluded,clean", "--recognizers", "dlib") == 0
    assert "occluded x dlib: skipped, clean x dlib: skipped" in capsys.readouterr().out
    assert (read_results(out).created == created).all()  # nothing recomputed or rewritten


def test_sweep_unknown_name_fails_first(data_root, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert _sweep(data_root, out, "--models", "occluded,nope") == 2
    assert "unknown completer 'nope'; known completers:" in capsys.readouterr().err
    assert not out.exists() or part_files(out) == []


def test_no_clean_leaves_out_the_clean_condition(data_root, tmp_path, monkeypatch, capsys):
    from occbench.runner import RunConfig
    from occbench.sweep import _settings_key

    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    assert _sweep(data_root, out, "--models", "occluded", "--no-clean") == 0
    df = read_results(out)
    assert set(df.form) == {"rect"} and len(df) > 0
    # a part of its own: the full run afterwards is not skipped, and adds the clean rows
    assert _sweep(data_root, out, "--models", "occluded") == 0
    assert "occluded x dlib: skipped" not in capsys.readouterr().out
    assert set(read_results(out).form) == {"none", "rect"}
    # the default leaves sweep keys as they were before the option existed (a pinned value)
    assert _settings_key(RunConfig()) == "bc33be976f12cf77"
    assert _settings_key(RunConfig(include_clean=False)) != _settings_key(RunConfig())


def test_a_part_runs_again_when_its_weights_change(data_root, tmp_path, monkeypatch, capsys):
    """sweep.json keeps each part's model tags; other weights under the same name (a retrained
    model) make the part run again and replace its rows, the same weights skip it."""
    import shutil

    from baselines.bvmr.adapter import WEIGHTS

    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    mine = tmp_path / "bvmr.safetensors"
    shutil.copy(WEIGHTS / "bvmr-small.safetensors", mine)
    args = ("--models", "bvmr", "--recognizers", "resnet50", "--model-args", f"weights={mine}")
    assert _sweep(data_root, out, *args) == 0
    (done,) = json.loads((out / "sweep.json").read_text())["done"].values()
    assert done["tags"]["completer"].startswith("bvmr@small-")
    assert done["tags"]["recognizer"].startswith("resnet50@")
    first = read_results(out)
    capsys.readouterr()
    assert _sweep(data_root, out, *args) == 0
    assert "bvmr x resnet50: skipped" in capsys.readouterr().out
    shutil.copy(WEIGHTS / "bvmr-small-faces51k.safetensors", mine)  # retrained in place
    assert _sweep(data_root, out, *args) == 0
    assert "done before with other weights: completer bvmr@small-" in capsys.readouterr().err
    again = read_results(out)
    (now,) = json.loads((out / "sweep.json").read_text())["done"].values()
    assert now["tags"]["completer"] != done["tags"]["completer"]
    assert len(again) == len(first) and (again.created > first.created.max()).all()
    def psnr(df):
        return float(df[df.metric == "psnr"].value.mean())

    assert psnr(first) > 0 and psnr(again) > 0 and psnr(again) != psnr(first)  # new figures
