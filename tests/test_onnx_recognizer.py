"""The ``onnx`` recognizer on a real ONNX face-recognition model.

The model is ``../shared/models/mobilefacenet-foamliu.onnx`` beside the data root (RGB,
ImageNet mean/std in pixel units, batch fixed at 1, 128-d output; see its README there); it is
never copied into the repository. Embeddings are checked against onnxruntime run by hand on
hand-built inputs, quality on real LFW pairs through occbench's own alignment and protocol.

The bad-graph cases use tiny graphs (one Identity or Flatten node) written here as raw ONNX
protobuf, so that no ``onnx`` package is needed.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from occbench.cli import main
from occbench.errors import ConfigError, DataError
from occbench.models import create_recognizer, list_models
from occbench.results import part_files, read_results
from tests._onnx import ARGS, MEAN, ONNX_FILE, STD, onnx_path


@pytest.fixture(scope="module")
def model_path(data_root) -> Path:
    return onnx_path(data_root)


@pytest.fixture(scope="module")
def session(model_path):
    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


def _hand_raw(session, face: np.ndarray, mean, std) -> np.ndarray:
    """The network's raw output for one (112, 112, 3) face: (x - mean) / std, HWC -> 1CHW."""
    x = (face.astype(np.float64) - np.asarray(mean)) / np.asarray(std)
    x = x.transpose(2, 0, 1)[None].astype(np.float32)
    return session.run(None, {session.get_inputs()[0].name: x})[0][0].astype(np.float64)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------ embeddings


def test_embeddings_shape_unit_norm_deterministic(model_path, lfw_faces):
    assert "onnx" in list_models()["recognizers"]
    rec = create_recognizer("onnx", path=model_path, mean=MEAN, std=STD)
    assert rec.name == "onnx" and rec.dim == 128
    faces = lfw_faces[:10]
    emb = rec.embed(faces)
    assert emb.shape == (10, 128) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(rec.embed(faces), emb)  # deterministic
    assert np.array_equal(np.concatenate([rec.embed(faces[:3]), rec.embed(faces[3:])]), emb)
    assert rec.embed(faces[:0]).shape == (0, 128)
    # different people, different embeddings: |cosine| at most 0.243 over these 10 people
    # (0.393 over all 60; measured)
    assert np.abs(emb @ emb.T - np.eye(10)).max() < 0.3


def test_per_channel_normalisation_matches_a_hand_computation(model_path, session, lfw_faces):
    rec = create_recognizer("onnx", path=model_path, mean=MEAN, std=STD)
    face = lfw_faces[0]
    x = rec.preprocess(face[None])
    assert x.shape == (1, 3, 112, 112) and x.dtype == np.float32
    for c in range(3):  # pixel (row 50, col 60) of each channel
        assert x[0, c, 50, 60] == pytest.approx((float(face[50, 60, c]) - MEAN[c]) / STD[c], abs=1e-5)
    ref = _unit(_hand_raw(session, face, MEAN, STD))
    np.testing.assert_allclose(rec.embed(face[None])[0], ref, atol=1e-5)


def test_flip_sum_matches_a_hand_computation(model_path, session, lfw_faces):
    rec = create_recognizer("onnx", path=model_path, mean=MEAN, std=STD, flip=True)
    faces = lfw_faces[:4]
    emb = rec.embed(faces)
    for face, got in zip(faces, emb, strict=True):
        mirror = face[:, ::-1]
        ref = _unit(_hand_raw(session, face, MEAN, STD) + _hand_raw(session, mirror, MEAN, STD))
        np.testing.assert_allclose(got, ref, atol=1e-5)
    plain = create_recognizer("onnx", path=model_path, mean=MEAN, std=STD).embed(faces)
    assert not np.allclose(plain, emb, atol=1e-3)  # the mirror image does count


def test_bgr_swaps_the_channels(model_path, session, lfw_faces):
    bgr_mean, bgr_std = MEAN[::-1], STD[::-1]  # mean/std are in the network's channel order
    rec = create_recognizer("onnx", path=model_path, channels="BGR", mean=bgr_mean, std=bgr_std)
    face = lfw_faces[1]
    ref = _unit(_hand_raw(session, face[..., ::-1], bgr_mean, bgr_std))
    np.testing.assert_allclose(rec.embed(face[None])[0], ref, atol=1e-5)
    x = rec.preprocess(face[None])
    assert x[0, 0, 50, 60] == pytest.approx((float(face[50, 60, 2]) - bgr_mean[0]) / bgr_std[0],
                                            abs=1e-5)  # input channel 0 = blue
    rgb = create_recognizer("onnx", path=model_path, mean=MEAN, std=STD).embed(face[None])[0]
    assert float(rgb @ rec.embed(face[None])[0]) < 0.9999


