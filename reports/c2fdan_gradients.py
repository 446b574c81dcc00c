"""How much each of C2FDAN's generator losses pulls on the images it shapes (issue 30).

    OCCBENCH_DATA=../shared/data python reports/c2fdan_gradients.py --weights c2fdan-small-faces51k

On ``--n`` FaceScrub faces (default 32) with the training occlusions (seeded), one generator
pass of the committed weights: for every term of Eq. 4, times its weight (the config's), the
L2 norm of its gradient with respect to the fine output I_f and to the coarse output I_c,
per face (batch-mean loss times the batch size, so the figure does not depend on ``--n``);
and the share of I_f's and I_c's pixels the hard clamp to [-1, 1] holds (zero gradient
there), with the share of those the whole loss would move back inside (a gradient the clamp
stops). With ``--weights`` the discriminators are freshly initialised (and the fine network,
if the file is a ``c2fdan-coarse`` one, as a run ``init`` from it starts) (only the generator is
committed), as they were at the start of each stage-2 run before issue 30; ``--checkpoint``
reads generator and discriminators from a training checkpoint (``checkpoint.pt`` of a run),
and then also prints each discriminator's mean probability of "real" for the clean and the
completed faces, over all its outputs and over those that see the occluder.

    python reports/c2fdan_gradients.py --checkpoint ~/.cache/occbench/train/c2fdan-small-campaign/checkpoint.pt
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "baselines" / "c2fdan" / "weights"


def measure(trainer, occluded, clean, mask) -> dict:
    """{term: (|d(w L)/d I_f|, |d(w L)/d I_c|)} per face, and the clamped shares."""
    from baselines.c2fdan.task import WEIGHT_OF

    captured = {}
    hooks = [trainer.generator.fine.head.register_forward_hook(
                 lambda m, i, o: captured.__setitem__("fine", o.detach())),
             trainer.generator.coarse.image.register_forward_hook(
                 lambda m, i, o: captured.__setitem__("coarse", o.detach()))]
    out = trainer.generator(occluded, full=True)
    for h in hooks:
        h.remove()
    parts = trainer.generator_terms(occluded, clean, mask, out)
    n = occluded.shape[0]
    rows, total = {}, 0.0
    for name, value in parts.items():
        term = trainer.weights[WEIGHT_OF[name]] * value * n
        total = total + term
        g_fine, g_coarse = torch.autograd.grad(term, [out.fine, out.coarse], retain_graph=True,
                                               allow_unused=True)
        norm = [0.0 if g is None else float(g.flatten(1).norm(dim=1).mean())
                for g in (g_fine, g_coarse)]
        rows[name] = (float(value.detach()), trainer.weights[WEIGHT_OF[name]], *norm)
    # where the clamp holds a pixel, would the whole loss move it back into [-1, 1]? (a
    # positive gradient lowers a value above 1; a negative one raises a value below -1)
    grads = dict(zip(("fine", "coarse"), torch.autograd.grad(total, [out.fine, out.coarse]),
                     strict=True))
    clamped = {}
    for k, pre in captured.items():
        held = pre.abs() > 1
        inward = ((pre > 1) & (grads[k] > 0)) | ((pre < -1) & (grads[k] < 0))
        clamped[k] = (float(held.float().mean()),
                      float(inward.sum() / held.sum().clamp_min(1)))
    return {"terms": rows, "clamped": clamped}


def print_discriminators(trainer, occluded, clean, mask) -> None:
    """Each discriminator's mean sigmoid on the clean (real) and completed (fake) faces, over
    all its outputs and over those that see the occluder."""
    from baselines.c2fdan.task import where_occluded

    with torch.no_grad():
        fake_in = trainer.generator(occluded, full=True).final
        real = trainer.discriminators(clean, occluded)
        fake = trainer.discriminators(fake_in, occluded)
    seen = trainer.discriminators.overlap(mask, real)
    print(f"{'discriminator':13s} {'real':>6s} {'fake':>6s} {'real@occ':>9s} {'fake@occ':>9s} "
          f"{'outputs@occ':>11s}")
    for k in real:
        one = {k: seen[k]}
        print(f"{k:13s} {float(torch.sigmoid(real[k]).mean()):6.3f} "
              f"{float(torch.sigmoid(fake[k]).mean()):6.3f} "
              f"{float(where_occluded({k: real[k]}, one)):9.3f} "
              f"{float(where_occluded({k: fake[k]}, one)):9.3f} "
              f"{100 * float(seen[k].float().mean()):10.1f}%")
    print(f"{'mean':13s} {'':6s} {'':6s} {float(where_occluded(real, seen)):9.3f} "
          f"{float(where_occluded(fake, seen)):9.3f}")


def main(argv=None) -> int:
    from baselines.c2fdan.discriminators import Discriminators
    from baselines.c2fdan.model import arch_config, create
    from baselines.c2fdan.task import WEIGHTS, C2FDANTrainer, load_recognizer
    from occbench.align import align_dataset
    from occbench.data import load_dataset
    from occbench.models.torch_adapter import to_unit
    from occbench.occlusion import sample_training_occlusion

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="c2fdan-small-faces51k",
                   help="a generator weights file of baselines/c2fdan/weights (stem) or a path")
    p.add_argument("--checkpoint", default=None,
                   help="a training checkpoint: its generator and discriminators")
    p.add_argument("--variant", default="c2fdan")
    p.add_argument("--recognizer", default="mid", help="resnet50 arch of the identity losses")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--data", default=os.environ.get("OCCBENCH_DATA"))
    args = p.parse_args(argv)

    from safetensors.torch import load_file

    path = Path(args.weights)
    if not path.suffix:
        path = WEIGHTS_DIR / f"{args.weights}.safetensors"
    torch.manual_seed(0)
    gen = create("small", args.variant)
    trainer = C2FDANTrainer(gen, Discriminators(arch_config("small")["disc_width"], True),
                            load_recognizer(args.recognizer), weights=WEIGHTS).eval()
    if args.checkpoint:
        path = Path(args.checkpoint).expanduser()
        state = torch.load(path, map_location="cpu", weights_only=False)
        model = state["model"]
        for part in ("generator", "discriminators"):
            getattr(trainer, part).load_state_dict(
                {k[len(part) + 1:]: v for k, v in model.items() if k.startswith(part + ".")})
        print(f"{path}: step {state['step']}")
    else:  # a c2fdan-coarse file has no fine network: it stays fresh, as a run from it starts
        missing, unexpected = gen.load_state_dict(load_file(str(path)), strict=False)
        if unexpected or any(not k.startswith("fine.") for k in missing):
            raise SystemExit(f"{path}: not a C2FDAN generator (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        if missing:
            print(f"{path.name}: no fine network; a freshly initialised one (seed 0)")
    faces = align_dataset(load_dataset("facescrub", args.data), limit=args.n,
                          progress=False).images
    rng = np.random.default_rng(0)
    occ = [sample_training_occlusion(f, rng) for f in faces]
    occluded = to_unit(torch.as_tensor(np.stack([o[0] for o in occ])))
    clean = to_unit(torch.as_tensor(faces))
    mask = torch.as_tensor(np.stack([o[1] for o in occ])).float()[:, None]
    result = measure(trainer, occluded, clean, mask)
    if args.checkpoint:
        print_discriminators(trainer, occluded, clean, mask)
    print(f"{path.name}: gradient norm per face of each weighted term (recognizer "
          f"{args.recognizer}, {args.n} FaceScrub faces, training occlusions)")
    print(f"{'term':8s} {'value':>9s} {'weight':>7s} {'|dI_f|':>10s} {'|dI_c|':>10s}")
    for name, (value, weight, gf, gc) in result["terms"].items():
        print(f"{name:8s} {value:9.4f} {weight:7.2f} {gf:10.4f} {gc:10.4f}")
    for k, (held, inward) in result["clamped"].items():
        print(f"I_{k[0]}: {100 * held:.1f} % of pixels held by the clamp; for "
              f"{100 * inward:.1f} % of those the loss would pull them back inside")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
