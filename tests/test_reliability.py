"""Reliability: no stale or damaged cache changes a number, every bad flag or file gets one
clear line (exit 2, no traceback) before any work, and Ctrl-C stops quietly (exit 130).

Damaged caches are made by the tests themselves in temporary folders; the content swap uses
two real FaceScrub photos copied into a temporary data root."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from occbench.cli import build_parser, main
from occbench.errors import ConfigError, DataError, OccbenchError
from occbench.results import ID_COLUMNS, Row, read_results, rows_to_frame
from tests._cli import SMALL_RUN, occbench_subprocess

RUN = SMALL_RUN  # the small real run of tests/_cli.py


def _cli(*args, env: dict | None = None, prefix: tuple = (), timeout: float = 600):
    """``occbench ARGS`` in a subprocess: (returncode, stdout, stderr)."""
    done = occbench_subprocess(*args, env=env, prefix=prefix, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def _one_error_line(err: str) -> str:
    """The single line a user error prints; fails on tracebacks or more lines."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1, err[-2000:]
    assert "error: " in lines[0]
    return lines[0]


def _values(df: pd.DataFrame) -> pd.Series:
    return df.set_index(ID_COLUMNS).value.sort_index()


# ----------------------------------------------------------------------------- content keys


@pytest.fixture
def swap_root(data_root, tmp_path) -> Path:
    """A data root with 12 real photos each of two FaceScrub people (Bill_Hader_6329 among
    them) and the real LFW as distractors."""
    root = tmp_path / "data"
    for person, first in (("Alec_Baldwin", None), ("Bill_Hader", "Bill_Hader_6329.jpg")):
        files = sorted((data_root / "facescrub" / person).glob("*.jpg"))
        if first:
            files = [data_root / "facescrub" / person / first] + \
                [f for f in files if f.name != first]
        (root / "facescrub" / person).mkdir(parents=True)
        for f in files[:12]:
            shutil.copy(f, root / "facescrub" / person / f.name)
    (root / "lfw").symlink_to(data_root / "lfw")
    return root


@pytest.mark.slow
def test_a_photo_replaced_under_its_name_is_recomputed(swap_root, tmp_path):
    """Swap two real FaceScrub photos of different people under their names and rerun with
    the same cache: the rows equal those of a fresh cache, not the old figures."""
    args = [*RUN, "--protocol", "identification,reconstruction", "--data", str(swap_root)]
    cache = {"OCCBENCH_CACHE": str(tmp_path / "cache")}
    assert _cli("run", "--out", str(tmp_path / "before"), *args, env=cache)[0] == 0
    hader = swap_root / "facescrub" / "Bill_Hader" / "Bill_Hader_6329.jpg"
    baldwin = sorted((swap_root / "facescrub" / "Alec_Baldwin").glob("*.jpg"))[0]
    a, b = hader.read_bytes(), baldwin.read_bytes()
    hader.write_bytes(b)
    baldwin.write_bytes(a)
    rc, _, err = _cli("run", "--out", str(tmp_path / "warm"), *args, env=cache)
    assert rc == 0, err[-2000:]
    rc, _, err = _cli("run", "--out", str(tmp_path / "fresh"), *args,
                      env={"OCCBENCH_CACHE": str(tmp_path / "fresh-cache")})
    assert rc == 0, err[-2000:]
    before = _values(read_results(tmp_path / "before"))
    warm, fresh = _values(read_results(tmp_path / "warm")), _values(read_results(tmp_path / "fresh"))
    pd.testing.assert_series_equal(warm, fresh)
    assert not np.allclose(before.to_numpy(), fresh.to_numpy())  # the swap changed figures


# ----------------------------------------------------------------------------- non-finite completers


