"""How far each C2FDAN output's fill is from the clean face inside the true mask, coarse (I_c)
against fine (I_f): the question of issue 17 whether the paper's losses (pixel L1 on I_c only;
perceptual, style and adversarial terms on I_f) leave the fine output's colours unconstrained.

    OCCBENCH_DATA=../shared/data python reports/fill_colour.py --models c2fdan,c2fdan-51k

On the first ``--limit`` FaceScrub probes (default 400), occluded by rect a = 0.1 and text
h = 0.3 at the eyes (occbench's deterministic evaluation occlusions), prints per completer and
output: ``L1`` = mean |output - clean| inside the true mask (0-255 scale, mean over channels),
``colour bias`` = mean over faces of the length of the (R, G, B) difference between the fill's
mean colour and the clean region's mean colour, and the same for the occluded input itself.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch


def fill_error(image, clean, m) -> tuple[float, float]:
    """(L1, colour bias) of ``image`` against ``clean`` inside the masks ``m`` (see above)."""
    image = image.astype(np.float64)
    l1 = np.mean([np.abs(image[i][m[i]] - clean[i][m[i]]).mean() for i in range(len(m))])
    bias = np.mean([np.linalg.norm(image[i][m[i]].mean(0) - clean[i][m[i]].mean(0))
                    for i in range(len(m))])
    return float(l1), float(bias)


def report(model: str, cond: str, output: str, l1: float, bias: float) -> None:
    print(f"{model:14s} {cond} {output:10s} {l1:6.1f} {bias:11.1f}")


def main(argv=None) -> int:
    from occbench.align import align_dataset
    from occbench.data import load_dataset
    from occbench.models import create_completer
    from occbench.models.torch_adapter import to_uint8, to_unit
    from occbench.occlusion import occlude_batch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="c2fdan,c2fdan-51k")
    p.add_argument("--limit", type=int, default=400)
    p.add_argument("--data", default=os.environ.get("OCCBENCH_DATA"))
    args = p.parse_args(argv)
    faces = align_dataset(load_dataset("facescrub", args.data), limit=args.limit, progress=False)
    clean = faces.images.astype(np.float64)
    print(f"{'model':14s} {'condition':14s} {'output':10s} {'L1':>6s} {'colour bias':>11s}")
    for form, size in (("rect", 0.1), ("text", 0.3)):
        occ, masks, _ = occlude_batch(faces.images, faces.keys, form, size, "eyes")
        m = masks.astype(bool)
        cond = f"{form} {size:<9}"
        report("-", cond, "input", *fill_error(occ, clean, m))
        for model in args.models.split(","):
            comp = create_completer(model, device="cpu")
            outs = {"coarse I_c": [], "fine I_f": []}
            with torch.inference_mode():
                for s in range(0, len(occ), 64):
                    out = comp.net(to_unit(torch.as_tensor(occ[s:s + 64])), full=True)
                    outs["coarse I_c"].append(to_uint8(out.coarse).numpy())
                    if out.fine is not None:
                        outs["fine I_f"].append(to_uint8(out.fine).numpy())
            for name, parts in outs.items():
                if parts:
                    report(model, cond, name, *fill_error(np.concatenate(parts), clean, m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
