"""Which recognizer should C2FDAN's identity losses use (issue 30)? Judge completers trained
with each on the same held-out faces, under every judge.

    OCCBENCH_EXTRA=<snapshots> python reports/extractor_ab.py \\
        --config baselines/c2fdan/configs/extractor-student.json \\
        --weights init=baselines/c2fdan/weights/c2fdan-coarse-small-faces51k.safetensors \\
                  student=<weights dir>/c2fdan-small-extractor-student.safetensors \\
                  teacher=<weights dir>/c2fdan-small-extractor-teacher.safetensors

The held-out faces are the config's (its sources, ``holdout`` and ``seed``: the same faces and
occluders a run of that config measured); each run's own curve judges identity under its own
extractor, which favours it, so here every completer is judged under the ``mid`` student and
under the ONNX teacher alike. A ``c2fdan-coarse`` weights file (no fine network) completes
with its coarse output composed by its mask, as the ``c2fdan-coarse`` completer does.
``--completers bvmr-51k,...`` judges registered completers on the same faces beside them
(through their own ``complete``, as a sweep runs them).
Prints one row per completer: PSNR, SSIM, mask IoU per form, and the identity cosine to the
clean face under each judge (the occluded input's first).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
ONNX = REPO.parent / "shared" / "models" / "mobilefacenet-foamliu.onnx"
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def generator_of(path: Path):
    """(network, variant) of a C2FDAN weights file: the full generator, or the coarse one
    when the file holds no fine network."""
    from safetensors.torch import load_file

    from baselines.c2fdan.model import create

    tensors = load_file(str(path))
    variant = "c2fdan" if any(k.startswith("fine.") for k in tensors) else "c2fdan-coarse"
    net = create("small", variant)
    net.load_state_dict(tensors)
    return net.eval(), variant


def main(argv=None) -> None:
    from baselines.c2fdan.task import C2FDANTask, load_recognizer
    from occbench.models import create_completer
    from occbench.models.onnx_torch import OnnxExtractor
    from occbench.train.heldout import HeldOut
    from occbench.train.loop import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="the A/B runs' config (faces, held-out set)")
    ap.add_argument("--weights", nargs="*", default=[], help="name=path of each C2FDAN file")
    ap.add_argument("--completers", default="",
                    help="registered completers to judge beside them (e.g. bvmr-51k,c2fdan-51k)")
    ap.add_argument("--onnx", default=str(ONNX), help="the ONNX teacher (default %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N held-out faces")
    args = ap.parse_args(argv)
    if not args.weights and not args.completers:
        ap.error("name at least one completer: --weights name=path ... or --completers NAMES")
    cfg = TrainConfig.load(args.config)
    task = C2FDANTask("c2fdan", os.environ.get("OCCBENCH_DATA", REPO.parent / "shared" / "data"))
    task.use_sources(cfg)
    _, held = task.split(cfg)
    faces = task.faces.images[held[:args.limit]]
    judges = {"student": load_recognizer("mid"),
              "teacher": OnnxExtractor(args.onnx, mean=MEAN, std=STD)}
    sets = {j: HeldOut(faces, cfg.seed, net) for j, net in judges.items()}
    def judged(figures: dict, judge: str) -> dict:  # identity figures name their judge
        return {f"{k} ({judge})" if k.startswith("idcos") else k: v for k, v in figures.items()}

    row = {"completer": "occluded input"}
    for j, s in sets.items():
        row.update(judged(s.reference, j))
    rows = [row]
    for item in args.weights:
        name, _, path = item.partition("=")
        net, variant = generator_of(Path(path))
        row = {"completer": f"{name} ({variant})"}
        with torch.no_grad():  # completed once (the network composes its output), judged twice
            completions = sets["student"].complete(net)
            for j, s in sets.items():
                row.update(judged(s.score(completions), j))
        rows.append(row)
    for name in filter(None, args.completers.split(",")):
        completer = create_completer(name)
        completions = {form: completer.complete(occ)
                       for form, (occ, _) in sets["student"].occluded.items()}
        row = {"completer": name}
        for j, s in sets.items():
            row.update(judged(s.score(completions), j))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("completer")
    cols = [c for f in ("rect", "text") for c in table.columns
            if c.endswith(f"_{f}") or f"_{f} (" in c]
    print(f"{len(faces)} held-out faces, each occluded once per form (seed {cfg.seed})")
    print(table[cols].round(4).to_markdown())


if __name__ == "__main__":
    main()
