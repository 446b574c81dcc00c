"""The registry and the plug-in axes, exercised end to end with the ``fake`` recognizer and the
in-memory ``toy`` sets (milliseconds: the fast lane).

Each of the four extension stories of the registry issue is a small real plug-in registered
from this module, the way a user's package would: a completer, a verification protocol, an
occlusion form (and, in the slow lane, a recognizer from an ONNX file and a form drawn from
the 68 landmarks). None touches a core file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from occbench import registry
from occbench.errors import ConfigError
from occbench.metrics.verification import FARS
from occbench.occlusion import NO_POSITION, Form, _index, _uniform, occlude
from occbench.runner import RunConfig, run
from tests._onnx import MEAN, STD, onnx_path

TOY = dict(recognizer="fake", probes="toy", distractor_set="toy-distractors", pairs_set="toy")


@pytest.fixture
def temporary():
    """Register entries for one test, removed afterwards: ``temporary(registry, name, ...)``."""
    added = []

    def add(reg, name, target, **kw):
        reg.register(name, target, **kw)
        added.append((reg, name))

    yield add
    for reg, name in added:
        reg.unregister(name)


def _run(tmp_path, **kw) -> pd.DataFrame:
    cfg = RunConfig(**{**TOY, "positions": ("eyes",), "sizes": (0.1,), "forms": ("rect",), **kw})
    return run(cfg, tmp_path, tmp_path / "out", cache=tmp_path / "cache", progress=False)


# ----------------------------------------------------------------------------- registry


def test_registry_names_aliases_lazy_targets_and_errors():
    reg = registry.Registry("widget", axis=registry.Axis("anything", factory=None,
                                                         meta={"order": int}))
    reg.register("box", "collections:OrderedDict", aliases=("crate",), order=3)
    assert reg.canonical("crate") == "box" and reg.canonical("BOX") == "box"
    assert isinstance(reg.get("box").target, str)  # nothing imported until used
    from collections import OrderedDict

    assert reg.load("crate") is OrderedDict and reg.meta("box", "order") == 3
    assert reg.meta("nothing", "order", "dflt") == "dflt" and "crate" in reg
    with pytest.raises(ConfigError, match=r"unknown widget 'tub'; known widgets: box \(crate\)"):
        reg.load("tub")
    with pytest.raises(ConfigError, match="alias 'crate' already names 'box'"):
        reg.register("bag", dict, aliases=("crate",))
    reg.register("bad", "collections:NoSuchThing")
    with pytest.raises(ConfigError, match=r"registry.widgets: widget 'bad': cannot resolve "
                                          r"'collections:NoSuchThing': collections has no "
                                          r"attribute 'NoSuchThing'"):
        reg.load("bad")
    reg.register("gone", "occbench.no_such_module:X")
    with pytest.raises(ConfigError, match="no module named 'occbench.no_such_module'"):
        reg.load("gone")
    assert reg.get("gone").target == "occbench.no_such_module:X"  # still lazy, still failing


def test_registering_a_name_twice_is_an_error_unless_replace():
    reg = registry.Registry("widget", axis=registry.Axis("anything", factory=None))
    reg.register("box", dict, aliases=("crate",))
    with pytest.raises(ConfigError, match=r"registry.widgets: widget 'box' is already registered "
                                          r"\(target builtins.dict\); choose another name, or "
                                          r"pass replace=True"):
        reg.register("box", list)
    assert reg.load("box") is dict  # the first entry is untouched
    with pytest.raises(ConfigError, match="widget 'crate': the name is already an alias of 'box'"):
        reg.register("crate", list)
    with pytest.raises(ConfigError, match="already registered"):  # the decorator form too
        reg.register("box")(list)
    reg.register("box", list, replace=True)  # on purpose: replaced, its old aliases dropped
    assert reg.load("box") is list and "crate" not in reg
    # the built-ins: a plug-in cannot silently replace one
    with pytest.raises(ConfigError, match="registry.recognizers: recognizer 'dlib' is already "
                                          "registered"):
        registry.recognizers.register("dlib", "mypkg.mine:Dlib")


def test_metadata_keys_and_types_are_the_axis_own():
    with pytest.raises(ConfigError, match=r"registry.completers: completer 'mine': unknown "
                                          r"metadata key 'base' \(a completer's metadata: "
                                          r"order\)"):
        registry.completers.register("mine", "mypkg.mine:Mine", base="dlib")
    with pytest.raises(ConfigError, match=r"recognizer 'mine': unknown metadata key 'order' "
                                          r"\(a recognizer's metadata: base\)"):
        registry.recognizers.register("mine", "mypkg.mine:Mine", order=2)
    with pytest.raises(ConfigError, match=r"completer 'mine': metadata 'order' must be int or "
                                          r"float, not str \('2'\)"):
        registry.completers.register("mine", "mypkg.mine:Mine", order="2")
    with pytest.raises(ConfigError, match="unknown metadata key 'ordr'"):  # checked up front
        registry.completers.register("mine", ordr=2)
    with pytest.raises(ConfigError, match=r"widget 'x': unknown metadata key 'order' \(a "
                                          r"widget's metadata: none\)"):
        registry.Registry("widget").register("x", dict, order=1)
    assert "mine" not in registry.completers and "mine" not in registry.recognizers
    expected = {"completers": {"order"}, "recognizers": {"base"}, "datasets": {"scheme"},
                "protocols": {"default"}, "forms": {"order"}, "trainable": {"folder"}}
    for axis, keys in expected.items():
        reg = getattr(registry, axis)
        assert set(reg.axis.meta) == keys
        assert {k for e in reg.entries() for k in e.meta} <= keys  # the built-ins comply


def test_targets_are_checked_at_registration_or_when_resolved(temporary):
    from occbench.models import create_completer

    with pytest.raises(ConfigError, match=r"recognizer 'mine': lazy target 'mypkg.mine' is not "
                                          r"'module:attr' \(e.g. 'mypkg.models:Mine'\)"):
        registry.recognizers.register("mine", "mypkg.mine")
    for bad in ("mypkg:", ":Mine", "my pkg:Mine", "mypkg:Mine:x"):
        with pytest.raises(ConfigError, match="is not 'module:attr'"):
            registry.recognizers.register("mine", bad)
    # an object target of the wrong kind: at registration
    with pytest.raises(ConfigError, match=r"registry.completers: completer 'mine': target "
                                          r"builtins.dict lacks complete\(\); expected a "
                                          r"completer class or factory"):
        registry.completers.register("mine", dict)
    with pytest.raises(ConfigError, match=r"recognizer 'mine': target 3 \(int\) is not callable"):
        registry.recognizers.register("mine", 3)
    with pytest.raises(ConfigError, match=r"protocol 'mine': target .*PairGap lacks needs\(\)"):
        registry.protocols.register("mine", type("PairGap", (), {"prepare": len,
                                                                 "evaluate": len}))
    with pytest.raises(ConfigError, match=r"occlusion form 'band': target .*BandForm is a class, "
                                          r"not an instance"):
        registry.forms.register("band", BandForm)
    with pytest.raises(ConfigError, match=r"occlusion form 'band': target .* lacks draw\(\), "
                                          r"name, aliases"):
        registry.forms.register("band", object())
    with pytest.raises(ConfigError, match="aliases must be a tuple of names, not 'stripe'"):
        registry.forms.register("band", BandForm(), aliases="stripe")
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        registry.forms.register(" band", BandForm())
    # a lazy target of the wrong kind: when resolved, and it stays unresolved
    temporary(registry.completers, "ordered", "collections:OrderedDict")
    with pytest.raises(ConfigError, match=r"completer 'ordered': target collections.OrderedDict "
                                          r"\(from 'collections:OrderedDict'\) lacks complete\(\)"):
        create_completer("ordered")
    assert registry.completers.get("ordered").target == "collections:OrderedDict"
    # a factory: its objects are checked on creation (duck-typed: no base class needed)
    temporary(registry.completers, "blur-factory", lambda: BlurCompleter())
    assert isinstance(registry.completers.create("blur-factory"), BlurCompleter)
    temporary(registry.completers, "half", lambda: type("Half", (), {"complete": len})())
    with pytest.raises(ConfigError, match=r"completer 'half': .*<lambda> created .*Half.*, "
                                          r"which lacks name, version, outputs_clean, "
                                          r"cache_outputs; expected"):
        registry.completers.create("half")
    with pytest.raises(ConfigError, match="occlusion form 'rect': registered objects are not "
                                          "created"):
        registry.forms.create("rect")


def test_builtins_are_plugins_of_every_axis():
    assert {"occluded", "clean", "bvmr", "c2fdan"} <= set(registry.completers.names())
    assert {"dlib", "onnx", "fake", "resnet50", "resnet50-occ"} <= set(registry.recognizers.names())
    assert {"lfw", "facescrub", "celeba", "megaface", "toy"} <= set(registry.datasets.names())
    assert set(registry.protocols.names()) >= {"identification", "verification",
                                               "reconstruction", "landmarks"}
    assert registry.forms.canonical("square") == "rect"
    assert registry.recognizers.meta("resnet50-occ", "base") == "resnet50"
    assert registry.trainable.get("c2fdan-no-style").meta["folder"] == "c2fdan"
    from occbench.runner import default_protocols

    assert default_protocols() == ("identification", "verification", "reconstruction")


# ----------------------------------------------------------------------------- runner wiring


def test_fake_run_on_toy_sets_writes_every_protocol(tmp_path):
    df = _run(tmp_path, protocols=("identification", "verification", "reconstruction"))
    assert set(df.protocol) == {"identification", "verification", "reconstruction"}
    assert set(df.form) == {"none", "rect"} and set(df.dataset) == {"toy"}
    top = df[(df.metric == "tpir") & (df["rank"] == 1) & (df.D == df.D.max())]
    clean, occluded = (top[top.form == f].value.iloc[0] for f in ("none", "rect"))
    assert 0 < occluded <= clean <= 1
    psnr = df[df.metric == "psnr"].value
    assert len(psnr) == 1 and 10 < psnr.iloc[0] < 40  # a rectangle of random colour
    # a warm rerun reads every figure from the caches and gives the same rows
    again = _run(tmp_path, protocols=("identification", "verification", "reconstruction"))
    cols = ["protocol", "form", "metric", "D", "rank", "value"]
    pd.testing.assert_frame_equal(df[cols].reset_index(drop=True),
                                  again[cols].reset_index(drop=True))


def test_reconstruction_figures_are_shared_between_recognizers(tmp_path, temporary):
    calls = []

    class Counting:
        name, version, cache_outputs, outputs_clean = "counting", "1", False, False
        cache_neutral = ()

        def complete(self, occluded, clean=None):
            calls.append(len(occluded))
            return occluded, np.zeros(occluded.shape[:3], np.float32)

    temporary(registry.completers, "counting", Counting)
    _run(tmp_path, model="counting", protocols=("reconstruction",), include_clean=False)
    first = sum(calls)
    assert first == 60  # the 60 toy faces (probes and pairs: one set)
    _run(tmp_path, model="counting", recognizer="fake", recognizer_args={"seed": 5},
         protocols=("reconstruction",), include_clean=False)
    assert sum(calls) == first  # another recognizer: the figures come from the cache


def test_model_args_reach_the_model_and_key_its_cache(tmp_path):
    from occbench.models import cache_tag, create_recognizer

    a, b = create_recognizer("fake"), create_recognizer("fake", seed=3)
    assert cache_tag(a) == "fake@proj588x64-s0" and cache_tag(b).startswith("fake@proj588x64-s3-o")
    with pytest.raises(ConfigError, match=r"recognizer 'fake' has no option 'colour' "
                                          r"\(its options: dim, seed\)"):
        create_recognizer("fake", colour=1)
    df = _run(tmp_path, recognizer_args={"dim": 16}, protocols=("verification",))
    # (accuracy, its std, insightface's, impostor pairs, the ROC samples) x 2 conditions
    assert set(df.recognizer) == {"fake"} and len(df) == 2 * (4 + len(FARS))


# ----------------------------------------------------------------------------- new plug-ins


class BlurCompleter:
    """A new completer: a 3x3 box blur of the whole face (no mask prediction)."""

    name, version, cache_outputs, outputs_clean = "blur", "1", False, False
    cache_neutral = ()

    def complete(self, occluded, clean=None):
        x = np.pad(occluded.astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        out = sum(x[:, i:i + 112, j:j + 112] for i in range(3) for j in range(3)) / 9.0
        return np.rint(out).astype(np.uint8), np.zeros(occluded.shape[:3], np.float32)


def test_new_completer_is_one_registration(tmp_path, temporary):
    temporary(registry.completers, "blur", BlurCompleter, order=2.5)
    df = _run(tmp_path, model="blur", protocols=("identification", "reconstruction"))
    assert set(df.model) == {"blur"} and {"psnr", "ssim", "tpir"} <= set(df.metric)
    from occbench.report import model_rank

    assert model_rank("blur") == 2.5 and model_rank("unregistered") == float("inf")


class PairGap:
    """A new verification protocol: mean cosine of same-person pairs minus different ones."""

    name = "pair-gap"
    on_clean = True

    def __init__(self, config):
        self.config = config

    def prepare(self, ctx):
        from occbench.protocols.verification import pair_faces

        self.pairs, self.faces = pair_faces(ctx)

    def needs(self, ctx):
        from occbench.protocols.base import Need

        return [Need(self.faces, "pairs")]

    def evaluate(self, ctx, cond):
        f1 = ctx.features(self.faces, cond, [p.key1 for p in self.pairs])
        f2 = ctx.features(self.faces, cond, [p.key2 for p in self.pairs])
        cos = (f1 * f2).sum(1)
        same = np.array([p.same for p in self.pairs])
        gap = cos[same].mean() - cos[~same].mean()
        return [ctx.row(self.name, self.config.pairs_set, cond, "cos_gap", gap, len(cos))]


def test_new_protocol_is_one_registration(tmp_path, temporary):
    temporary(registry.protocols, "pair-gap", PairGap)
    df = _run(tmp_path, protocols=("pair-gap",))
    assert list(df.protocol.unique()) == ["pair-gap"] and len(df) == 2  # clean + rect
    clean, occ = (df[df.form == f].value.iloc[0] for f in ("none", "rect"))
    assert clean > occ  # occlusion brings the two kinds of pairs closer together


class BandForm(Form):
    """A new occlusion form without positions: a full-width band of height h at a random row."""

    name = "band"
    size_range = (0.0, 0.5)
    size_label = "height ratio h"
    eval_sizes = (0.1, 0.2)
    train_range = (0.05, 0.2)
    positions = ()

    def draw(self, size, position, rng, landmarks=None):
        colour = tuple(_index(rng, 256) for _ in range(3))
        h = max(1, round(size * 112))
        top = int(_uniform(rng, 0, 112 - h))
        mask = np.zeros((112, 112), bool)
        mask[top:top + h] = True
        return mask, {"form": self.name, "size": size, "position": position, "colour": colour,
                      "box": (0, top, 112, top + h)}


def test_new_occlusion_form_is_one_registration(tmp_path, temporary):
    band = BandForm()
    temporary(registry.forms, "band", band, aliases=("stripe",))
    face = np.full((112, 112, 3), 128, np.uint8)
    occ = occlude(face, "k", "stripe", 0.2, NO_POSITION)
    assert occ.mask.sum() == 22 * 112 and occ.params["form"] == "band"
    assert np.array_equal(occ.mask, occlude(face, "k", "band", 0.2, "none").mask)  # seeded
    with pytest.raises(ConfigError, match="unknown occlusion position 'eyes' for band"):
        occlude(face, "k", "band", 0.2, "eyes")
    df = _run(tmp_path, forms=("band", "rect"), sizes=None, positions=("eyes",),
              protocols=("identification", "verification"))
    conds = set(zip(df.form, df.position, df["size"], strict=True))
    assert {("band", "none", 0.1), ("band", "none", 0.2), ("rect", "eyes", 0.05)} <= conds
    from occbench.report import table1, table1_markdown

    t1 = table1(df)
    assert {"TPIR@1 band", "LFW band", "TPIR@1 rect eyes"} <= set(t1.column)
    assert "TPIR@1 band none" not in set(t1.column) and "TPIR@1 band" in table1_markdown(t1)
    from occbench.plots import fig7

    assert all(p.is_file() for p in fig7(df, "fake", tmp_path / "fig"))  # a row per form
    only = table1(df, forms=("rect",))  # Table I over chosen forms
    assert "TPIR@1 band" not in set(only.column) and "TPIR@1 rect" in set(only.column)
    # opt-in for training: a new form is not drawn by the sampler unless it says so
    from occbench.occlusion import sample_training_occlusion, training_forms

    assert training_forms() == ("rect", "text")
    rng = np.random.default_rng(0)
    assert sample_training_occlusion(face, rng, forms=("band",))[2]["form"] == "band"


# ----------------------------------------------------------------------------- slow lane


def test_new_recognizer_from_an_onnx_file_is_one_registration(tmp_path, temporary, data_root):
    """A named recognizer from the shared ONNX model: the ``onnx`` adapter with its options
    bound (what a user does for an insightface model)."""
    import functools

    from occbench.models import create_recognizer
    from occbench.models.onnx_recognizer import OnnxRecognizer

    temporary(registry.recognizers, "mobilefacenet", functools.partial(
        OnnxRecognizer, path=onnx_path(data_root), mean=MEAN, std=STD, flip=True))
    assert create_recognizer("mobilefacenet").dim == 128
    df = _run(tmp_path, recognizer="mobilefacenet", protocols=("verification",))
    assert set(df.recognizer) == {"mobilefacenet"} and len(df) == 2 * (4 + len(FARS))


class EyeBar(Form):
    """A form drawn from the 68 landmarks: a bar over both eyes (points 36-47), its height
    the eyes' extent times (1 + size)."""

    name = "eyebar"
    size_range = (0.0, 2.0)
    size_label = "margin"
    eval_sizes = (0.5, 1.0)
    positions = ()
    needs_landmarks = True

    def draw(self, size, position, rng, landmarks=None):
        colour = tuple(_index(rng, 256) for _ in range(3))
        eyes = landmarks[36:48]
        (x0, y0), (x1, y1) = eyes.min(0), eyes.max(0)
        pad = (y1 - y0) * size / 2 + 2
        mask = np.zeros((112, 112), bool)
        mask[max(0, int(y0 - pad)):int(np.ceil(y1 + pad)) + 1,
             max(0, int(x0 - 4)):int(np.ceil(x1 + 4)) + 1] = True
        return mask, {"form": self.name, "size": size, "position": position, "colour": colour}


