"""ResNet-v2 recognizers: the network, its training task, the adapter, and one end-to-end
training run on real aligned CelebA faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from baselines.resnet50.model import create
from baselines.resnet50.task import ArcMargin, ResNetTask
from occbench.data.labelled import LabelledFaces
from occbench.errors import ConfigError, OccbenchError
from occbench.models import create_recognizer
from occbench.train.cli import train_main
from occbench.train.data import FaceDataset
from occbench.train.loop import TrainConfig, to_device, train
from tests._configs import write_config
from tests._counting import count_calls
from tests._tiny_training import train_tiny

RAW = {"arch": "small", "steps": 3, "batch_size": 8, "lr": 0.05, "warmup": 1,
       "checkpoint_every": 10, "seed": 3, "options": {"loss": "softmax", "occlusion_p": 0.5}}


def _cfg(tmp_path, **kw) -> TrainConfig:
    return write_config(tmp_path, RAW, **kw)


@pytest.fixture(scope="module")
def synthetic_faces() -> LabelledFaces:
    """24 random 'faces' of 4 identities: network mechanics, not recognition."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 112, 112, 3), dtype=np.uint8)
    return LabelledFaces("synthetic", None, images, np.arange(24) % 4,
                         ["a", "b", "c", "d"], [f"k{i}" for i in range(24)])


def test_both_configs_build_and_expose_blocks():
    small = create("small", num_classes=10).eval()
    with torch.no_grad():
        f = small.features(torch.zeros(2, 3, 112, 112))
        assert small(torch.zeros(2, 3, 112, 112)).shape == (2, 10)
    assert f["block1"].shape == (2, 16, 56, 56) and f["block3"].shape == (2, 64, 14, 14)
    assert f["embedding"].shape == (2, 128)
    with torch.no_grad():
        part = small.features(torch.zeros(1, 3, 112, 112), ("block1", "block3"))
    assert set(part) == {"block1", "block3"}  # stops after stage 3
    paper = create("paper").eval()
    with torch.no_grad():
        f = paper.features(torch.zeros(1, 3, 112, 112))
    assert f["block1"].shape == (1, 256, 56, 56) and f["block3"].shape == (1, 1024, 14, 14)
    assert f["block4"].shape == (1, 2048, 7, 7) and f["embedding"].shape == (1, 256)
    assert sum(p.numel() for n, p in paper.named_parameters() if not n.startswith("fc.")) > 23e6
    with pytest.raises(ConfigError, match="known: paper, small, mid"):
        create("huge")
    with pytest.raises(KeyError, match="block9"):
        small.features(torch.zeros(1, 3, 112, 112), ("block9",))


