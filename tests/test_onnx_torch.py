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


def test_unsupported_operator_and_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"LRN\.onnx: operators LRN are not supported"):
        OnnxGraph(_graph_file(tmp_path, "LRN", size=3))
    with pytest.raises(DataError, match="no such ONNX model file"):
        OnnxGraph(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(DataError, match="bad.onnx: not a readable ONNX model"):
        OnnxGraph(bad)
