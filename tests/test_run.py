"""`occbench run` end to end on a small slice of the real data with the real dlib recognizer,
plus the registry, the results table and the feature cache it relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from occbench.cli import main
from occbench.condition import Condition
from occbench.errors import ConfigError, OccbenchError
from occbench.extract import check_embeddings
from occbench.features import FeatureStore, QualityStore
from occbench.metrics.iou import mask_iou
from occbench.models import create_completer, create_recognizer, list_models
from occbench.results import (
    ID_COLUMNS,
    Row,
    append_results,
    part_files,
    read_results,
    rows_to_frame,
)
from tests._cli import SMALL_LIMIT, SMALL_RUN
from tests._counting import count_calls

LIMIT = SMALL_LIMIT


def _run_cli(data_root, out, *extra):
    return main(["run", "--data", str(data_root), "--out", str(out), "--limit", str(LIMIT),
                 "--quiet", *extra])


@pytest.fixture(scope="module")
def small_run(data_root, tmp_path_factory):
    """One real run: occluded completer, dlib, rect at the eyes, a = 0.1."""
    base = tmp_path_factory.mktemp("run")
    os.environ["OCCBENCH_CACHE"] = str(base / "cache")
    try:
        rc = main(["run", "--data", str(data_root), "--out", str(base / "out"), *SMALL_RUN])
    finally:
        os.environ.pop("OCCBENCH_CACHE")
    assert rc == 0
    return base, read_results(base / "out")


def test_results_table_is_tidy_and_complete(small_run):
    _, df = small_run
    assert not df.duplicated(subset=ID_COLUMNS).any()
    assert set(df.protocol) == {"identification", "verification", "reconstruction"}
    assert set(df.form) == {"none", "rect"} and set(df.position) == {"none", "eyes"}
    ident = df[(df.protocol == "identification") & (df.metric == "tpir")]
    tpir1 = ident[ident["rank"] == 1]
    assert set(tpir1.D) == {10, LIMIT}  # D capped by what the data has
    assert ((tpir1.value >= 0) & (tpir1.value <= 1)).all()
    cmc = ident[(ident.D == LIMIT) & (ident.form == "rect")]
    assert np.all(np.diff(cmc.sort_values("rank").value.to_numpy()) >= 0)  # CMC never drops
    acc = df[(df.metric == "accuracy")]
    assert len(acc) == 2 and (acc.n == 20).all()  # 1 same + 1 different pair in each fold
    assert ((acc.ci_low >= 0) & (acc.ci_high <= 1)).all()
    config = json.loads(df.config.iloc[0])
    assert config["model"] == "occluded" and config["limit"] == LIMIT
    assert df.git_commit.iloc[0] != ""


def test_occluded_reconstruction_matches_direct_metrics(small_run, data_root):
    """PSNR of the no-op completer = PSNR of the occluded face, recomputed independently."""
    from skimage.metrics import peak_signal_noise_ratio

    from occbench.align import align_dataset
    from occbench.data import load_dataset
    from occbench.occlusion import occlude

    _, df = small_run
    row = df[(df.metric == "psnr") & (df.dataset == "facescrub")].iloc[0]
    ds = load_dataset("facescrub", data_root)
    ds.samples = ds.samples[:LIMIT]
    faces = align_dataset(ds, progress=False)
    values = [peak_signal_noise_ratio(f, occlude(f, k, "rect", 0.1, "eyes").image, data_range=255)
              for f, k in zip(faces.images, faces.keys, strict=True)]
    assert row.value == pytest.approx(np.mean(values), abs=1e-9)
    assert row.n == LIMIT and row.ci_low <= row.value <= row.ci_high
    iou = df[(df.metric == "mask_iou")]
    assert (iou.value == 0).all()  # the no-op completer predicts no mask


def _feature_rows(cache) -> int:
    """Rows stored in every feature shard under ``cache``."""
    import sqlite3

    total = 0
    for shard in (cache / "features").glob("**/shard-*.sqlite"):
        with sqlite3.connect(shard) as db:
            total += db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
    return total


@pytest.fixture
def count_embedded(monkeypatch) -> list[int]:
    """The batch sizes the dlib recognizer embeds in this process (sum: the faces)."""
    from occbench.models.dlib_recognizer import DlibRecognizer

    return count_calls(monkeypatch, DlibRecognizer, "embed")


def test_warm_rerun_uses_the_cache_and_gives_identical_rows(small_run, data_root,
                                                            count_embedded, monkeypatch):
    base, df = small_run
    monkeypatch.setenv("OCCBENCH_CACHE", str(base / "cache"))
    assert _run_cli(data_root, base / "out2", "--model", "occluded", "--position", "eyes",
                    "--form", "rect", "--size", "0.1") == 0
    assert sum(count_embedded) == 0  # every feature came from the cache
    again = read_results(base / "out2")
    pd.testing.assert_series_equal(again.value, df.value)


def test_killed_run_resumes_to_identical_results(small_run, data_root, tmp_path,
                                                 count_embedded, monkeypatch):
    """Kill a real run once it has stored some features; the resumed run embeds only what
    was not stored (the remainder) and its results equal the first run's."""
    base, df = small_run
    cache = tmp_path / "cache"
    env = dict(os.environ, OCCBENCH_CACHE=str(cache), OCCBENCH_DATA=str(data_root))
    args = ["run", "--out", str(tmp_path / "out"), "--limit", str(LIMIT), "--quiet", "--model",
            "occluded", "--position", "eyes", "--form", "rect", "--size", "0.1",
            "--batch-size", "8"]
    proc = subprocess.Popen([sys.executable, "-m", "occbench", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        shards = list((cache / "features").glob("**/rect-eyes-*/shard-0.sqlite"))
        if shards:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert part_files(tmp_path / "out") == []  # rows are stored only at the end
    stored = _feature_rows(cache)
    assert stored > 0  # the kill came after some features were written
    monkeypatch.setenv("OCCBENCH_CACHE", str(cache))
    assert main([*args, "--data", str(data_root)]) == 0  # resumed in this process
    assert sum(count_embedded) == _feature_rows(cache) - stored > 0  # only the remainder
    resumed = read_results(tmp_path / "out")
    pd.testing.assert_series_equal(resumed.value, df.value)


def test_torchrun_two_gloo_ranks_give_the_same_results(small_run, data_root, tmp_path):
    """Feature extraction sharded over 2 CPU processes (torchrun, gloo): each rank writes its
    own cache shard; rank 0 scores; the numbers equal the single-process run."""
    _, df = small_run
    env = dict(os.environ, OCCBENCH_CACHE=str(tmp_path / "cache"), OCCBENCH_DATA=str(data_root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "-m", "occbench", "run", "--out", str(tmp_path / "out"), "--limit", str(LIMIT),
           "--quiet", "--model", "occluded", "--position", "eyes", "--form", "rect",
           "--size", "0.1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    shards = sorted(p.name for p in (tmp_path / "cache").glob("features/**/rect-eyes-*/shard-*"))
    assert shards == ["shard-0.sqlite", "shard-1.sqlite"]
    pd.testing.assert_series_equal(read_results(tmp_path / "out").value, df.value)


def test_registry_names_and_errors():
    names = list_models()
    assert {"occluded", "clean"} <= set(names["completers"])
    assert "dlib" in names["recognizers"]
    with pytest.raises(ConfigError, match="known completers: .*occluded"):
        create_completer("nope")
    with pytest.raises(ConfigError, match="known recognizers: .*dlib"):
        create_recognizer("nope")


def test_clean_oracle_returns_clean_and_true_mask(lfw_faces):
    clean = lfw_faces[:4]
    occ = clean.copy()
    occ[:, 10:20, 10:30] = 7
    out, mask = create_completer("clean").complete(occ, clean)
    assert np.array_equal(out, clean)
    assert mask[:, 10:20, 10:30].all() and mask.sum() <= 4 * 200
    with pytest.raises(ConfigError):
        create_completer("clean").complete(occ)


def test_bad_embeddings_are_refused():
    good = np.eye(3, dtype=np.float32)
    check_embeddings(good, "x", ["a", "b", "c"])
    with pytest.raises(OccbenchError, match="NaN/inf for b"):
        check_embeddings(np.array([[1, 0], [np.nan, 0]], np.float32), "x", ["a", "b"])
    with pytest.raises(OccbenchError, match="zero for a"):
        check_embeddings(np.zeros((1, 2), np.float32), "x", ["a"])


def test_mask_iou_hand_case():
    pred = np.zeros((2, 4, 4))
    true = np.zeros((2, 4, 4), np.uint8)
    pred[0, :2, :2] = 0.9  # 4 predicted pixels, all inside the 8 true ones
    true[0, :2, :] = 1
    assert np.allclose(mask_iou(pred, true), [0.5, 1.0])  # both empty -> 1


def test_feature_cache_resume_and_old_version(tmp_path, capsys):
    cond = Condition("rect", "eyes", 0.1, 0)
    store = FeatureStore(tmp_path, "r@1", "c@1", cond, "1", dim=2)
    store.put(["a", "b"], ["da", "db"], np.array([[1, 0], [0, 1]], np.float32))
    store.put(["c"], ["dc"], np.array([[1, 1]], np.float32), rank=1)  # another rank's shard
    assert store.done_keys(["a", "b", "c"], ["da", "db", "dc"]) == {"a", "b", "c"}
    assert np.array_equal(store.get(["c", "a"], ["dc", "da"]), [[1, 1], [1, 0]])
    # reconstruction figures: their own store, per completer, NaN where not given
    quality = QualityStore(tmp_path, "c@1", cond, "1")
    quality.put(["a", "b"], ["da", "db"], [20.0, 21.0], [0.5, 0.6])
    q = quality.get(["b", "a"], ["db", "da"])
    assert list(q.psnr) == [21.0, 20.0] and list(q.ssim) == [0.6, 0.5] and np.isnan(q.iou).all()
    # a row stored for other content (a file replaced under the same name) is not found
    assert store.done_keys(["a", "b"], ["da", "changed"]) == {"a"}
    with pytest.raises(OccbenchError, match="lacks 1 images"):
        store.get(["b"], ["changed"])
    # a cache written by an older format is dropped and recomputed, with a message
    meta = store.dir / "meta.json"
    meta.write_text(meta.read_text().replace('"format": 3', '"format": 0'))
    fresh = FeatureStore(tmp_path, "r@1", "c@1", cond, "1", dim=2)
    assert fresh.done_keys(["a"], ["da"]) == set()
    assert "another version" in capsys.readouterr().err
    with pytest.raises(OccbenchError, match="lacks 1 images"):
        fresh.get(["a"], ["da"])


def _frame(value, size=0.1, model="m"):
    return rows_to_frame([Row(model, "r", "lfw", "verification", "rect", "eyes", size,
                              "accuracy", value, 6000)], {"x": 1})


def test_results_parts_later_wins_and_replaced_parts_go(tmp_path):
    first = append_results(tmp_path, pd.concat([_frame(0.9), _frame(0.7, size=0.2)]))
    second = append_results(tmp_path, _frame(0.8))  # replaces one of first's two rows
    assert part_files(tmp_path) == [first, second] and first.parent.name == "parts"
    df = read_results(tmp_path)
    assert sorted(zip(df["size"], df.value, strict=True)) == [(0.1, 0.8), (0.2, 0.7)]
    third = append_results(tmp_path, pd.concat([_frame(0.6), _frame(0.5, size=0.2)]))
    assert part_files(tmp_path) == [third]  # every row of the older parts replaced: deleted
    assert sorted(read_results(tmp_path).value) == [0.5, 0.6]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(OccbenchError, match="bad.parquet"):
        read_results(tmp_path / "bad.parquet")


def test_results_folder_reads_an_older_single_table_first(tmp_path):
    """A folder written before the parts existed keeps its ``results.parquet``: read first,
    never rewritten; a new part's rows win over it."""
    _frame(0.9).to_parquet(tmp_path / "results.parquet")
    before = (tmp_path / "results.parquet").read_bytes()
    append_results(tmp_path, pd.concat([_frame(0.8), _frame(0.7, size=0.2)]))
    assert (tmp_path / "results.parquet").read_bytes() == before
    df = read_results(tmp_path)
    assert sorted(zip(df["size"], df.value, strict=True)) == [(0.1, 0.8), (0.2, 0.7)]
    assert read_results(tmp_path / "results.parquet").value.tolist() == [0.9]
    (tmp_path / "parts" / "zz-bad.parquet").write_bytes(b"junk")
    with pytest.raises(OccbenchError, match="zz-bad.parquet"):
        read_results(tmp_path)


def test_cli_errors_are_one_line(data_root, tmp_path, capsys):
    assert main(["run", "--data", str(data_root), "--model", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("occbench: error: unknown completer 'nope'") and "\n" not in err
    assert main(["run", "--data", str(data_root), "--position", "forehead",
                 "--out", str(tmp_path)]) == 2
    assert "forehead" in capsys.readouterr().err
    assert main(["run", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path / "none")]) == 2
    assert "no results table" in capsys.readouterr().err


def test_landmark_protocol_zero_for_the_oracle(data_root, tmp_path, monkeypatch):
    """Fig. 8 rows: the clean oracle reproduces the reference landmarks exactly (error 0);
    the occluded face does not."""
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    for model in ("clean", "occluded"):
        assert _run_cli(data_root, tmp_path / "out", "--model", model, "--protocol", "landmarks",
                        "--position", "eyes", "--form", "rect", "--size", "0.15") == 0
    df = read_results(tmp_path / "out")
    nme = df[df.metric == "nme"].set_index("model").value
    assert nme["clean"] == 0.0 and nme["occluded"] > 0.01
    assert set(df.protocol) == {"landmarks"} and (df.n == 40).all()  # the 20 pairs' faces


def test_report_writes_markdown_and_csv(small_run, tmp_path, capsys):
    base, df = small_run
    assert main(["report", "--results", str(base / "out"), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert md == capsys.readouterr().out.rstrip("\n") + "\n"
    assert "TPIR@1 %" in md and "LFW acc %" in md and "SSIM" in md
    tpir = df[(df.protocol == "identification") & (df["rank"] == 1) & (df.D == df.D.max())
              & (df.form == "rect")].value.iloc[0]
    assert f"{100 * tpir:.2f}" in md  # the table shows the stored figure
    assert len(pd.read_csv(tmp_path / "results.csv")) == len(df)


def test_clean_oracle_reuses_the_clean_features(small_run, data_root, monkeypatch):
    """The oracle's every condition is the clean faces: its TPIR/accuracy under an occlusion
    equal the clean condition's, from one set of clean features (no per-condition store)."""
    base, occluded = small_run
    monkeypatch.setenv("OCCBENCH_CACHE", str(base / "cache"))
    assert _run_cli(data_root, base / "oracle", "--model", "clean", "--position", "eyes",
                    "--form", "rect", "--size", "0.1") == 0
    df = read_results(base / "oracle")
    head = df[df.metric.isin(["tpir", "accuracy"]) & (df["rank"] <= 1)]
    by_form = head.set_index(["protocol", "D", "form"]).value
    for protocol, D in {(p, d) for p, d, _ in by_form.index}:
        assert by_form[(protocol, D, "rect")] == by_form[(protocol, D, "none")]
    clean_rows = occluded[(occluded.form == "none") & occluded.metric.isin(["tpir", "accuracy"])
                          & (occluded["rank"] <= 1)]
    assert np.allclose(sorted(clean_rows.value), sorted(head[head.form == "none"].value))
    assert not list((base / "cache").rglob("*clean@*"))  # no store keyed by the oracle
    assert "reconstruction" not in set(df.protocol)


def _append_many(path, model, count):
    for i in range(count):
        row = Row(model, "dlib", "lfw", "verification", "rect", "eyes", 0.1 + i / 1000,
                  "accuracy", 0.9, 10)
        append_results(path, rows_to_frame([row], {}))


def test_parallel_appends_lose_no_rows(tmp_path):
    """Two processes storing into one results folder (parallel sweeps) keep every row."""
    import multiprocessing as mp

    path = tmp_path / "out"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, m, 15)) for m in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    df = read_results(path)
    assert sorted(df.groupby("model").size().items()) == [("a", 15), ("b", 15)]


def test_train_help_names_every_trainable_model():
    from occbench import registry
    from occbench.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    text = "".join(train.format_help().split())  # argparse wraps lines at hyphens too
    for name in registry.trainable.names():
        assert name in text, name


def test_distractors_and_exclude_end_to_end(tmp_path, monkeypatch):
    """``--distractors N`` ranks among the first N of the seeded permutation, ``--exclude``
    removes the listed people (by name) and images (by key) before it; the rows' largest D
    says how many distractors were used."""
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    base = ["run", "--data", str(tmp_path), "--model", "occluded", "--recognizer", "fake",
            "--probes", "toy", "--distractor-set", "toy-distractors", "--pairs-set", "toy",
            "--protocol", "identification", "--form", "rect", "--position", "eyes",
            "--size", "0.1", "--quiet"]

    def sizes(name, *extra):
        assert main([*base, *extra, "--out", str(tmp_path / name)]) == 0
        df = read_results(tmp_path / name)
        return sorted(set(df[df.metric == "tpir"].D))

    assert sizes("all") == [10, 60]  # the 60 toy distractors (no probe person among them)
    assert sizes("first25", "--distractors", "25") == [10, 25]
    listing = tmp_path / "exclude.txt"
    listing.write_text("# two people by name, one image by key\nother_000\nother_001\n"
                       "toy-distractors/other_002/00002.png\n")
    assert sizes("excluded", "--exclude", str(listing)) == [10, 57]
    assert sizes("both", "--exclude", str(listing), "--distractors", "50") == [10, 50]
    assert main([*base, "--exclude", str(tmp_path / "missing.txt"),
                 "--out", str(tmp_path / "bad")]) == 2