def test_nan_weights_file_is_refused_naming_file_and_tensor(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from occbench.models import create_completer

    source = Path(__file__).resolve().parents[1] / "baselines" / "bvmr" / "weights"
    tensors = load_file(str(next(source.glob("bvmr-small.safetensors"))))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    bad = tmp_path / "bvmr-nan.safetensors"
    save_file(tensors, str(bad))
    with pytest.raises(OccbenchError, match=f"bvmr-nan.safetensors: tensor '{name}' holds NaN"):
        create_completer("bvmr", weights=bad)


def test_completer_returning_nan_is_refused_naming_model_and_image(lfw_faces):
    import torch

    from occbench.completions import run_completer
    from occbench.models import create_completer

    comp = create_completer("bvmr")
    keys = [f"lfw/P/P_{i:04d}.jpg" for i in range(3)]
    ok_images, ok_masks = run_completer(comp, keys, lfw_faces[:3])
    assert np.isfinite(ok_masks).all() and ok_images.dtype == np.uint8
    with torch.no_grad():
        next(comp.net.parameters()).fill_(float("nan"))  # weights gone bad after loading
    with pytest.raises(OccbenchError, match=r"completer 'bvmr' returned NaN/inf for lfw/P/P_0000"):
        run_completer(comp, keys, lfw_faces[:3])


def test_third_party_completer_nan_mask_is_refused(lfw_faces):
    from occbench.completions import run_completer
    from occbench.models.base import Completer

    class Broken(Completer):
        name = "broken"

        def complete(self, occluded, clean=None):
            masks = np.zeros(occluded.shape[:3], np.float32)
            masks[1] = np.nan
            return occluded.copy(), masks

    with pytest.raises(OccbenchError, match=r"'broken' returned a NaN/inf mask for b \(1 of 2"):
        run_completer(Broken(), ["a", "b"], lfw_faces[:2])


# ----------------------------------------------------------------------------- damaged caches


@pytest.fixture(scope="module")
def warm_run(data_root, tmp_path_factory):
    """A small real run (occluded, dlib, rect eyes 0.1, all three default protocols) whose
    cache the tests below damage, copy by copy."""
    base = tmp_path_factory.mktemp("warm")
    rc, _, err = _cli("run", "--data", str(data_root), "--out", str(base / "out"), *RUN,
                      env={"OCCBENCH_CACHE": str(base / "cache")})
    assert rc == 0, err[-2000:]
    return base, _values(read_results(base / "out"))


def _damaged_copy(warm_run, tmp_path, damage) -> tuple[Path, pd.Series]:
    base, values = warm_run
    cache = tmp_path / "cache"
    shutil.copytree(base / "cache", cache)
    damage(cache)
    return cache, values


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())