def test_new_landmark_form_covers_the_eyes_of_real_faces(tmp_path, temporary, lfw_faces):
    from occbench.landmarks68 import landmarks68
    from occbench.occlusion import occlude_batch

    temporary(registry.forms, "eyebar", EyeBar())
    faces = lfw_faces[:8]
    points = landmarks68(faces)
    keys = [f"k{i}" for i in range(len(faces))]
    with pytest.raises(ConfigError, match="drawn from the face's 68 landmarks"):
        occlude_batch(faces, keys, "eyebar", 0.5, "none")
    _, masks, _ = occlude_batch(faces, keys, "eyebar", 0.5, "none", landmarks=points)
    eyes = np.rint(points[:, 36:48]).astype(int).clip(0, 111)
    for m, e in zip(masks, eyes, strict=True):
        assert m[e[:, 1], e[:, 0]].all()  # every eye landmark under the bar
        assert 0.05 < m.mean() < 0.4
    # through the runner: the landmarks come from the aligned faces (cached with them)
    df = _run(tmp_path, forms=("eyebar",), sizes=None, protocols=("identification",))
    assert {("eyebar", "none", 0.5), ("eyebar", "none", 1.0)} <= set(
        zip(df.form, df.position, df["size"], strict=True))


def test_identity_reuses_the_clean_faces_features_on_the_clean_condition(tmp_path, monkeypatch):
    from occbench.models.fake import FakeRecognizer

    embedded = []
    real = FakeRecognizer.embed
    monkeypatch.setattr(FakeRecognizer, "embed",
                        lambda self, faces: embedded.append(len(faces)) or real(self, faces))
    plain = _run(tmp_path / "a", protocols=("identification",))
    alone = sum(embedded)
    embedded.clear()
    both = _run(tmp_path / "b", protocols=("identification", "identification-clean-gallery"))
    # `occluded` on the clean condition outputs the faces as they are: the clean gallery's
    # features of the probes are the ones its clean condition already embedded
    assert sum(embedded) == alone > 0
    cols = ["form", "size", "metric", "D", "rank", "value"]
    pd.testing.assert_frame_equal(
        plain[cols].reset_index(drop=True),
        both.loc[both.protocol == "identification", cols].reset_index(drop=True))


