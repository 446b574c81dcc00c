"""Mechanics of the shared training loop on a tiny synthetic task (tests/_toy_task.py):
configs, schedule, sampling, seeded determinism, exact resume, atomic checkpoints, several
optimisers, provenance, and torchrun with two gloo processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from occbench.errors import ConfigError
from occbench.train import loop
from occbench.train.loop import (
    CHECKPOINT,
    StepBatches,
    TrainConfig,
    _summary,
    lr_factor,
    train,
)
from tests._configs import write_config
from tests._toy_task import ToyTask, TwoPhaseTask

REPO = Path(__file__).resolve().parents[1]


RAW = {"arch": "tiny", "steps": 4, "batch_size": 8, "lr": 0.1, "warmup": 1,
       "checkpoint_every": 2, "seed": 3, "options": {"dropout": 0.2}}


def _cfg(tmp_path: Path, name: str = "cfg.json", **kw) -> TrainConfig:
    return write_config(tmp_path, RAW, name, **kw)


def _same(a: dict, b: dict, atol: float = 0.0) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if atol == 0 else torch.allclose(a[k], b[k], atol=atol) for k in a)


def test_config_errors(tmp_path):
    (tmp_path / "bad.json").write_text('{"stepz": 3}')
    with pytest.raises(ConfigError, match=r"unknown keys \['stepz'\]"):
        TrainConfig.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.load(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.load(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="unknown optimizer 'lbfgs'"):
        _cfg(tmp_path, optimizer="lbfgs")
    assert _cfg(tmp_path).betas == (0.9, 0.999) and TrainConfig.load(
        tmp_path / "cfg.json", steps=9).steps == 9


def test_lr_schedules(tmp_path):
    cos = _cfg(tmp_path, steps=10, warmup=2)
    assert [lr_factor(s, cos, 5) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert lr_factor(6, cos, 5) == pytest.approx(0.5) and lr_factor(10, cos, 5) == pytest.approx(0)
    step = _cfg(tmp_path, schedule="step", decay=0.1)
    assert [lr_factor(s, step, 5) for s in (0, 4, 5, 10)] == pytest.approx([1, 1, 0.1, 0.01])


def test_batches_cover_each_epoch_and_ranks_split_the_global_batch(tmp_path):
    cfg = _cfg(tmp_path, steps=12)  # 64 items, batch 8: 8 steps an epoch
    one = list(StepBatches(64, cfg, 0, 1, 0, 12))
    first_epoch = [i for b in one[:8] for e, i in b]
    assert sorted(first_epoch) == list(range(64)) and {e for b in one[8:] for e, _ in b} == {1}
    assert [i for _, i in one[8]] != [i for _, i in one[0]]  # a new order each epoch
    assert list(StepBatches(64, cfg, 0, 1, 5, 12)) == one[5:]  # resuming at step 5
    # two ranks of batch 4 together see what one process of batch 8 sees
    half = _cfg(tmp_path, batch_size=4, steps=12)
    r0, r1 = (list(StepBatches(64, half, r, 2, 0, 12)) for r in (0, 1))
    assert all(sorted(a + b) == sorted(c) for a, b, c in zip(r0, r1, one, strict=True))


def test_seeded_runs_are_identical(tmp_path):
    cfg = _cfg(tmp_path, steps=3)
    a = load_file(str(train(ToyTask(), cfg, tmp_path / "a", progress=False)))
    b = load_file(str(train(ToyTask(), cfg, tmp_path / "b", progress=False)))
    assert _same(a, b)
    other = _cfg(tmp_path, "other.json", steps=3, seed=4)
    c = load_file(str(train(ToyTask(), other, tmp_path / "c", progress=False)))
    assert not _same(a, c)


def test_resume_continues_exactly(tmp_path):
    cfg = _cfg(tmp_path, checkpoint_every=1)
    full = train(ToyTask(), cfg, tmp_path / "full", progress=False)
    assert train(ToyTask(), cfg, tmp_path / "cut", until=2, progress=False) is None
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=False)["step"] == 2
    resumed = train(ToyTask(), cfg, tmp_path / "cut", resume=True, progress=False)
    assert _same(load_file(str(full)), load_file(str(resumed)))
    prov = [json.loads(p.with_suffix(".json").read_text()) for p in (full, resumed)]
    assert prov[0]["curve"] == prov[1]["curve"] and prov[1]["steps"] == 4
    assert [s["from_step"] for s in prov[1]["sessions"]] == [0, 2]


def test_resume_refuses_missing_or_different_runs(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(ToyTask(), cfg, tmp_path / "none", resume=True, progress=False)
    train(ToyTask(), cfg, tmp_path / "r", until=2, progress=False)
    with pytest.raises(ConfigError, match=r"other settings of \['lr'\]"):
        train(ToyTask(), _cfg(tmp_path, "lr.json", lr=0.5), tmp_path / "r", resume=True,
              progress=False)
    longer = _cfg(tmp_path, "long.json", steps=6)  # more steps may be asked for
    assert json.loads(train(ToyTask(), longer, tmp_path / "r", resume=True, progress=False)
                      .with_suffix(".json").read_text())["steps"] == 6


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    train(ToyTask(), cfg, tmp_path / "r", until=2, progress=False)
    ckpt = tmp_path / "r" / CHECKPOINT
    before = ckpt.read_bytes()

    def crash(obj, f, *a, **kw):  # half a file, then the process dies
        Path(f).write_bytes(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        train(ToyTask(), cfg, tmp_path / "r", resume=True, progress=False)
    assert ckpt.read_bytes() == before  # the old checkpoint is whole
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [CHECKPOINT]  # no temp file


def test_two_optimisers_each_train_their_own_phase(tmp_path):
    cfg = _cfg(tmp_path, steps=2, options={"dropout": 0.0})
    task = TwoPhaseTask()
    torch.manual_seed(cfg.seed)
    start = {k: v.clone() for k, v in task.build(cfg).state_dict().items()}
    path = train(task, cfg, tmp_path / "p", progress=False)
    end = load_file(str(path))
    assert all(not torch.equal(start[k], end[k]) for k in start)  # both layers moved
    final = json.loads(path.with_suffix(".json").read_text())["final"]
    assert set(final) == {"loss_a", "acc_a", "loss_b", "acc_b"}
    assert final["loss_b"] > final["loss_a"]  # phase b's loss is doubled


def test_provenance_records_the_run(tmp_path):
    path = train(ToyTask(), _cfg(tmp_path), tmp_path / "o", weights_dir=tmp_path / "w",
                 command="occbench train toy --config tiny", progress=False)
    assert path == tmp_path / "w" / "toy-tiny.safetensors"
    prov = json.loads(path.with_suffix(".json").read_text())
    assert prov["command"] == "occbench train toy --config tiny"
    assert prov["data"] == {"set": "toy", "images": 64} and prov["steps"] == 4
    assert prov["seed"] == 3 and prov["config"]["lr"] == 0.1 and prov["git_commit"]
    assert set(prov["final"]) == {"loss", "acc"} and prov["curve"][-1]["step"] == 4
    assert prov["precision"] == loop.precision(TrainConfig(), torch.device("cpu"))
    assert prov["threads"] == torch.get_num_threads() >= 1 and prov["images_per_s"] > 0
    (session,) = prov["sessions"]
    assert session["steps"] == 4 and session["images"] == 32 and session["images_per_s"] > 0
    assert session["precision"] == prov["precision"] and session["wall_seconds"] >= 0


def test_too_little_data_for_one_batch(tmp_path):
    with pytest.raises(ConfigError, match="fill no batch"):
        train(ToyTask(n=5), _cfg(tmp_path), tmp_path / "x", progress=False)


def test_torchrun_two_gloo_processes(tmp_path):
    """2 ranks of batch 4 == 1 process of batch 8 (DDP averages the gradients); rank 0
    alone writes the weights (float32: bf16 rounds a batch of 4 unlike one of 8)."""
    cfg = {"arch": "tiny", "steps": 2, "batch_size": 4, "lr": 0.1, "warmup": 1, "amp": False,
           "checkpoint_every": 1, "seed": 3, "options": {"dropout": 0.0}}
    (tmp_path / "ddp.json").write_text(json.dumps(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "tests._toy_task", str(tmp_path / "ddp.json"), str(tmp_path / "out"),
           str(tmp_path / "w"), str(tmp_path / "marks")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
        proc.communicate()
        pytest.fail("torchrun did not finish in 240 s")
    assert proc.returncode == 0, err[-3000:]
    marks = [json.loads((tmp_path / "marks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(m["rank"], m["world"]) for m in marks] == [(0, 2), (1, 2)]
    assert marks[0]["returned"] and marks[1]["returned"] is None
    assert [p.name for p in (tmp_path / "w").iterdir()] in (
        ["toy-tiny.safetensors", "toy-tiny.json"], ["toy-tiny.json", "toy-tiny.safetensors"])
    prov = json.loads((tmp_path / "w" / "toy-tiny.json").read_text())
    assert prov["world_size"] == 2 and prov["steps"] == 2
    assert prov["command"].startswith("torchrun --nproc_per_node 2")
    ddp = load_file(str(tmp_path / "w" / "toy-tiny.safetensors"))
    assert _same(ddp, {k: torch.tensor(v) for k, v in marks[1]["state"].items()}, atol=1e-7)
    single = load_file(str(train(ToyTask(), _cfg(tmp_path, "one.json", **dict(cfg, batch_size=8)),
                                 tmp_path / "one", progress=False)))
    assert _same(ddp, single, atol=1e-6)


def test_tag_names_a_second_weights_file_of_the_same_arch(tmp_path):
    cfg = _cfg(tmp_path, "tagged.json", tag="more")
    assert cfg.stem("toy") == "toy-tiny-more" and _cfg(tmp_path).stem("toy") == "toy-tiny"
    out = train(ToyTask(), cfg, tmp_path / "t", progress=False)
    assert out == tmp_path / "t" / "toy-tiny-more.safetensors" and out.with_suffix(".json").is_file()


def test_init_starts_from_a_weights_file_and_records_it(tmp_path):
    first = train(ToyTask(), _cfg(tmp_path), tmp_path / "a", progress=False)
    start = load_file(str(first))
    # zero steps of learning (lr 0): the run ends where the init file began
    frozen = _cfg(tmp_path, "frozen.json", lr=0.0, weight_decay=0.0,
                  init=str(tmp_path / "a" / "{name}-tiny.safetensors"))
    out = train(ToyTask(), frozen, tmp_path / "b", progress=False)
    assert _same(load_file(str(out)), start)
    prov = json.loads(out.with_suffix(".json").read_text())
    assert prov["init"]["path"] == str(first) and prov["init"]["provenance"]["steps"] == 4
    assert prov["init"]["missing"] == [] and len(prov["init"]["sha256"]) == 64
    # a run resumed from its checkpoint keeps the record of where it started
    assert train(ToyTask(), frozen, tmp_path / "b2", until=2, progress=False) is None
    resumed = train(ToyTask(), frozen, tmp_path / "b2", resume=True, progress=False)
    assert json.loads(resumed.with_suffix(".json").read_text())["init"] == prov["init"]
    # a random start differs from the file
    assert not _same(load_file(str(train(ToyTask(), _cfg(tmp_path, "r.json", lr=0.0,
                                                       weight_decay=0.0, seed=9),
                                         tmp_path / "c", progress=False))), start)
    with pytest.raises(ConfigError, match="init: no weights file at"):
        train(ToyTask(), _cfg(tmp_path, "x.json", init=str(tmp_path / "none.safetensors")),
              tmp_path / "d", progress=False)
    (tmp_path / "junk.safetensors").write_text("not weights")
    with pytest.raises(ConfigError, match="not a readable safetensors"):
        train(ToyTask(), _cfg(tmp_path, "y.json", init=str(tmp_path / "junk.safetensors")),
              tmp_path / "e", progress=False)


def test_precision_follows_the_hardware(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loop.precision(TrainConfig(amp=False), cpu) == "fp32"
    assert loop.precision(TrainConfig(amp=False), cuda) == "fp32"
    assert loop.precision(TrainConfig(), cuda) == "fp16"
    monkeypatch.setattr(loop, "cpu_runs_bf16", lambda: True)
    assert loop.precision(TrainConfig(), cpu) == "bf16"
    monkeypatch.setattr(loop, "cpu_runs_bf16", lambda: False)
    assert loop.precision(TrainConfig(), cpu) == "fp32"


def test_bf16_training_runs_bf16_and_records_it(tmp_path, monkeypatch):
    """Under bf16 autocast the toy's linear layers compute in bf16 (the loss differs from the
    float32 run's in the low bits, not by more), and the provenance says bf16."""
    if not loop.cpu_runs_bf16():
        pytest.skip("this CPU has no native bf16")
    runs = {}
    for amp in (True, False):
        path = train(ToyTask(), _cfg(tmp_path, f"{amp}.json", amp=amp), tmp_path / str(amp),
                     progress=False)
        runs[amp] = json.loads(path.with_suffix(".json").read_text())
    assert runs[True]["precision"] == "bf16" and runs[False]["precision"] == "fp32"
    a, b = runs[True]["final"]["loss"], runs[False]["final"]["loss"]
    assert a != b and a == pytest.approx(b, rel=0.05)


