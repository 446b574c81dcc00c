"""A model's ``version`` (and so its cache tag, the folder that keys its cached outputs) is
the content of its weight file: one changed weight makes new ones, the same bytes under
another path keep them (issue 34).

Every registered completer and recognizer whose factory takes ``weights=`` is covered (a new
one fails :func:`test_every_weights_model_is_covered` until it is added to ``NETWORKS``); the
ONNX recognizer (``path=``) has its own tests in test_onnx_recognizer.py. The networks are
fresh ones of the smallest config (no committed weights are needed: some ``-51k`` variants
have none).
"""

from __future__ import annotations

import inspect
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from occbench import registry
from occbench.models import cache_tag, create_completer, create_recognizer


def _bvmr(name):
    from baselines.bvmr.model import create

    return create("small")


def _c2fdan(name):
    from baselines.c2fdan.model import create

    return create("tiny", name.removesuffix("-51k"))


def _resnet(name):
    from baselines.resnet50.model import create

    return create("small")


# registered name -> (family network builder, arch passed as option)
FAMILIES = {"bvmr": (_bvmr, "small"), "c2fdan": (_c2fdan, "tiny"), "resnet50": (_resnet, "small")}


def _weights_models() -> list[tuple[str, str]]:
    """(kind, name) of every registered model whose factory takes ``weights``."""
    out = []
    for kind, reg in (("completer", registry.completers), ("recognizer", registry.recognizers)):
        for name in reg.names():
            params = inspect.signature(reg.get(name).load()).parameters.values()
            # ``weights`` by name, or passed on by ``**kwargs`` (the resnet50 factories)
            if any(p.name == "weights" or p.kind is p.VAR_KEYWORD for p in params):
                out.append((kind, name))
    return out


def _family(name: str) -> str:
    return next(f for f in FAMILIES if name == f or name.startswith(f + "-"))


def test_every_weights_model_is_covered():
    models = _weights_models()
    names = {n for _, n in models}
    # the families this file knows; a model of a new family fails here
    assert all(any(n == f or n.startswith(f + "-") for f in FAMILIES) for n in names), names
    assert {"bvmr", "bvmr-51k", "c2fdan", "c2fdan-no-style-51k", "resnet50",
            "resnet50-small-occ"} <= names  # the registry listing is what it should be
    assert len(models) == 2 + 14 + 4


def _create(kind: str, name: str, weights, arch: str):
    make = create_completer if kind == "completer" else create_recognizer
    return make(name, arch=arch, weights=weights, device="cpu")


@pytest.mark.parametrize(("kind", "name"), _weights_models(), ids=lambda v: v)
def test_one_changed_weight_changes_version_and_cache_tag(kind, name, tmp_path, one_torch_thread):
    build, arch = FAMILIES[_family(name)]
    torch.manual_seed(0)
    original = tmp_path / "a" / f"{name}.safetensors"
    original.parent.mkdir()
    save_file(build(name).state_dict(), str(original))
    # the same bytes under another folder and file name
    copy = tmp_path / "elsewhere" / "renamed.safetensors"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    # one element of one floating tensor moved by a little (same keys, shapes, header)
    tensors = load_file(str(original))
    key = next(k for k, t in tensors.items() if t.is_floating_point() and t.numel() > 1)
    tensors[key].view(-1)[1] += 1e-3
    changed = tmp_path / "a" / "changed.safetensors"
    save_file(tensors, str(changed))
    assert changed.stat().st_size == original.stat().st_size

    a, b, c = (_create(kind, name, p, arch) for p in (original, copy, changed))
    assert a.version == b.version and cache_tag(a) == cache_tag(b)
    assert a.version != c.version and cache_tag(a) != cache_tag(c)
    # (a ``-51k`` variant keeps its network's name: its weights, not its name, key the cache)
    assert cache_tag(a).startswith(f"{a.name}@") and a.version.startswith(f"{arch}-")


def test_dlib_version_is_the_dat_file_content(tmp_path, monkeypatch):
    """dlib's recognizer has no option naming its .dat file (it is always the
    face-recognition-models package's); the module's ``model_path`` is pointed at copies."""
    from occbench.dlib_models import FACE_RESNET, model_path
    from occbench.models import dlib_recognizer

    real = model_path(FACE_RESNET)
    reference = create_recognizer("dlib", engine="dlib", workers=1)
    copy = tmp_path / "copy" / FACE_RESNET
    copy.parent.mkdir()
    shutil.copyfile(real, copy)
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    changed = tmp_path / FACE_RESNET
    changed.write_bytes(bytes(data))

    def recognizer(path):
        monkeypatch.setattr(dlib_recognizer, "model_path", lambda name: path)
        return create_recognizer("dlib", engine="dlib", workers=1)

    same, other = recognizer(copy), recognizer(changed)
    assert same.version == reference.version and cache_tag(same) == cache_tag(reference)
    assert other.version != reference.version and cache_tag(other) != cache_tag(reference)
