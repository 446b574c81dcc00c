"""The shared training loop and the ResNet-v2 recognizers, on real aligned CelebA faces."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from baselines.resnet50.model import CONFIGS, create
from baselines.resnet50.task import ArcMargin, ResNetTask
from occbench.errors import ConfigError, OccbenchError
from occbench.models import create_recognizer
from occbench.train.loop import TrainConfig, collate, train

LIMIT = 96  # aligned CelebA faces used by these tests


def _cfg(tmp_path, **kw):
    raw = {"arch": "small", "steps": 4, "batch_size": 8, "lr": 0.05, "warmup": 1,
           "checkpoint_every": 2, "seed": 3, "options": {"loss": "softmax", "occlusion_p": 0.5}}
    raw.update(kw)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(raw))
    return TrainConfig.load(path)


@pytest.fixture(scope="module")
def task(data_root):
    t = ResNetTask("resnet50-occ", data_root, limit=LIMIT)
    t.describe()  # aligns once for the module
    return t


def test_both_configs_build_and_expose_blocks():
    x = torch.zeros(1, 3, 112, 112)
    for name in CONFIGS:
        net = create(name, num_classes=10).eval()
        with torch.no_grad():
            f = net.features(x)
        assert f["embedding"].shape == (1, CONFIGS[name]["embedding"])
        assert f["block1"].shape[-1] == 56 and f["block3"].shape[-1] == 14
        assert net(x).shape == (1, 10)
    with pytest.raises(ConfigError, match="known: paper, small"):
        create("huge")


def test_one_step_lowers_the_loss_on_a_fixed_batch(task, tmp_path):
    cfg = _cfg(tmp_path)
    torch.manual_seed(0)
    model = task.build(cfg)
    data = task.dataset(cfg)
    batch = collate([data.get(i, 0) for i in range(16)], torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    first, _ = task.loss(model, batch, cfg)
    first.backward()
    opt.step()
    model.eval()  # dropout and batch statistics off for the comparison
    with torch.no_grad():
        before = task.loss(model, batch, cfg)[0]
    for _ in range(3):
        model.train()
        opt.zero_grad()
        task.loss(model, batch, cfg)[0].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = task.loss(model, batch, cfg)[0]
    assert after < before


def test_arcface_margin_hand_case():
    head = ArcMargin(2, 2, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    logits = head(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(10 * np.cos(0.5), abs=1e-4)  # cos(0 + m)
    assert logits[0, 1].item() == pytest.approx(0.0, abs=1e-4)  # cos(90°), no margin


def test_seeded_runs_are_identical_and_resume_is_exact(task, tmp_path):
    cfg = _cfg(tmp_path)
    a = train(task, cfg, tmp_path / "a", progress=False)
    b = train(task, cfg, tmp_path / "b", progress=False)
    wa, wb = load_file(str(a)), load_file(str(b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # 2 steps, then resume to 4 == 4 steps at once
    half = _cfg(tmp_path, steps=4)
    half.steps = 2
    train(task, half, tmp_path / "c", progress=False)
    c = train(task, cfg, tmp_path / "c", resume=True, progress=False)
    wc = load_file(str(c))
    assert all(torch.allclose(wa[k], wc[k], atol=1e-6) for k in wa)
    prov = json.loads(c.with_suffix(".json").read_text())
    assert prov["steps"] == 4 and prov["config"]["seed"] == 3 and "celeba" in prov["data"]
    assert not any(k.startswith("head.") for k in wa)  # the classifier is not shipped
    assert not list((tmp_path / "a").glob("*.tmp"))  # atomic writes leave no temp files


def test_resume_without_checkpoint_and_bad_config(task, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(task, _cfg(tmp_path), tmp_path / "none", resume=True, progress=False)
    (tmp_path / "bad.json").write_text('{"stepz": 3}')
    with pytest.raises(ConfigError, match="unknown keys \\['stepz'\\]"):
        TrainConfig.load(tmp_path / "bad.json")


def test_torchrun_two_gloo_processes(data_root, tmp_path):
    cfg = _cfg(tmp_path, steps=2)
    del cfg
    env = dict(os.environ, OCCBENCH_DATA=str(data_root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
           "occbench", "train", "resnet50", "--config", str(tmp_path / "cfg.json"),
           "--limit", str(LIMIT), "--out", str(tmp_path / "ck"), "--weights-dir",
           str(tmp_path / "w")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    prov = json.loads((tmp_path / "w" / "resnet50-small.json").read_text())
    assert prov["world_size"] == 2 and prov["steps"] == 2
    assert done.stdout.count("weights:") == 1  # rank 0 alone writes


def test_recognizer_adapter(tmp_path, task, lfw_faces):
    path = train(task, _cfg(tmp_path, steps=1), tmp_path / "r", progress=False)
    rec = create_recognizer("resnet50-occ", weights=path)
    emb = rec.embed(lfw_faces[:5])
    assert emb.shape == (5, CONFIGS["small"]["embedding"]) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(rec.embed(lfw_faces[:5]), emb)
    with pytest.raises(OccbenchError, match="occbench train resnet50 --config small"):
        create_recognizer("resnet50", weights=tmp_path / "missing.safetensors")