def test_use_all_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OCCBENCH_THREADS", raising=False)
        assert loop.use_all_cores() == (os.cpu_count() or 1) == torch.get_num_threads()
        monkeypatch.setenv("OCCBENCH_THREADS", "1")
        assert loop.use_all_cores() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_config_base_and_overrides(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(
        {"arch": "tiny", "steps": 10, "lr": 0.5, "options": {"x": 1, "y": 2}}))
    (tmp_path / "b.json").write_text(json.dumps({"base": "a", "steps": 20,
                                                 "options": {"y": 3}}))
    cfg = TrainConfig.load(tmp_path / "b.json")
    assert (cfg.arch, cfg.steps, cfg.lr, cfg.options) == ("tiny", 20, 0.5, {"x": 1, "y": 3})
    (tmp_path / "c.json").write_text(json.dumps({"base": "c"}))
    with pytest.raises(ConfigError, match="cycle"):
        TrainConfig.load(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"base": "nowhere"}))
    with pytest.raises(ConfigError, match="nowhere.json not found"):
        TrainConfig.load(tmp_path / "d.json")
    (tmp_path / "e.json").write_text(json.dumps({"base": "a", "colour": "red"}))
    with pytest.raises(ConfigError, match="unknown keys"):
        TrainConfig.load(tmp_path / "e.json")


