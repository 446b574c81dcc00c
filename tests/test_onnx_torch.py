"""The ONNX recognizer run by torch (occbench/models/onnx_torch.py): the same embeddings as
onnxruntime on real LFW faces, gradients to the input, the ResNet-v2 feature interface, and
one-line errors for files it cannot run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from occbench.errors import DataError
from occbench.models.onnx_torch import OnnxExtractor, OnnxGraph
from tests._onnx import MEAN, STD, onnx_path


@pytest.fixture(scope="module")
def extractor(data_root):
    return OnnxExtractor(onnx_path(data_root), mean=MEAN, std=STD)


def test_embeddings_equal_onnxruntime_on_real_faces(extractor, data_root, lfw_faces):
    import onnxruntime as ort

    faces = lfw_faces[:6]
    session = ort.InferenceSession(str(onnx_path(data_root)), providers=["CPUExecutionProvider"])
    x = (faces.transpose(0, 3, 1, 2).astype(np.float32) - np.array(MEAN, np.float32)[:, None, None]) \
        / np.array(STD, np.float32)[:, None, None]
    want = np.concatenate([session.run(None, {"input0": x[i:i + 1]})[0] for i in range(len(x))])
    with torch.no_grad():  # a batch of 6 through a graph exported for batch 1
        got = extractor.embed(extractor.preprocess(torch.as_tensor(faces))).numpy()
    assert got.shape == want.shape == (6, 128)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_feature_maps_and_gradient_to_the_input(extractor, lfw_faces):
    x = extractor.preprocess(torch.as_tensor(lfw_faces[:2])).requires_grad_(True)
    maps = extractor.features(x)
    assert {k: tuple(v.shape[-2:]) for k, v in maps.items() if k != "embedding"} == {
        "block1": (56, 56), "block2": (28, 28), "block3": (14, 14), "block4": (7, 7)}
    assert maps["embedding"].shape == (2, 128)
    first = extractor.features(x, ("block1",))  # stops early, same map
    assert torch.equal(first["block1"], maps["block1"]) and list(first) == ["block1"]
    (maps["block3"].square().mean() + maps["embedding"].sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()  # frozen: stays in inference mode
    assert not extractor.training
    with pytest.raises(KeyError, match="block9"):
        extractor.features(x, ("block9",))


def _graph_file(tmp_path, op: str, **attrs):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 4, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)])
    path = tmp_path / f"{op}.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_small_graphs_by_hand(tmp_path):
    x = torch.arange(-24, 24, dtype=torch.float32).reshape(1, 3, 4, 4)
    assert torch.equal(OnnxGraph(_graph_file(tmp_path, "Relu"))(x), x.clamp_min(0))
    pooled = OnnxGraph(_graph_file(tmp_path, "GlobalAveragePool"))(x)
    assert pooled.flatten().tolist() == [-16.5, -0.5, 15.5]
    flat = OnnxGraph(_graph_file(tmp_path, "Flatten", axis=1))(x)
    assert flat.shape == (1, 48)


def _weights(rng, **arrays):
    from onnx import numpy_helper

    return [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
            for name, shape in arrays.items()]


def test_every_operator_against_onnxruntime(tmp_path):
    """One graph through every operator of OPS (asymmetric Conv pads, BatchNormalization,
    PRelu, Sub, Mul, Identity, Relu, Clip with its bounds as inputs, GlobalAveragePool, Flatten,
    Gemm with transB, MatMul, Sigmoid, Reshape with 0 = copy): torch equals onnxruntime."""
    import onnxruntime as ort
    from onnx import numpy_helper

    from occbench.models.onnx_torch import OPS

    rng = np.random.default_rng(0)
    init = _weights(rng, w=(4, 3, 3, 3), b=(4,), scale=(4,), bias=(4,), mean=(4,),
                    slope=(4, 1, 1), k=(4, 1, 1), gw=(6, 4), gb=(6,), m=(6, 5))
    init.append(numpy_helper.from_array(np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5,
                                        "var"))
    init.append(numpy_helper.from_array(np.array([0, -1], np.int64), "shape"))
    lo = helper.make_node("Constant", [], ["lo"], value=helper.make_tensor("v", 1, [], [-0.5]))
    hi = helper.make_node("Constant", [], ["hi"], value=helper.make_tensor("v", 1, [], [0.8]))
    nodes = [lo, hi,
             helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[0, 1, 2, 1], strides=[2, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"],
                              epsilon=1e-3),
             helper.make_node("PRelu", ["n", "slope"], ["p"]),
             helper.make_node("Sub", ["p", "k"], ["s"]),
             helper.make_node("Mul", ["s", "k"], ["q"]),
             helper.make_node("Identity", ["q"], ["i"]),
             helper.make_node("Clip", ["i", "lo", "hi"], ["cl"]),
             helper.make_node("Relu", ["i"], ["r"]),
             helper.make_node("Add", ["cl", "r"], ["a"]),
             helper.make_node("GlobalAveragePool", ["a"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["gm"], transB=1, alpha=0.5, beta=2.0),
             helper.make_node("MatMul", ["gm", "m"], ["mm"]),
             helper.make_node("Sigmoid", ["mm"], ["sg"]),
             helper.make_node("Reshape", ["sg", "shape"], ["y"])]
    assert {n.op_type for n in nodes} == set(OPS)
    graph = helper.make_graph(nodes, "all", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 3, 9, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], initializer=init)
    path = tmp_path / "all.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    got = OnnxGraph(path)(torch.as_tensor(x)).numpy()
    assert got.shape == want.shape == (2, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_unsupported_operator_and_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"LRN\.onnx: operators LRN are not supported"):
        OnnxGraph(_graph_file(tmp_path, "LRN", size=3))
    with pytest.raises(DataError, match="no such ONNX model file"):
        OnnxGraph(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(DataError, match="bad.onnx: not a readable ONNX model"):
        OnnxGraph(bad)