def test_clean_gallery_identification_on_the_toy_sets(tmp_path, temporary):
    class Grey:
        """Every occluded face completed to one fixed noise image: identical probe features."""

        name, version, cache_outputs, outputs_clean = "grey", "1", False, False
        cache_neutral = ()

        def complete(self, occluded, clean=None):
            noise = np.random.default_rng(0).integers(0, 256, occluded.shape[1:])
            out = np.broadcast_to(noise.astype(occluded.dtype), occluded.shape).copy()
            return out, np.ones(occluded.shape[:3], np.float32)

    temporary(registry.completers, "grey", Grey)
    protocols = ("identification", "identification-clean-gallery")
    df = _run(tmp_path, model="grey", protocols=protocols)
    top = df[(df.metric == "tpir") & (df["rank"] == 1)]
    top = top[top.D == top.D.max()].set_index(["protocol", "form"]).value
    # the same image as probe and target: the shared "occluder" makes every pair a match
    assert top[("identification", "rect")] == top[("identification", "none")] == 1.0
    # against the clean targets such probes cannot identify anyone: about chance
    assert top[("identification-clean-gallery", "rect")] < 0.2
    assert top[("identification-clean-gallery", "none")] < 0.2  # the completer ran on it too
    # no completer: on the clean condition the gallery is the probes' own features
    df = _run(tmp_path, protocols=protocols)
    top = df[(df.metric == "tpir") & (df["rank"] == 1) & (df.form == "none")]
    assert top.groupby("protocol").value.max().nunique() == 1