def test_every_shipped_config_loads():
    """Each config under baselines/*/configs (with its base) is a valid TrainConfig whose
    options every trainable model of that folder knows."""
    from occbench import registry
    from occbench.train.cli import _entry, make_task

    paths = sorted(REPO.glob("baselines/*/configs/*.json"))
    assert paths
    tasks = {}
    for name in registry.trainable.names():
        tasks.setdefault(_entry(name)[0], []).append(make_task(name, "unused"))
    for path in paths:
        cfg = TrainConfig.load(path)
        for task in tasks[path.parent.parent.name]:
            loop.check_options(task, cfg, path)


def test_an_unknown_option_is_refused_before_any_data_is_read(tmp_path):
    from baselines.c2fdan.task import C2FDANTask
    from occbench.train.cli import train_main

    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"base": str(REPO / "baselines/bvmr/configs/small.json"),
                                "options": {"ocluson_p": 0.5}}))
    with pytest.raises(ConfigError, match=r"typo.json: unknown options \['ocluson_p'\] for bvmr"):
        train_main("bvmr", str(typo), tmp_path / "no data")
    cfg = write_config(tmp_path, {"options": {"weights": {"per": 1.0, "stlye": 2.0}}})
    with pytest.raises(ConfigError, match=r"unknown terms \['stlye'\]"):
        C2FDANTask("c2fdan", "unused").loss_weights(cfg)
    loop.check_options(ToyTask(), _cfg(tmp_path, options={"anything": 1}))  # no OPTIONS: any