# ------------------------------------------------------------------------------ quality


@pytest.mark.slow
def test_lfw_verification_600_pairs_through_the_cli(model_path, data_root, tmp_path,
                                                     monkeypatch, capsys):
    """600 pairs (the first 30 same and 30 different of each fold), occbench's alignment and
    protocol, flip-sum: the clean accuracy of a 99 % model (99.07 % on all 6,000 pairs)."""
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    code = main(["run", "--data", str(data_root), "--recognizer", "onnx",
                 "--recognizer-args", f"path={model_path},{ARGS},flip=1",
                 "--protocol", "verification", "--form", "rect", "--position", "eyes",
                 "--size", "0.1", "--limit", "600", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    df = read_results(out)
    acc = df[(df.metric == "accuracy")].set_index("form")
    assert set(acc.recognizer) == {"onnx"} and set(acc.n) == {600}
    # measured: 99.83 % clean, 98.33 % with the 0.1 rectangle over the eyes (600 pairs: a
    # pair is 0.17 points)
    assert acc.loc["none", "value"] >= 0.99
    assert 0.97 <= acc.loc["rect", "value"] <= acc.loc["none", "value"] + 0.01
    assert '"flip": 1' in df.config.iloc[0]  # the options are in the table's configuration
    rec = create_recognizer("onnx", path=model_path, mean=MEAN, std=STD, flip=True)
    assert (tmp_path / "cache" / "features" / f"onnx@{rec.version}").is_dir()


# ------------------------------------------------------------------------------ bad input


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _msg(*fields) -> bytes:
    """Protobuf wire format: (field number, int | str | bytes) pairs."""
    out = b""
    for num, value in fields:
        if isinstance(value, int):
            out += _varint(num << 3) + _varint(value)
        else:
            value = value.encode() if isinstance(value, str) else value
            out += _varint(num << 3 | 2) + _varint(len(value)) + value
    return out


def _value_info(name: str, shape) -> bytes:  # ValueInfoProto of a float tensor
    dims = [(1, _msg((1, d) if isinstance(d, int) else (2, d))) for d in shape]
    return _msg((1, name), (2, _msg((1, _msg((1, 1), (2, _msg(*dims)))))))


def tiny_graph(path: Path, op: str, in_shape, out_shape) -> Path:
    """An ONNX model of one ``op`` node (Identity, Flatten) from x (in_shape) to y (out_shape);
    a str in a shape is a dynamic dimension."""
    node = _msg((1, "x"), (2, "y"), (4, op))
    graph = _msg((1, node), (2, "tiny"), (11, _value_info("x", in_shape)),
                 (12, _value_info("y", out_shape)))
    path.write_bytes(_msg((1, 8), (7, graph), (8, _msg((2, 13)))))  # IR 8, opset 13
    return path


def test_missing_and_non_onnx_files_are_named(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(DataError, match=re.escape(f"{missing}: no such ONNX model file")):
        create_recognizer("onnx", path=missing)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(DataError) as err:
        create_recognizer("onnx", path=text)
    msg = str(err.value)
    assert msg.startswith(f"{text}: not an ONNX model onnxruntime can load") and "\n" not in msg


@pytest.mark.parametrize("in_shape, out_shape, says", [
    ([1, 112, 112, 3], [1, 112, 112, 3], "needs N x 3 x H x W (channels last?"),
    ([1, 3, 128, 128], [1, 3, 128, 128], "wants 128x128 faces; occbench gives 112x112"),
    ([1, 3, 112, 112], [1, 3, 112, 112], "needs a 2-D N x dim embedding"),
])
def test_graphs_of_the_wrong_shape_are_named(tmp_path, in_shape, out_shape, says):
    path = tiny_graph(tmp_path / "bad.onnx", "Identity", in_shape, out_shape)
    with pytest.raises(DataError) as err:
        create_recognizer("onnx", path=path)
    assert str(err.value).startswith(f"{path}: input 'x'" if "2-D" not in says
                                     else f"{path}: output 'y'")
    assert says in str(err.value)


def test_dynamic_and_fixed_batch_graphs_give_the_same_rows(tmp_path, lfw_faces):
    """Flatten graphs (embedding = the normalised input itself): a dynamic batch run in
    batches of 4, a fixed batch of 4 padded at the end, a dynamic output size found by a call."""
    faces = lfw_faces[:10]
    x = ((faces.astype(np.float64) - 127.5) / 127.5).transpose(0, 3, 1, 2).reshape(10, -1)
    ref = x / np.linalg.norm(x, axis=1, keepdims=True)
    for name, shape, out in (("dynamic", ["N", 3, 112, 112], ["N", 37632]),
                             ("fixed4", [4, 3, 112, 112], [4, 37632]),
                             ("dyndim", ["N", 3, 112, 112], ["N", "D"])):
        path = tiny_graph(tmp_path / f"{name}.onnx", "Flatten", shape, out)
        rec = create_recognizer("onnx", path=path, batch_size=4)
        assert rec.dim == 37632
        np.testing.assert_allclose(rec.embed(faces), ref, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("options, says", [
    ({"channels": "XYZ"}, "channels must be RGB or BGR, got 'XYZ'"),
    ({"mean": (1.0, 2.0)}, "mean must be one number or 3 per-channel values"),
    ({"std": (1.0, 0.0, 1.0)}, "std must be positive numbers"),
    ({"flip": "maybe"}, "flip must be true/false or 1/0"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ({"colour": "RGB"}, "recognizer 'onnx' has no option 'colour'"),
])
def test_bad_options_are_one_clear_error(model_path, options, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        create_recognizer("onnx", path=model_path, **options)


def test_path_is_required():
    with pytest.raises(ConfigError, match="recognizer 'onnx' needs the option 'path'"):
        create_recognizer("onnx")


def test_cli_unknown_or_malformed_recognizer_args(model_path, data_root, tmp_path, monkeypatch,
                                                   capsys):
    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    base = ["run", "--data", str(data_root), "--recognizer", "onnx", "--protocol",
            "verification", "--form", "rect", "--position", "eyes", "--size", "0.1",
            "--limit", "20", "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*base, "--recognizer-args", f"path={model_path},colour=BGR"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("occbench: error: ") and err.count("\n") == 1
    assert "recognizer 'onnx' has no option 'colour'" in err
    assert main([*base, "--recognizer-args", f"path={model_path},channels=XYZ"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("occbench: error: ") and err.count("\n") == 1 and "XYZ" in err
    with pytest.raises(SystemExit) as exc:  # not KEY=VALUE: an argparse usage error
        main([*base, "--recognizer-args", "flip"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("occbench run: error: argument --recognizer-args: expected KEY=VALUE")
    assert err.count("\n") == 1
    assert part_files(tmp_path / "out") == []


def test_recognizer_args_values_are_parsed():
    from occbench.options import key_values as _option_args

    assert _option_args(f"path=/a/b/{ONNX_FILE},{ARGS},flip=1,channels=BGR,batch_size=8") == {
        "path": f"/a/b/{ONNX_FILE}", "mean": MEAN, "std": STD, "flip": 1,
        "channels": "BGR", "batch_size": 8}
    assert _option_args("flip=true,mean=127.5,std=128") == {"flip": True, "mean": 127.5, "std": 128}


# ------------------------------------------------------------------------------ cache key


def test_version_keys_the_file_and_the_options(model_path):
    def version(**options):
        return create_recognizer("onnx", path=model_path, **options).version

    v = version(mean=MEAN, std=STD, flip=True)
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]{8}", v)  # one safe path component
    assert v.startswith(hashlib.sha256(model_path.read_bytes()).hexdigest()[:12])
    assert version(mean=MEAN, std=STD, flip=True) == v
    assert version(mean=list(MEAN), std=STD, flip=1, batch_size=7) == v  # same preprocessing
    others = {version(mean=MEAN, std=STD), version(mean=MEAN, std=STD, flip=True, channels="BGR"),
              version(mean=127.5, std=STD, flip=True), version(), version(flip=True)}
    assert v not in others and len(others) == 5
    assert version(mean=127.5, std=127.5) == version(mean=(127.5,) * 3, std="127.5/127.5/127.5")
    assert version() == version(mean=127.5, std=127.5, channels="rgb", flip=False)


def test_another_file_gets_another_version(tmp_path):
    a = tiny_graph(tmp_path / "a.onnx", "Flatten", ["N", 3, 112, 112], ["N", 37632])
    b = tiny_graph(tmp_path / "b.onnx", "Flatten", [2, 3, 112, 112], [2, 37632])
    va, vb = (create_recognizer("onnx", path=p).version for p in (a, b))
    assert va.split("-")[0] != vb.split("-")[0] and va.split("-")[1] == vb.split("-")[1]


def test_sweep_key_unchanged_without_recognizer_args():
    from occbench.runner import RunConfig
    from occbench.sweep import _settings_key

    assert _settings_key(RunConfig()) == "bc33be976f12cf77"  # the key of earlier sweep states
    assert _settings_key(RunConfig(recognizer_args={"flip": 1})) != _settings_key(RunConfig())
