"""How ROF's crops align: the detection rate of each face detector per ROF set, and how far the
detected five points lie from the given ones (the official release's, see
occbench.data.rof_landmarks), on a seeded sample of each set.

    python reports/rof_alignment.py --data ROOT [--hog 150] [--cnn 50] [--lfw 20] > reports/rof_alignment.md

ROOT holds ROF/ with the landmarks5.tsv files (`occbench data rof-landmarks`) and lfw/ (a
speed and rate reference without given points). Distances are the mean over the five points,
divided by the given eye distance.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from occbench.align import detect_landmarks5
from occbench.data import load_dataset
from occbench.imageio import decode_rgb


def measure(ds, detector: str, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(ds.samples), min(n, len(ds.samples)), replace=False)
    found, errors, t0 = 0, [], time.perf_counter()
    for i in pick:
        s = ds.samples[i]
        pts = detect_landmarks5(decode_rgb(Path(s.path).read_bytes(), s.path), detector)
        if pts is None:
            continue
        found += 1
        given = (ds.landmarks5 or {}).get(s.key)
        if given is not None:
            errors.append(np.linalg.norm(pts - given, axis=1).mean()
                          / np.linalg.norm(given[1] - given[0]))
    errors = np.array(errors)
    return {"sampled": len(pick), "found": found,
            "s_per_image": (time.perf_counter() - t0) / max(len(pick), 1),
            "median": float(np.median(errors)) if len(errors) else np.nan,
            "p90": float(np.quantile(errors, 0.9)) if len(errors) else np.nan}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--hog", type=int, default=150, help="images sampled per set for HOG")
    p.add_argument("--cnn", type=int, default=50, help="images sampled per set for the CNN")
    p.add_argument("--lfw", type=int, default=20, help="LFW images sampled (speed reference)")
    args = p.parse_args()
    print("| set | images | given points | detector | sampled | found | found % | s / image "
          "| distance to given: median | 90 % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for condition in ("neutral", "sunglasses", "masked"):
        ds = load_dataset(f"rof:{condition}", args.data)
        if not ds.landmarks5:
            raise SystemExit(f"rof:{condition} has no landmarks5.tsv: run occbench data "
                             "rof-landmarks first")
        for detector, n in (("hog", args.hog), ("cnn", args.cnn)):
            m = measure(ds, detector, n)
            _line(f"rof:{condition}", ds, detector, m)
    if args.lfw:
        lfw = load_dataset("lfw", args.data)
        for detector in ("hog", "cnn"):
            _line("lfw", lfw, detector, measure(lfw, detector, args.lfw))


def _line(name: str, ds, detector: str, m: dict) -> None:
    given = len(ds.landmarks5) if ds.landmarks5 else 0
    print(f"| {name} | {len(ds)} | {given} | {detector} | {m['sampled']} | {m['found']} | "
          f"{100 * m['found'] / m['sampled']:.0f} | {m['s_per_image']:.2f} | "
          f"{m['median']:.3f} | {m['p90']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
