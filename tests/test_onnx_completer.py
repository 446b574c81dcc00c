"""The ``onnx`` completer: small graphs exported here from torch modules whose output is known
by hand (identity, negation, a white fill of the mask), every option that changes the
arithmetic, the blind / non-blind split, and one error line per bad graph or option; then
(slow) the trained C2FDAN exported to ONNX and run by this adapter gives the native
completer's output on real occluded LFW faces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from occbench.completions import run_completer
from occbench.errors import ConfigError, DataError, OccbenchError
from occbench.models import create_completer
from tests._onnx import export_graph

pytest.importorskip("onnx", reason="exporting test graphs needs the onnx package (dev extra)")

N = 5


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Random uint8 faces: the graphs here are pixel arithmetic, no face is needed."""
    return np.random.default_rng(0).integers(0, 256, (N, 112, 112, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def masks() -> np.ndarray:
    m = np.zeros((N, 112, 112), np.uint8)
    m[:, 30:50, 20:90] = 1
    m[2] = 0  # one face with nothing occluded
    return m


class Negate(nn.Module):
    def forward(self, x):
        return -x


class Identity(nn.Module):
    def forward(self, x):
        return x + 0.0


class NegateFirstChannelNHWC(nn.Module):
    def forward(self, x):  # N x H x W x C
        return torch.cat([-x[..., :1], x[..., 1:]], dim=-1)


class FillWhite(nn.Module):
    """Non-blind: the mask's pixels (1 = hole) white (1.0 in [-1, 1]), everything else 0."""

    def forward(self, x, m):
        return torch.ones_like(x) * m


class FillWhiteKnownIsOne(nn.Module):
    def forward(self, x, m):  # m: 1 = known pixel
        return x * m + (1 - m)


class WithMask(nn.Module):
    """Blind, two outputs: the input, and 'occluded' where the red channel is above 0.5."""

    def forward(self, x):
        return x + 0.0, (x[:, :1] > 0.5).float()


class WithMask3(nn.Module):
    """As WithMask, the mask N x H x W (no channel axis)."""

    def forward(self, x):
        return x + 0.0, (x[:, 0] > 0.5).float()


class Reshape2(nn.Module):
    def forward(self, x):
        return x.reshape(11, -1).reshape(x.shape) + 0.0  # 11 rows: never for 5 faces


class NaNs(nn.Module):
    def forward(self, x):
        return torch.log(x - 2.0)  # x in [-1, 1]: NaN everywhere


class Three(nn.Module):
    def forward(self, a, b, c):  # every input used: the exporter drops unused ones
        return a * b + c


def _nchw(n=2):
    return [torch.zeros(n, 3, 112, 112)]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("graphs")
    z, m = torch.zeros(2, 3, 112, 112), torch.zeros(2, 1, 112, 112)
    return {
        "identity": export_graph(Identity(), d / "identity.onnx", _nchw()),
        "negate": export_graph(Negate(), d / "negate.onnx", _nchw()),
        "negate4": export_graph(Negate(), d / "negate4.onnx", _nchw(4), dynamic=False),
        "nhwc": export_graph(NegateFirstChannelNHWC(), d / "nhwc.onnx",
                             [torch.zeros(2, 112, 112, 3)]),
        "white": export_graph(FillWhite(), d / "white.onnx", [z, m],
                              input_names=("faces", "mask")),
        "known": export_graph(FillWhiteKnownIsOne(), d / "known.onnx", [z, m],
                              input_names=("faces", "mask")),
        "mask": export_graph(WithMask(), d / "mask.onnx", _nchw(),
                             output_names=("image", "occluded")),
        "nan": export_graph(NaNs(), d / "nan.onnx", _nchw()),
        "mask3": export_graph(WithMask3(), d / "mask3.onnx", _nchw(),
                              output_names=("image", "occluded")),
        "reshape2": export_graph(Reshape2(), d / "reshape2.onnx", _nchw(11)),
        "three": export_graph(Three(), d / "three.onnx", [z, m, m], input_names=("a", "b", "c")),
        "big": export_graph(Identity(), d / "big.onnx", [torch.zeros(2, 3, 128, 128)]),
        "gray": export_graph(Identity(), d / "gray.onnx", [torch.zeros(2, 1, 112, 112)]),
    }


def test_identity_graph_gives_the_faces_back_blind_and_without_a_mask(graphs, faces):
    for mean, std in ((127.5, 127.5), (0, 255), ((120, 110, 100), (60, 50, 40))):
        comp = create_completer("onnx", path=graphs["identity"], mean=mean, std=std)
        out, mask = comp.complete(faces)
        np.testing.assert_array_equal(out, faces)
        assert mask.shape == (N, 112, 112) and not mask.any()
    assert comp.blind and not comp.predicts_mask


def test_negation_is_mapped_back_through_mean_and_std(graphs, faces):
    # (p - 127.5) / 127.5 negated and mapped back: 255 - p, exactly
    out, _ = create_completer("onnx", path=graphs["negate"]).complete(faces)
    np.testing.assert_array_equal(out, 255 - faces)
    # mean 100, std 50: y = -(p - 100) / 50 -> y * 50 + 100 = 200 - p, clipped to 0..255
    out, _ = create_completer("onnx", path=graphs["negate"], mean=100, std=50).complete(faces)
    np.testing.assert_array_equal(out, np.clip(200 - faces.astype(int), 0, 255))


def test_fixed_batch_graph_runs_in_chunks_of_its_batch(graphs, faces):
    fixed = create_completer("onnx", path=graphs["negate4"])  # 5 faces: 4 + 1 padded
    out, _ = fixed.complete(faces)
    np.testing.assert_array_equal(out, 255 - faces)
    dynamic = create_completer("onnx", path=graphs["negate"], batch_size=2)
    np.testing.assert_array_equal(dynamic.complete(faces)[0], out)


def test_bgr_channels_and_nhwc_layout(graphs, faces):
    # the graph negates ITS channel 0: blue when it takes BGR
    out, _ = create_completer("onnx", path=graphs["nhwc"], layout="NHWC",
                              channels="BGR").complete(faces)
    np.testing.assert_array_equal(out[..., 2], 255 - faces[..., 2])
    np.testing.assert_array_equal(out[..., :2], faces[..., :2])
    out, _ = create_completer("onnx", path=graphs["nhwc"], layout="NHWC").complete(faces)
    np.testing.assert_array_equal(out[..., 0], 255 - faces[..., 0])
    np.testing.assert_array_equal(out[..., 1:], faces[..., 1:])


@pytest.mark.parametrize("graph, hole", [("white", 1), ("known", 0)])
def test_non_blind_graph_gets_the_true_mask_and_keeps_the_rest(graphs, faces, masks, graph,
                                                               hole):
    comp = create_completer("onnx", path=graphs[graph], hole=hole)
    assert not comp.blind and not comp.predicts_mask
    out, mask = comp.complete(faces, None, mask=masks)
    holes = masks.astype(bool)
    assert (out[holes] == 255).all()
    np.testing.assert_array_equal(out[~holes], faces[~holes])  # the graph's zeros not used
    np.testing.assert_array_equal(mask, masks)
    with pytest.raises(ConfigError, match="non-blind"):
        comp.complete(faces)
    # through the runner's single call site: a missing mask is named, not a TypeError
    with pytest.raises(OccbenchError, match="non-blind .* none is known for k0"):
        run_completer(comp, [f"k{i}" for i in range(N)], faces, faces)


def test_mask_output_by_index_or_name(graphs, faces):
    want = (faces[..., 0].astype(np.float32) - 127.5) / 127.5 > 0.5  # red above 191
    for which in (1, "occluded"):
        comp = create_completer("onnx", path=graphs["mask"], mask_output=which)
        out, mask = comp.complete(faces)
        np.testing.assert_array_equal(out, faces)
        np.testing.assert_array_equal(mask, want.astype(np.float32))
        assert comp.blind and comp.predicts_mask
    # the image output may be chosen by name too: the same outputs, the same cache key;
    # no mask output (none, false) is another key
    named = create_completer("onnx", path=graphs["mask"], image_output="image",
                             mask_output="occluded")
    assert named.version == comp.version
    for none in (None, False, "false", "None"):
        plain = create_completer("onnx", path=graphs["mask"], mask_output=none)
        assert plain.version != comp.version and not plain.predicts_mask


def test_a_mask_output_without_a_channel_axis(graphs, faces):
    comp = create_completer("onnx", path=graphs["mask3"], mask_output=1)
    _, mask = comp.complete(faces)
    want = (faces[..., 0].astype(np.float32) - 127.5) / 127.5 > 0.5
    np.testing.assert_array_equal(mask, want.astype(np.float32))


def test_a_graph_that_fails_at_run_time_is_one_error_naming_the_file(graphs, faces):
    comp = create_completer("onnx", path=graphs["reshape2"])
    with pytest.raises(DataError, match="reshape2.onnx: onnxruntime could not run the graph") as e:
        comp.complete(faces)  # 5 faces into a graph that reshapes them into 11 rows
    assert "\n" not in str(e.value)


def test_version_keys_the_file_and_the_options(graphs):
    a = create_completer("onnx", path=graphs["negate"])
    assert a.version == create_completer("onnx", path=graphs["negate"], batch_size=3).version
    assert a.version != create_completer("onnx", path=graphs["negate"], mean=100).version
    assert a.version != create_completer("onnx", path=graphs["identity"]).version


def test_nan_output_is_refused_naming_the_image(graphs, faces):
    comp = create_completer("onnx", path=graphs["nan"])
    with pytest.raises(OccbenchError, match="NaN/inf for k0"):
        run_completer(comp, [f"k{i}" for i in range(N)], faces, faces)


@pytest.mark.parametrize("graph, options, message", [
    (None, {}, "no such ONNX model file"),
    ("three", {}, "takes 3 inputs"),
    ("big", {}, "128, 128.*112x112"),
    ("gray", {}, "1 channels where 3 are expected"),
    ("negate", {"layout": "NHWC"}, "channels where 3 are expected in layout NHWC .layout=NCHW"),
    ("mask", {"mask_output": 5}, "mask_output=5, but the graph has 2 output"),
    ("mask", {"mask_output": "nope"}, "no output named 'nope'.*image, occluded"),
    ("negate", {"layout": "NCWH"}, "layout must be NCHW or NHWC"),
    ("negate", {"hole": 2}, "hole must be 1"),
    ("negate", {"std": 0}, "std must be positive"),
])
def test_bad_graphs_and_options_are_one_line_errors(graphs, tmp_path, graph, options, message):
    path = graphs[graph] if graph else tmp_path / "missing.onnx"
    with pytest.raises((ConfigError, DataError), match=message) as info:
        create_completer("onnx", path=path, **options)
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(DataError, match="bad.onnx: not an ONNX model onnxruntime can load"):
        create_completer("onnx", path=bad)


@pytest.mark.slow
def test_exported_c2fdan_gives_the_native_output(tmp_path, lfw_faces, one_torch_thread):
    """TorchCompleter.export_onnx of the trained C2FDAN, run by the onnx completer on 16 real
    LFW faces under rect eyes a = 0.2: the same faces up to float rounding (measured: at most
    1 grey level on 5e-5 of the values) and the same predicted mask."""
    from occbench.occlusion import occlude_batch

    native = create_completer("c2fdan-51k")
    path = native.export_onnx(tmp_path / "c2fdan.onnx")
    comp = create_completer("onnx", path=path, mask_output="mask", threads=1)
    faces = lfw_faces[:16]
    occluded, _, _ = occlude_batch(faces, [f"f{i}" for i in range(16)], "rect", 0.2, "eyes")
    want, want_mask = native.complete(occluded)
    got, got_mask = comp.complete(occluded)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    np.testing.assert_allclose(got_mask, want_mask, atol=1e-4)
    assert np.abs(got.astype(int) - occluded).max() > 50  # it did complete something


def test_runs_end_to_end_through_the_completion_cache(graphs, tmp_path, monkeypatch):
    """On the toy sets with the fake recognizer: the identity graph's figures are the
    occluded input's exactly; a non-blind graph's rows say so; a run with another recognizer
    completes nothing (the completions are cached)."""
    from occbench.models.onnx_completer import OnnxCompleter
    from occbench.runner import RunConfig, run
    from tests._counting import count_calls

    def go(model, args, out, rec_args=None):
        cfg = RunConfig(model=model, model_args=args, recognizer="fake",
                        recognizer_args=rec_args or {}, probes="toy",
                        distractor_set="toy-distractors", pairs_set="toy",
                        protocols=("identification", "reconstruction"), forms=("rect",),
                        positions=("eyes",), sizes=(0.1,))
        return run(cfg, tmp_path, tmp_path / out, cache=tmp_path / "cache", progress=False)

    occluded = go("occluded", {}, "occ")
    same = go("onnx", {"path": str(graphs["identity"])}, "identity")
    cols = ["protocol", "dataset", "form", "size", "metric", "D", "rank"]
    a = occluded[occluded.metric != "mask_iou"].set_index(cols).value.sort_index()
    b = same.set_index(cols).value.sort_index()
    pd.testing.assert_series_equal(a, b)
    calls = count_calls(monkeypatch, OnnxCompleter, "complete")
    white = go("onnx", {"path": str(graphs["white"])}, "white")
    assert set(white.model) == {"onnx (non-blind)"} and sum(calls) > 0

    def psnr(df):
        return df[(df.metric == "psnr") & (df.form == "rect")].value.iloc[0]

    # the true mask reached the graph: its pixels white, the rest the input's (an empty mask
    # would give the occluded input's PSNR exactly)
    assert psnr(white) != pytest.approx(psnr(occluded))
    done = sum(calls)
    # another recognizer needs new features, but not new completions: they are cached
    go("onnx", {"path": str(graphs["white"])}, "white-again", {"seed": 5})
    assert sum(calls) == done