def test_one_step_lowers_the_loss_on_a_fixed_batch(tmp_path, synthetic_faces):
    """Train mode throughout (batch statistics), the same dropout mask before and after."""
    cfg = _cfg(tmp_path)
    task = ResNetTask("resnet50-occ", "unused", faces=synthetic_faces)
    torch.manual_seed(0)
    model = task.build(cfg).train()
    data = task.dataset(cfg)
    batch = to_device(torch.utils.data.default_collate([data[(0, i)] for i in range(16)]), "cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss():
        torch.manual_seed(1)
        return task.loss(model, batch, cfg)[0]

    before = loss()
    before.backward()
    opt.step()
    with torch.no_grad():
        assert loss() < before


def test_arcface_margin_hand_case():
    head = ArcMargin(2, 2, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    logits = head(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(10 * np.cos(0.5), abs=1e-4)  # cos(0 + m)
    assert logits[0, 1].item() == pytest.approx(0.0, abs=1e-4)  # cos(90°), no margin


def test_seeded_resnet_runs_are_identical(tmp_path, synthetic_faces):
    """Conv, BatchNorm, dropout, ArcFace and occlusions: same seed, same weights on CPU."""
    cfg = _cfg(tmp_path, options={"loss": "arcface", "occlusion_p": 0.5})
    paths = [train(ResNetTask("resnet50-occ", "unused", faces=synthetic_faces), cfg,
                   tmp_path / run, progress=False) for run in ("a", "b")]
    a, b = (load_file(str(p)) for p in paths)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith(("head.", "margin.")) for k in a)  # only the backbone ships


def test_dataset_augments_reproducibly(synthetic_faces):
    ds = FaceDataset(synthetic_faces.images, synthetic_faces.labels, seed=1, occlusion_p=1.0,
                     with_clean=True)
    a, b = ds[(2, 5)], ds[(2, 5)]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["mask"].any() and np.array_equal(a["face"][a["mask"] == 0],
                                              a["clean"][a["mask"] == 0])
    flips = {np.array_equal(ds[(e, 5)]["clean"], synthetic_faces.images[5][:, ::-1])
             for e in range(8)}
    assert flips == {True, False}  # flipped in some epochs, not in others
    plain = FaceDataset(synthetic_faces.images, synthetic_faces.labels, flip=False)
    assert np.array_equal(plain[3]["face"], synthetic_faces.images[3])


def test_adapter_embeds_unit_norm_and_explains_missing_weights(tmp_path, lfw_faces):
    net = create("small")
    torch.manual_seed(0)
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "w.safetensors"
    save_file(net.state_dict(), str(path))
    rec = create_recognizer("resnet50-occ", arch="small", weights=path, device="cpu")
    emb = rec.embed(lfw_faces[:5])
    assert emb.shape == (5, 128) and emb.dtype == np.float32 and rec.dim == 128
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(rec.embed(lfw_faces[:5]), emb)
    np.testing.assert_allclose(rec.embed(lfw_faces[:2]), emb[:2], atol=1e-5)  # batch-free
    assert rec.version.startswith("small-") and len(rec.version) == 18
    with pytest.raises(ValueError, match="uint8"):
        rec.embed(lfw_faces[:2].astype(np.float32))
    with pytest.raises(OccbenchError, match="occbench train resnet50-occ --config small --data"):
        create_recognizer("resnet50-occ", arch="small", weights=tmp_path / "missing.safetensors")
    with pytest.raises(OccbenchError, match="occbench train resnet50 --config distill --data"):
        create_recognizer("resnet50", weights=tmp_path / "missing.safetensors")  # default: mid
    with pytest.raises(OccbenchError, match="does not hold resnet50 --config paper"):
        create_recognizer("resnet50", arch="paper", weights=path)
    # flip-sum: the embedding of a face and of its mirror agree, and equal the normalised
    # sum of the two plain embeddings
    flip = create_recognizer("resnet50-occ", arch="small", weights=path, device="cpu", flip="1")
    both = flip.embed(np.concatenate([lfw_faces[:3], lfw_faces[:3, :, ::-1]]))
    np.testing.assert_allclose(both[:3], both[3:], atol=1e-5)
    plain = rec.net.embed(rec.net.preprocess(torch.as_tensor(lfw_faces[:3]))).detach().numpy()
    mirror = rec.net.embed(rec.net.preprocess(torch.as_tensor(
        np.ascontiguousarray(lfw_faces[:3, :, ::-1])))).detach().numpy()
    summed = plain + mirror
    np.testing.assert_allclose(both[:3], summed / np.linalg.norm(summed, axis=1, keepdims=True),
                               atol=1e-5)
    assert not np.allclose(both[:3], emb[:3], atol=1e-3)


def test_train_main_end_to_end_on_real_celeba(tmp_path, data_root, lfw_faces):
    """Two steps of resnet50-occ on 32 real aligned CelebA faces, then the recognizer."""
    path, prov = train_tiny("resnet50-occ", data_root, tmp_path, limit=32, steps=2,
                            batch_size=8, checkpoint_every=1)
    assert path == tmp_path / "w" / "resnet50-occ-small.safetensors"
    assert prov["data"]["set"] == "celeba" and prov["data"]["images"] == 32
    assert prov["data"]["root"] == str(data_root) and prov["steps"] == 2
    assert np.isfinite(prov["final"]["loss"]) and prov["config"]["options"]["loss"] == "arcface"
    assert (tmp_path / "ck" / "checkpoint.pt").is_file()
    emb = create_recognizer("resnet50-occ", arch="small", weights=path).embed(lfw_faces[:3])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    with pytest.raises(ConfigError, match="no config 'huge' for resnet50; known: distill, distill-long, distill-more, distill-occ, paper, small"):
        train_main("resnet50", "huge", data_root)


@pytest.mark.slow
def test_distillation_learns_the_teacher_embedding_of_the_clean_face(tmp_path, data_root,
                                                                     monkeypatch):
    """`loss: distill` with the real ONNX teacher on a few real CelebA faces: the teacher's
    embeddings are cached (a second run computes none), the student's cosine to them rises,
    and the provenance names the teacher and its file hash."""
    from occbench.align import align_dataset
    from occbench.data import load_dataset

    monkeypatch.setenv("OCCBENCH_CACHE", str(tmp_path / "cache"))
    teacher = {"name": "onnx", "args": {
        "path": str(data_root.parent / "models" / "mobilefacenet-foamliu.onnx"),
        "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "flip": True}}
    options = {"loss": "distill", "teacher": teacher, "occlusion_p": 0.5}
    path, prov = train_tiny("resnet50-occ", data_root, tmp_path, limit=16, options=options,
                            arch="mid", steps=30, batch_size=16, warmup=1, lr=0.05)
    assert prov["data"]["teacher"]["version"] == create_recognizer(
        "onnx", **teacher["args"]).version
    assert prov["final"]["cos"] > 0.25  # from ~0 at the start
    # the student (eval mode) agrees with the teacher on the clean faces it learnt from
    ds = load_dataset("celeba", data_root)
    ds.samples = ds.samples[:16]
    faces = align_dataset(ds, workers=1, progress=False).images
    net = create("mid")
    net.load_state_dict(load_file(str(path)))
    net.eval()
    with torch.no_grad():
        student = torch.nn.functional.normalize(net.embed(net.preprocess(torch.as_tensor(faces))))
    target = create_recognizer("onnx", **teacher["args"]).embed(faces)
    cos = (student.numpy() * target).sum(1)
    untrained = create("mid").eval()
    with torch.no_grad():
        before = torch.nn.functional.normalize(untrained.embed(untrained.preprocess(
            torch.as_tensor(faces))))
    cos0 = (before.numpy() * target).sum(1)
    print(f"student-teacher cosine on the clean faces: {cos.mean():.3f} (untrained "
          f"{cos0.mean():.3f})")
    assert cos.mean() > 0.5 and cos.mean() > cos0.mean() + 0.4
    # the teacher's embeddings are cached: a second run embeds nothing
    from occbench.models import onnx_recognizer

    calls = count_calls(monkeypatch, onnx_recognizer.OnnxRecognizer, "embed")
    (tmp_path / "again").mkdir()
    train_tiny("resnet50-occ", data_root, tmp_path / "again", limit=16, options=options,
               arch="mid", steps=1, batch_size=16, warmup=1)
    assert calls == []
