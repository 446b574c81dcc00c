"""insightface ``.bin`` verification sets: reading, bad input, both accuracy definitions, and
a ``.bin`` written from the shared LFW pairs scored like LFW itself."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from occbench.data import load_dataset
from occbench.errors import DataError
from occbench.metrics.verification import contiguous_folds, insightface_accuracy
from tests._onnx import MEAN, STD, onnx_path


def _png(face: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="PNG")
    return buf.getvalue()


def _write(path, obj) -> str:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return str(path)


def test_contiguous_folds_are_sklearns_kfold():
    assert list(np.bincount(contiguous_folds(23, 10))) == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert list(contiguous_folds(4, 2)) == [0, 0, 1, 1]


def test_insightface_accuracy_hand_computed():
    # 4 pairs, 2 folds; squared distances 0.5, 1.5 (same) and 1.0, 3.0 (different)
    e = lambda deg: [np.cos(np.radians(deg)), np.sin(np.radians(deg))]  # noqa: E731
    dists = np.array([0.5, 1.5, 1.0, 3.0])
    angles = np.degrees(np.arccos(1 - dists / 2))  # |a-b|^2 = 2 - 2 cos
    f1 = np.array([e(0)] * 4)
    f2 = np.array([e(a) for a in angles])
    same = [True, False, True, False]  # folds: (0.5 same, 1.5 diff), (1.0 same, 3.0 diff)
    mean, std, accs = insightface_accuracy(f1, f2, same, n_folds=2)
    # fold 0 tested with the threshold learnt on fold 1: lowest t with 1.0 < t <= 3.0 is 1.01
    # -> 0.5 same (right), 1.5 different? 1.5 < 1.01 no -> "different" (right): 1.0
    # fold 1 with fold 0's: lowest t in (0.5, 1.5] is 0.51 -> 1.0 "different" (wrong), 3.0 right
    assert list(accs) == [1.0, 0.5] and mean == 0.75 and std == 0.25


def _insightface_calculate_roc(embeddings1, embeddings2, actual_issame, nrof_folds=10):
    """A port of insightface's ``calculate_roc`` (recognition/arcface_torch/eval/
    verification.py, ``pca=0``; ``evaluate`` passes ``np.arange(0, 4, 0.01)``), as its
    ``test`` calls it on L2-normalised embeddings; sklearn's ``KFold(nrof_folds,
    shuffle=False)`` written out. Returns the per-fold accuracies."""
    embeddings1 = embeddings1 / np.linalg.norm(embeddings1, axis=1, keepdims=True)
    embeddings2 = embeddings2 / np.linalg.norm(embeddings2, axis=1, keepdims=True)
    thresholds = np.arange(0, 4, 0.01)
    nrof_pairs = min(len(actual_issame), embeddings1.shape[0])
    indices = np.arange(nrof_pairs)
    # KFold: contiguous test folds, the first n_samples % n_splits one element longer
    fold_sizes = np.full(nrof_folds, nrof_pairs // nrof_folds, dtype=int)
    fold_sizes[:nrof_pairs % nrof_folds] += 1
    splits, current = [], 0
    for size in fold_sizes:
        test_set = indices[current:current + size]
        splits.append((np.setdiff1d(indices, test_set), test_set))
        current += size

    def calculate_accuracy(threshold, dist, actual_issame):
        predict_issame = np.less(dist, threshold)
        tp = np.sum(np.logical_and(predict_issame, actual_issame))
        tn = np.sum(np.logical_and(np.logical_not(predict_issame),
                                   np.logical_not(actual_issame)))
        return float(tp + tn) / dist.size

    dist = np.sum(np.square(np.subtract(embeddings1, embeddings2)), 1)
    accuracy = np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(splits):
        acc_train = np.array([calculate_accuracy(t, dist[train_set], actual_issame[train_set])
                              for t in thresholds])
        best_threshold_index = np.argmax(acc_train)  # the first of equals
        accuracy[fold_idx] = calculate_accuracy(thresholds[best_threshold_index],
                                                dist[test_set], actual_issame[test_set])
    return accuracy


@pytest.mark.parametrize("n_pairs", [23, 57, 101, 333, 599])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_insightface_accuracy_equals_a_port_of_insightface(n_pairs, seed):
    """Random embeddings (same pairs: the first face plus noise of a random scale, so that
    the best threshold moves between seeds), pair counts that do not divide into the folds."""
    rng = np.random.default_rng(seed)
    dim = 16
    same = rng.random(n_pairs) < 0.5
    f1 = rng.normal(size=(n_pairs, dim))
    noise = rng.uniform(0.5, 1.5) * rng.normal(size=(n_pairs, dim))
    f2 = np.where(same[:, None], f1 + noise, rng.normal(size=(n_pairs, dim)))
    for n_folds in (10, 7):
        ref = _insightface_calculate_roc(f1, f2, same, nrof_folds=n_folds)
        mean, std, accs = insightface_accuracy(f1, f2, list(same), n_folds=n_folds)
        np.testing.assert_array_equal(accs, ref)
        assert mean == pytest.approx(np.mean(ref), abs=1e-12)
        assert std == pytest.approx(np.std(ref), abs=1e-12)
        assert 0.5 < mean < 1  # neither trivial nor perfect: the threshold matters


def test_bin_file_reads_faces_pairs_and_folds(tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, (8, 112, 112, 3), dtype=np.uint8)
    path = _write(tmp_path / "mini.bin", ([_png(f) for f in faces], [True, False, True, False]))
    ds = load_dataset(f"bin:{path}", tmp_path)
    assert ds.name == "mini" and len(ds) == 8 and np.array_equal(ds.faces.images, faces)
    assert [(p.same, p.fold) for p in ds.pairs] == [(True, 0), (False, 1), (True, 2),
                                                    (False, 3)]
    first = ds.pairs[0]
    assert np.array_equal(ds.faces.face(first.key1), faces[0])
    assert np.array_equal(ds.faces.face(first.key2), faces[1])


@pytest.mark.parametrize("content,message", [
    (b"not a pickle at all", "not an insightface .bin pickle"),
    (pickle.dumps({"a": 1}), "expected a pickled \\(bins, issame_list\\) pair, got dict"),
    (pickle.dumps(([b"x"] * 3, [True])), "3 images, an odd number"),
    (pickle.dumps(([b"x"] * 4, [True])), "4 images for 1 pairs \\(expected 2\\)"),
    (pickle.dumps(([b"x", b"y"], [True])), "image 0: image too small \\(1x1\\)|image 0: not a readable image"),
    (pickle.dumps((os.system, [True])),
     "not an insightface .bin pickle \\(refusing to load posix.system\\)"),
], ids=["not-pickle", "dict", "odd", "count", "undecodable", "code"])
def test_bad_bin_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}: {message}"):
        load_dataset(f"bin:{path}", tmp_path)


def test_bin_image_of_the_wrong_size_is_named(tmp_path):
    small = np.zeros((96, 112, 3), np.uint8)
    ok = np.zeros((112, 112, 3), np.uint8)
    path = _write(tmp_path / "odd.bin", ([_png(ok), _png(small)], [True]))
    with pytest.raises(DataError, match="image 1 is 112x96, not 112x112"):
        load_dataset(f"bin:{path}", tmp_path)
    with pytest.raises(DataError, match="none.bin: .bin file not found"):
        load_dataset(f"bin:{tmp_path / 'none.bin'}", tmp_path)


def test_bin_from_lfw_pairs_scores_as_lfw(tmp_path, data_root):
    """A .bin written from the shared LFW pairs (occbench's aligned faces, PNG, pairs.txt
    order; the first 10 same and 10 different pairs of each fold) gives the LFW protocol's
    accuracy on the clean faces exactly; occluded, both are occluded faces of the same
    people under other keys (so other occlusion instances) and agree to a few points."""
    from occbench.align import align_dataset
    from occbench.data.pairs import dataset_pairs
    from occbench.runner import RunConfig, run

    lfw = load_dataset("lfw", data_root)
    pairs = dataset_pairs(lfw)
    pairs = [p for f in range(10) for same in (True, False)
             for p in [q for q in pairs if q.fold == f and q.same == same][:10]]
    lfw.samples = [s for s in lfw.samples if s.key in {k for p in pairs for k in (p.key1, p.key2)}]
    faces = align_dataset(lfw, progress=False)
    bins = [_png(faces.face(k)) for p in pairs for k in (p.key1, p.key2)]
    path = _write(tmp_path / "lfw_sub.bin", (bins, [p.same for p in pairs]))
    onnx = {"path": str(onnx_path(data_root)), "mean": MEAN, "std": STD, "flip": True}
    out = {}
    for name in ("lfw", f"bin:{path}"):
        cfg = RunConfig(recognizer="onnx", recognizer_args=onnx, protocols=("verification",),
                        forms=("rect",), positions=("eyes",), sizes=(0.1,), limit=200,
                        pairs_set=name)
        df = run(cfg, data_root, tmp_path / "out", cache=tmp_path / "cache", progress=False)
        out[name] = df.set_index(["form", "metric"]).value
    lfw_rows, bin_rows = out["lfw"], out[f"bin:{path}"]
    for metric in ("accuracy", "accuracy_insightface"):
        assert bin_rows[("none", metric)] == lfw_rows[("none", metric)]
        assert abs(bin_rows[("rect", metric)] - lfw_rows[("rect", metric)]) < 0.05
    # measured (200 pairs, a pair is 0.5 points): clean 100 % (insightface's 99.5 %); rect
    # 99.0 % LFW, 98.5 % .bin (insightface's 97.5 %, 99.0 %)
    assert lfw_rows[("none", "accuracy")] >= 0.99
    assert lfw_rows[("none", "accuracy_insightface")] >= 0.985
    for rows in (lfw_rows, bin_rows):
        assert rows[("rect", "accuracy")] >= 0.97 and rows[("rect", "accuracy_insightface")] >= 0.96
    acc = df[df.metric.str.startswith("accuracy")]
    assert set(df.dataset) == {"lfw_sub"} and set(acc.n) == {200}
    # the ROC rows count the 100 same-person pairs; the impostor row gives the FAR resolution
    assert set(df[df.metric.str.startswith("tar@far=")].n) == {100}
    assert set(df[df.metric == "impostor_pairs"].value) == {100}


class _Evil:
    """Unpickles into a call of ``target(*args)`` (how a hostile .bin would run code)."""

    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
# protocols 0-2 name the builtins module as Python 2 did (__builtin__)
@pytest.mark.parametrize("payload,name", [
    (_Evil(eval, "1 + 1"), "(builtins|__builtin__).eval"),
    (_Evil(getattr, "text", "upper"), "(builtins|__builtin__).getattr"),
    (_Evil(np.load, "x.npy"), "numpy.load"),
    (_Evil(__import__, "subprocess"), "(builtins|__builtin__).__import__"),
    (_Evil(os.system, "true"), "posix.system"),
], ids=["eval", "getattr", "numpy-load", "import", "system"])
def test_every_unpickler_path_refuses_other_globals(tmp_path, protocol, payload, name):
    """Any global outside the few a .bin needs is refused, whatever the pickle protocol and
    wherever it sits (inside the image list here), before it is called."""
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([payload, b"x"], [True]), protocol=protocol))
    with pytest.raises(DataError, match=f"refusing to load {name}"):
        load_dataset(f"bin:{path}", tmp_path)


@pytest.mark.parametrize("protocol", [2, 4])
def test_ndarray_payloads_load(tmp_path, protocol):
    """The globals a .bin legitimately holds (numpy arrays of the images' bytes, numpy bools
    as the labels) pass the same unpickler."""
    faces = np.random.default_rng(1).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    bins = [np.frombuffer(_png(f), dtype=np.uint8) for f in faces]
    path = tmp_path / "arrays.bin"
    path.write_bytes(pickle.dumps((bins, np.array([True])), protocol=protocol))
    ds = load_dataset(f"bin:{path}", tmp_path)
    assert np.array_equal(ds.faces.images, faces) and ds.pairs[0].same
