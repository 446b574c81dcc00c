"""The real ONNX recognizer of the tests: ``../shared/models/mobilefacenet-foamliu.onnx``
beside the data root (RGB input, ImageNet mean / std; see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

ONNX_FILE = "mobilefacenet-foamliu.onnx"
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
#: the same preprocessing as ``--recognizer-args``
ARGS = "mean=" + "/".join(f"{v:g}" for v in MEAN) + ",std=" + "/".join(f"{v:g}" for v in STD)


def onnx_path(data_root) -> Path:
    """The model file; the test fails (not skips) with where it was looked for."""
    path = Path(data_root).parent / "models" / ONNX_FILE
    if not path.is_file():
        pytest.fail(f"real ONNX model not found at {path} (expected beside the data root)",
                    pytrace=False)
    return path


def export_graph(module, path, inputs, *, input_names=("faces",), output_names=("image",),
                 dynamic: bool = True) -> Path:
    """``module`` (a torch module) exported to the ONNX file ``path`` with the example
    ``inputs``; a dynamic batch dimension unless ``dynamic`` is False (the graph then takes
    exactly ``len(inputs[0])`` faces a call)."""
    import warnings

    import torch

    axes = {n: {0: "n"} for n in (*input_names, *output_names)} if dynamic else None
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), tuple(torch.as_tensor(i) for i in inputs), str(path),
                          dynamo=False, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=axes)
    return Path(path)