class EvalToyTask(ToyTask):
    """ToyTask with a held-out figure: the loss of the current weights on fixed points."""

    def evaluate(self, model, cfg):
        assert not model.training and not torch.is_grad_enabled()
        x = torch.linspace(-1, 1, 32).reshape(4, 8)
        return {"out": model(x).float().abs().mean().item()}


def test_held_out_curve_every_eval_every_steps_and_after_resume(tmp_path):
    cfg = _cfg(tmp_path, steps=6, eval_every=2, checkpoint_every=5)
    full = train(EvalToyTask(), cfg, tmp_path / "full", progress=False)
    evals = json.loads(full.with_suffix(".json").read_text())["evals"]
    assert [e["step"] for e in evals] == [0, 2, 4, 6]
    assert [e["images"] for e in evals] == [0, 16, 32, 48]
    assert len({e["out"] for e in evals}) == 4  # the weights moved between points
    # cut at step 3, resumed: the points of the full run, plus the resumed session's start
    assert train(EvalToyTask(), cfg, tmp_path / "cut", until=3, progress=False) is None
    resumed = train(EvalToyTask(), cfg, tmp_path / "cut", resume=True, progress=False)
    again = json.loads(resumed.with_suffix(".json").read_text())["evals"]
    assert [(e["step"], e["session"]) for e in again] == [(0, 0), (2, 0), (3, 1), (4, 1), (6, 1)]
    by_step = {e["step"]: e["out"] for e in evals}
    assert all(e["out"] == pytest.approx(by_step[e["step"]], abs=1e-6)
               for e in again if e["step"] in by_step)
    # without eval_every the task's evaluate is never called
    plain = train(EvalToyTask(), _cfg(tmp_path, "plain.json"), tmp_path / "plain", progress=False)
    assert json.loads(plain.with_suffix(".json").read_text())["evals"] == []