def _torn(path: Path) -> None:
    """Keep the SQLite header, scribble over every later page (a torn write)."""
    data = bytearray(path.read_bytes())
    assert len(data) > 8192
    data[4096:] = np.random.default_rng(1).integers(0, 256, len(data) - 4096, np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _rerun(data_root, cache, out):
    return _cli("run", "--data", str(data_root), "--out", str(out), *RUN,
                env={"OCCBENCH_CACHE": str(cache)})


@pytest.mark.slow
@pytest.mark.parametrize("what,damage", [
    ("aligned", lambda c: [_garbage(p) for p in c.glob("aligned/*.sqlite")]),
    ("aligned", lambda c: [_torn(p) for p in c.glob("aligned/*.sqlite")]),
    ("features", lambda c: [_garbage(p) for p in c.glob("features/**/shard-*.sqlite")]),
    ("features", lambda c: [_torn(p) for p in c.glob("features/**/shard-*.sqlite")
                            if p.stat().st_size > 8192]),
], ids=["aligned-garbage", "aligned-torn", "features-garbage", "features-torn"])
def test_corrupt_cache_file_is_moved_aside_and_recomputed(warm_run, data_root, tmp_path, what,
                                                          damage):
    cache, values = _damaged_copy(warm_run, tmp_path, damage)
    rc, _, err = _rerun(data_root, cache, tmp_path / "out")
    assert rc == 0, err[-2000:]
    assert "Traceback" not in err and "is corrupt" in err and "recomputing its rows" in err
    assert list(cache.glob(f"{what}/**/*.corrupt*"))  # the bad file kept aside, not deleted
    pd.testing.assert_series_equal(_values(read_results(tmp_path / "out")), values)


@pytest.mark.slow
def test_feature_row_of_wrong_length_is_recomputed(warm_run, data_root, tmp_path):
    def cut_rows(cache):
        for shard in cache.glob("features/**/shard-*.sqlite"):
            con = sqlite3.connect(shard)
            with con:
                con.execute("UPDATE rows SET feature = substr(feature, 1, 12) "
                            "WHERE rowid IN (SELECT rowid FROM rows LIMIT 2)")
            con.close()

    cache, values = _damaged_copy(warm_run, tmp_path, cut_rows)
    rc, _, err = _rerun(data_root, cache, tmp_path / "out")
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    pd.testing.assert_series_equal(_values(read_results(tmp_path / "out")), values)


def test_corrupt_completion_shard_is_recomputed(tmp_path, lfw_faces, capsys):
    from occbench.completions import CompletionStore, complete_cached
    from occbench.condition import Condition
    from occbench.faces import face_digests
    from occbench.models import create_completer

    comp = create_completer("bvmr")
    faces, keys = lfw_faces[:4], [f"k/{i}" for i in range(4)]
    store = CompletionStore(tmp_path, "bvmr@t", Condition("rect", "eyes", 0.1), "1")
    first = complete_cached(comp, store, keys, face_digests(faces), faces, faces)
    (shard,) = store.dir.glob("shard-*.sqlite")
    _garbage(shard)
    again = complete_cached(comp, store, keys, face_digests(faces), faces, faces)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert "is corrupt" in capsys.readouterr().err
    assert (shard.parent / (shard.name + ".corrupt")).exists()
    assert set(store.get(keys, face_digests(faces))) == set(keys)  # stored again


def test_corrupt_meta_json_is_named_and_recomputed(tmp_path, capsys):
    from occbench.condition import Condition
    from occbench.features import FeatureStore

    store = FeatureStore(tmp_path, "r@1", "c@1", Condition(), "1", dim=2)
    store.put(["a"], ["d"], np.ones((1, 2), np.float32))
    (store.dir / "meta.json").write_bytes(b"\x00garbage")
    fresh = FeatureStore(tmp_path, "r@1", "c@1", Condition(), "1", dim=2)
    assert fresh.done_keys(["a"], ["d"]) == set()
    assert "unreadable meta.json; recomputing" in capsys.readouterr().err


# ----------------------------------------------------------------------------- unwritable folders


def test_unwritable_out_or_cache_fails_before_any_work(data_root, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cache = tmp_path / "cache"
    cases = [
        (["--out", str(a_file)], {"OCCBENCH_CACHE": str(cache)}, "is a file, not a folder"),
        (["--out", str(a_file / "sub")], {"OCCBENCH_CACHE": str(cache)}, "cannot be created"),
        (["--out", str(tmp_path / "out")], {"OCCBENCH_CACHE": str(a_file)}, "is a file"),
        (["--out", str(tmp_path / "out")], {"OCCBENCH_CACHE": str(a_file / "c")},
         "cannot be created"),
    ]
    for args, env, words in cases:
        rc, _, err = _cli("run", "--data", str(data_root), *args, *RUN, env=env)
        line = _one_error_line(err)
        assert rc == 2 and words in line, line
        # "before any work": nothing aligned or embedded, no progress bar started
        assert not list(cache.rglob("*.sqlite")) and "img/s" not in err


def _without_root_powers() -> tuple[tuple[str, ...], bool]:
    """A command prefix under which file modes bind this process (root ignores them), and
    whether chmod is what makes a folder read-only."""
    if os.geteuid() != 0:
        return (), True
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root without util-linux's setpriv: cannot drop root's "
                    "override of file modes to test a read-only cache", pytrace=False)
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"), True


def _chmod_tree(root: Path, mode_dir: int, mode_file: int) -> None:
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(Path(folder) / d, mode_dir)
        for f in files:
            os.chmod(Path(folder) / f, mode_file)
    os.chmod(root, mode_dir)


@pytest.mark.slow
def test_read_only_cache_is_named_read_only_before_work(warm_run, data_root, tmp_path):
    base, _ = warm_run
    cache = tmp_path / "cache"
    shutil.copytree(base / "cache", cache)
    prefix, _ = _without_root_powers()
    _chmod_tree(cache, 0o555, 0o444)
    try:
        rc, _, err = _cli("run", "--data", str(data_root), "--out", str(tmp_path / "out"), *RUN,
                          env={"OCCBENCH_CACHE": str(cache)}, prefix=prefix)
        line = _one_error_line(err)
        assert rc == 2 and "read-only" in line and str(cache) in line, line
        assert "delete it" not in line
        # an unwritable --out folder: the same, before any work
        (tmp_path / "ro-out").mkdir()
        os.chmod(tmp_path / "ro-out", 0o555)
        rc, _, err = _cli("run", "--data", str(data_root), "--out", str(tmp_path / "ro-out"),
                          *RUN, env={"OCCBENCH_CACHE": str(tmp_path / "rw")}, prefix=prefix)
        line = _one_error_line(err)
        assert rc == 2 and "is not writable" in line and "ro-out" in line, line
    finally:
        _chmod_tree(cache, 0o755, 0o644)


# ----------------------------------------------------------------------------- flags


@pytest.mark.parametrize("argv,flag", [
    (["run", "--limit", "0"], "--limit"),
    (["run", "--limit", "-5"], "--limit"),
    (["run", "--distractors", "-1"], "--distractors"),
    (["run", "--batch-size", "-3"], "--batch-size"),
    (["run", "--seed", "-1"], "--seed"),
    (["sweep", "--limit", "0"], "--limit"),
    (["align", "--set", "lfw", "--limit", "0"], "--limit"),
    (["align", "--set", "lfw", "--workers", "0"], "--workers"),
    (["occlude", "--set", "lfw", "--form", "rect", "--position", "eyes", "--size", "0.1",
      "--out", "x", "--limit", "0"], "--limit"),
    (["grid", "--n", "0"], "--n"),
    (["train", "bvmr", "--steps", "0"], "--steps"),
])
def test_bad_counts_and_seeds_get_one_line(argv, flag, capsys, tmp_path, monkeypatch):
    # no data and an empty cache: a flag that slipped through fails fast instead of running
    monkeypatch.setenv("OCCBENCH_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"argument {flag}: must be a whole number >= " in line


def test_every_numeric_flag_is_checked():
    """No command takes a bare int: every count and seed goes through occbench.options."""
    from occbench import options

    def walk(parser):
        for action in parser._actions:
            if action.type is int:
                yield parser.prog, action.option_strings
            for sub in getattr(action, "choices", None) or {}:
                if isinstance(action.choices, dict):
                    yield from walk(action.choices[sub])

    assert list(walk(build_parser())) == []
    assert options.count("3") == 3 and options.seed("0") == 0


def test_run_config_rejects_bad_counts():
    from occbench.runner import RunConfig

    for field, value in (("limit", 0), ("distractors", -1), ("batch_size", -3), ("seed", -1),
                         ("landmark_images", 0), ("limit", 2.5)):
        with pytest.raises(ConfigError, match=f"{field} must be a whole number"):
            RunConfig(**{field: value})
    assert RunConfig(limit=1, seed=0).limit == 1


# ----------------------------------------------------------------------------- results tables


def _table(value=0.9, size=0.1):
    return rows_to_frame([Row("m", "r", "lfw", "verification", "rect", "eyes", size, "accuracy",
                              value, 6000)], {})


def test_results_table_with_text_values_is_refused(tmp_path):
    df = _table()
    df["value"] = df["value"].astype(str)
    df.to_parquet(tmp_path / "results.parquet")
    with pytest.raises(DataError, match="column 'value' holds .* values, not numbers"):
        read_results(tmp_path)


def test_results_table_with_conflicting_duplicates_is_refused(tmp_path):
    pd.concat([_table(0.9), _table(0.8)]).to_parquet(tmp_path / "results.parquet")
    with pytest.raises(DataError, match="1 row identities occur more than once with different"):
        read_results(tmp_path)
    pd.concat([_table(0.9), _table(0.9), _table(0.7, 0.2)]).to_parquet(tmp_path / "results.parquet")
    assert len(read_results(tmp_path)) == 2  # identical repeats: kept once, silently


# ----------------------------------------------------------------------------- files and Ctrl-C


def test_non_image_file_is_named_without_python_internals(tmp_path):
    from occbench.imageio import read_rgb

    path = tmp_path / "notes.jpg"
    path.write_text("these are notes, not a photo")
    with pytest.raises(DataError) as info:
        read_rgb(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable image") and "BytesIO" not in message


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 1.5, 2.5])
def test_ctrl_c_stops_quietly_with_130(data_root, tmp_path, delay):
    """SIGINT to the whole process group (what Ctrl-C in a terminal does) while the alignment
    pool works: one line, exit 130, no worker tracebacks. Whether a worker is inside Python
    when the signal lands depends on timing, hence several delays."""
    env = dict(os.environ, OCCBENCH_CACHE=str(tmp_path / "cache"), OCCBENCH_DATA=str(data_root))
    proc = subprocess.Popen([sys.executable, "-m", "occbench", "align", "--set", "lfw",
                             "--workers", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "cache").glob("aligned/*.sqlite")):
        time.sleep(0.1)
    time.sleep(delay)  # the pool is busy aligning
    assert proc.poll() is None, "alignment finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert err.rstrip().endswith("occbench: interrupted")
