"""Does bf16 autocast change what a training learns? (issue 30)

    OCCBENCH_DATA=../shared/data OCCBENCH_EXTRA=... python reports/precision_check.py \\
        --model resnet50 --config distill --steps 300

Three short runs of one config from the same initial weights: float32 with seed s, bf16 with
seed s (the same sample order, augmentation and initialisation), and float32 with seed s + 1
(run-to-run noise: another order and augmentation). Prints for each the mean training loss
over each third of the run, the held-out figures at the end and the img/s, then the bf16 run's
difference to float32 against the two float32 runs' difference. bf16 learns the same thing
when its difference is of the order of the seeds' difference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def run(model: str, base: Path, steps: int, amp: bool, seed: int, holdout: int, limit,
        out: Path, data_root: str) -> dict:
    from occbench.train.cli import train_main

    cfg = {"base": str(base.resolve()), "steps": steps, "amp": amp, "seed": seed,
           "holdout": holdout, "eval_every": steps, "checkpoint_every": steps,
           "schedule": "constant"}
    path = out / f"{'bf16' if amp else 'fp32'}-{seed}.json"
    path.write_text(json.dumps(cfg))
    weights = train_main(model, str(path), data_root, out=out / path.stem,
                         weights_dir=out / path.stem, limit=limit, progress=False)
    prov = json.loads(weights.with_suffix(".json").read_text())
    return prov


def main(argv=None) -> int:
    import os

    from occbench.train.cli import config_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--config", default="distill")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, default=1000)
    p.add_argument("--limit", type=int, default=None, help="first N images of each source")
    p.add_argument("--data", default=os.environ.get("OCCBENCH_DATA"))
    args = p.parse_args(argv)
    base = config_path(args.model, args.config)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, amp, seed in (("fp32", False, args.seed), ("bf16", True, args.seed),
                                ("fp32 seed+1", False, args.seed + 1)):
            runs[name] = run(args.model, base, args.steps, amp, seed, args.holdout, args.limit,
                             Path(tmp), args.data)
    thirds = np.array_split(np.arange(args.steps), 3)
    print(f"{args.model} --config {args.config}: {args.steps} steps, constant lr, "
          f"held-out {runs['fp32']['data'].get('held_out', {}).get('faces')} faces")
    table = {}
    for name, prov in runs.items():
        # the provenance's curve is coarse; the checkpoint history is gone with the temp dir,
        # so the thirds are read from the curve points that fall in each third
        curve = prov["curve"]
        loss_key = "loss" if "loss" in curve[0] else "loss_g"
        means = [float(np.mean([c[loss_key] for c in curve if t[0] < c["step"] <= t[-1] + 1]))
                 for t in thirds]
        final = {k: v for k, v in prov["evals"][-1].items()
                 if k not in ("step", "images", "session")}
        table[name] = {"loss": means, **final}
        print(f"{name:12s} {prov['precision']:5s} loss by thirds "
              + " ".join(f"{m:.4f}" for m in means) + " | held-out "
              + " ".join(f"{k} {v:.4f}" for k, v in final.items())
              + f" | {prov['images_per_s']} img/s")
    keys = [k for k in table["fp32"] if k != "loss"]
    print("difference            last-third loss " + " ".join(f"{k:>12s}" for k in keys))
    for a, b in (("bf16", "fp32"), ("fp32 seed+1", "fp32")):
        d = [table[a]["loss"][-1] - table[b]["loss"][-1]] + [table[a][k] - table[b][k]
                                                              for k in keys]
        print(f"{a + ' - ' + b:21s} " + f"{d[0]:+15.4f} " + " ".join(f"{x:+12.4f}" for x in d[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