def test_training_curve_figure(tmp_path):
    from occbench.train.curves import plot_training, read_run

    cfg = _cfg(tmp_path, steps=6, eval_every=2, checkpoint_every=5)
    path = train(EvalToyTask(), cfg, tmp_path / "run", progress=False)
    run = read_run(path.with_suffix(".json"))
    assert [e["images"] for e in run["evals"]] == [0, 16, 32, 48]
    assert list(run["loss"]) == ["loss"]  # images = steps x batch
    assert run["loss"]["loss"] and all(x % 8 == 0 for x, _ in run["loss"]["loss"])
    # a two-stage run (C2FDAN): each stage's loss its own line, its idle zeros left out
    prov = json.loads(path.with_suffix(".json").read_text())
    prov["curve"] = [{"step": 1, "loss_c": 2.0, "loss_g": 0.0}, {"step": 2, "loss_c": 1.5,
                      "loss_g": 0.0}, {"step": 3, "loss_c": 0.0, "loss_g": 2.4}]
    two = tmp_path / "two.json"
    two.write_text(json.dumps(prov))
    assert read_run(two)["loss"] == {"loss_c": [(8, 2.0), (16, 1.5)], "loss_g": [(24, 2.4)]}
    assert read_run(tmp_path / "run" / CHECKPOINT)["evals"] == run["evals"]
    png = plot_training(path.with_suffix(".json"), tmp_path / "fig")
    assert png.name == "training_toy.png" and png.read_bytes()[:4] == b"\x89PNG"
    plain = train(ToyTask(), _cfg(tmp_path, "plain.json"), tmp_path / "plain", progress=False)
    with pytest.raises(ConfigError, match="no held-out figures"):
        read_run(plain.with_suffix(".json"))


