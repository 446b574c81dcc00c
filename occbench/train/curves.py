"""Training curves: the held-out figures of a run (``evals`` in its provenance or checkpoint)
against the images seen, one line per run segment, beside the training loss.

    occbench plot --training baselines/resnet50/weights/resnet50-mid.json \\
        --out reports/figures            # -> reports/figures/training_resnet50.png

A curve still rising at its right end says: train on. A provenance file is read as written
by :func:`occbench.train.loop.train`; a checkpoint (``checkpoint.pt``) of a run still going
draws the same figure from what it holds so far.
"""

from __future__ import annotations

import json
from pathlib import Path

from occbench.errors import ConfigError
from occbench.imageio import save_figure

#: the training losses a curve shows, each as its own line: one optimiser's (``loss``), or
#: C2FDAN's coarse (stage 1) and generator (stage 2) losses
LOSSES = ("loss", "loss_c", "loss_g")


def read_run(path: str | Path) -> dict:
    """``{"model", "evals", "loss": {name: [(images, value)]}, "reference": {metric: value}}`` of a
    provenance ``.json`` or a ``checkpoint.pt``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such provenance or checkpoint file")
    if path.suffix == ".json":
        try:
            prov = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path}: not a provenance file ({exc})") from None
        cfg, evals = prov.get("config", {}), prov.get("evals") or []
        model = prov.get("model", path.stem)
        rows = prov.get("curve", [])
        held = (prov.get("data") or {}).get("held_out") or {}
        world = prov.get("world_size", 1)
    else:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=False)
        cfg, evals = state.get("config", {}), state.get("evals") or []
        model = path.parent.name
        rows = state.get("history", [])
        held, world = {}, state.get("world_size", 1)
    if not evals:
        raise ConfigError(f"{path}: the run has no held-out figures (train with eval_every > 0)")
    per_step = cfg.get("batch_size", 1) * world  # images a step
    # the loss of each optimiser (C2FDAN: loss_c in stage 1, loss_g in stage 2); a phase idle
    # in a stage reports 0, which is not part of its curve
    loss = {k: [(r["step"] * per_step, r[k]) for r in rows if r.get(k)]
            for k in LOSSES if any(r.get(k) for r in rows)}
    # what the curves are measured against (the teacher's accuracy; the occluded input's
    # figures for a completer), as the task recorded them
    reference = held.get("reference") or {}
    return {"model": model, "evals": evals, "loss": loss, "reference": reference}


def plot_training(path: str | Path, out: str | Path, title: str | None = None) -> Path:
    """Draw ``training_<model>.png`` into the folder ``out``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = read_run(path)
    evals = run["evals"]
    metrics = [k for k in evals[-1] if k not in ("step", "images", "session")]
    panels = metrics + (["training loss"] if run["loss"] else [])
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    sessions = sorted({e["session"] for e in evals})
    for ax, metric in zip(axes.flat, panels, strict=False):
        if metric == "training loss":
            for name, pts in run["loss"].items():
                x, y = zip(*pts, strict=True)
                ax.plot([v / 1e6 for v in x], y, lw=1, label=name)
            if len(run["loss"]) > 1:
                ax.legend(fontsize=8)
        else:
            for s in sessions:
                pts = [(e["images"] / 1e6, e[metric]) for e in evals
                       if e["session"] == s and metric in e]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=f"segment {s + 1}")
            if metric in run["reference"]:
                ax.axhline(run["reference"][metric], ls="--", color="0.5", lw=1, label="reference")
        ax.set_title(metric)
        ax.set_xlabel("images seen (millions)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title or f"{run['model']}: held-out figures during training")
    fig.tight_layout()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dest = out / f"training_{run['model']}.png"
    save_figure(fig, dest, dpi=120)
    plt.close(fig)
    return dest