def test_state_file_round_trip(tmp_path):
    from occbench.train.state import load_state, save_state

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1, betas=(0.8, 0.9))
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "opt": {"g": opt.state_dict()}, "step": 7,
             "history": [{"step": 1, "loss": 0.5}], "scaler": {}, "init": None}
    back = load_state(save_state(tmp_path / "s.state.safetensors", state))
    assert back["step"] == 7 and back["history"] == state["history"] and back["init"] is None
    assert _same(back["model"], state["model"])
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    opt2.load_state_dict(back["opt"]["g"])  # int keys and tensors as they were
    assert opt2.param_groups[0]["betas"] == [0.8, 0.9] or opt2.param_groups[0]["betas"] == (0.8, 0.9)
    assert set(back["opt"]["g"]["state"]) == {0, 1}
    assert torch.equal(back["opt"]["g"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    (tmp_path / "w.safetensors").write_bytes((tmp_path / "s.state.safetensors").read_bytes()[:50])
    with pytest.raises(ConfigError, match="w.safetensors: not a readable training state"):
        load_state(tmp_path / "w.safetensors")


def test_segments_continue_on_a_fresh_machine(tmp_path):
    """A segment that stops on time writes weights, provenance (complete: false) and its whole
    state beside the weights; --resume with no checkpoint (a fresh machine) continues from the
    state, ends where one uninterrupted run ends, and removes the state file."""
    cfg = _cfg(tmp_path, steps=6, checkpoint_every=2, eval_every=2)
    full = load_file(str(train(EvalToyTask(), cfg, tmp_path / "full", progress=False)))
    w = tmp_path / "weights"
    # minutes=0: the segment ends at the first checkpoint (step 2)
    assert train(EvalToyTask(), cfg, tmp_path / "m1", weights_dir=w, minutes=0,
                 progress=False) is None
    prov = json.loads((w / "toy-tiny.json").read_text())
    assert (prov["complete"], prov["steps"], prov["of_steps"]) == (False, 2, 6)
    state_file = w / "toy-tiny.state.safetensors"
    assert state_file.exists() and (w / "toy-tiny.safetensors").exists()
    done = train(EvalToyTask(), cfg, tmp_path / "m2", weights_dir=w, resume=True,
                 progress=False)  # m2 holds no checkpoint: the state file is the start
    assert _same(load_file(str(done)), full, atol=1e-6)
    prov = json.loads(done.with_suffix(".json").read_text())
    assert prov["complete"] and [s["from_step"] for s in prov["sessions"]] == [0, 2]
    assert [e["step"] for e in prov["evals"]] == [0, 2, 4, 6] and not state_file.exists()
    with pytest.raises(ConfigError, match="no checkpoint at .* and no state at"):
        train(EvalToyTask(), cfg, tmp_path / "m3", weights_dir=tmp_path / "none", resume=True,
              progress=False)


def test_a_stop_file_ends_the_segment_at_the_next_checkpoint(tmp_path):
    """``touch <out>/STOP`` while a run trains (no ``minutes``): it ends at the next checkpoint
    as a segment (weights, provenance complete: false, state), and the file is removed."""
    from occbench.train.loop import STOP_FILE

    cfg = _cfg(tmp_path, steps=5, checkpoint_every=2)  # the last step is no multiple of 2
    full = load_file(str(train(EvalToyTask(), cfg, tmp_path / "full", progress=False)))
    out, w = tmp_path / "run", tmp_path / "weights"
    out.mkdir()
    (out / STOP_FILE).touch()
    assert train(EvalToyTask(), cfg, out, weights_dir=w, progress=False) is None
    prov = json.loads((w / "toy-tiny.json").read_text())
    assert (prov["complete"], prov["steps"]) == (False, 2)
    assert (w / "toy-tiny.state.safetensors").exists() and not (out / STOP_FILE).exists()
    done = train(EvalToyTask(), cfg, out, weights_dir=w, resume=True, progress=False)
    assert json.loads(done.with_suffix(".json").read_text())["steps"] == 5
    assert _same(load_file(str(done)), full, atol=1e-6)  # as one uninterrupted run


class RunawayTask(EvalToyTask):
    """EvalToyTask whose loss is multiplied by ``blowup`` from its ``at``-th call on."""

    def __init__(self, at: int, blowup: float):
        super().__init__()
        self.at, self.blowup, self.calls = at, blowup, 0

    def loss(self, model, batch, cfg):
        self.calls += 1
        loss, metrics = super().loss(model, batch, cfg)
        return (loss * self.blowup if self.calls >= self.at else loss), metrics


@pytest.mark.parametrize("blowup", [1e4, float("nan")])
def test_a_runaway_loss_stops_the_run_before_it_writes_weights(tmp_path, blowup):
    """Step 66's loss is 1e4 times the others (or NaN): the run stops there with one error
    naming the step and the checkpoints kept, writes no weights, and keeps, beside the last
    periodic checkpoint (step 63), the checkpoint of the last held-out evaluation (step 60)."""
    from occbench.train.loop import DIVERGE_MIN, EVAL_CHECKPOINT, TrainingDiverged

    cfg = _cfg(tmp_path, steps=80, checkpoint_every=7, eval_every=20, lr=0.01, warmup=0)
    out, w = tmp_path / "run", tmp_path / "weights"
    with pytest.raises(TrainingDiverged, match=r"diverged at step 66: loss = ") as info:
        train(RunawayTask(66, blowup), cfg, out, weights_dir=w, progress=False)
    assert "checkpoint-eval.pt (held-out evaluation at step 60" in str(info.value)
    assert not (w / "toy-tiny.safetensors").exists() and 66 > DIVERGE_MIN
    assert torch.load(out / EVAL_CHECKPOINT, weights_only=False)["step"] == 60
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 63
    # the same run with a loss 3x higher from there on (no runaway) completes
    assert train(RunawayTask(66, 3.0), cfg, tmp_path / "calm", progress=False) is not None


def test_summary_of_a_figure_a_resumed_run_added():
    """A figure logged only from a resumed segment on: its mean over the rows that have it,
    absent from the curve points before it (not NaN)."""
    history = [{"step": i, "loss": float(i)} for i in range(1, 5)]
    history += [{"step": i, "loss": float(i), "d_m": 10.0 * i} for i in range(5, 9)]
    final, curve = _summary(history, points=2, tail=3)
    assert final == {"loss": 7.0, "d_m": 70.0}
    assert curve == [{"step": 4, "loss": 2.5}, {"step": 8, "loss": 6.5, "d_m": 65.0}]


def test_summary_leaves_an_idle_phase_out_of_its_means():
    """Two stages (C2FDAN): the coarse phase c idles in stage 2, the generator g in stage 1,
    each reporting loss 0 and zero figures there; a curve window straddling the switch
    averages each phase's figures over its own active steps only, and the final figures (all
    stage 2) have none of the idle phase's."""
    stage1 = [{"step": i, "loss_c": 2.0, "l1_c": 1.0, "loss_g": 0.0, "adv_g": 0.0}
              for i in (1, 2, 3)]
    stage2 = [{"step": i, "loss_c": 0.0, "l1_c": 0.0, "loss_g": 4.0, "adv_g": 0.5}
              for i in (4, 5, 6)]
    final, curve = _summary(stage1 + stage2, points=2, tail=2)
    assert final == {"loss_g": 4.0, "adv_g": 0.5}
    assert curve == [{"step": 3, "loss_c": 2.0, "l1_c": 1.0},
                     {"step": 6, "loss_g": 4.0, "adv_g": 0.5}]
    _, straddling = _summary(stage1 + stage2, points=1)
    assert straddling == [{"step": 6, "loss_c": 2.0, "l1_c": 1.0, "loss_g": 4.0, "adv_g": 0.5}]
