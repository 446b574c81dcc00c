"""Does the ``dlib`` recognizer's torch engine compute what dlib does? (issue 31)

    OCCBENCH_DATA=../shared/data python reports/dlib_equality.py [--limit 1000]

On the first ``--limit`` LFW faces as occbench aligns them (the aligned-face cache), warped to
dlib's 150x150 chips once (:meth:`DlibRecognizer.chips`), the raw 128-d descriptors of the
torch engine (each ``--precisions``: ``auto`` is bf16 on a bf16-native CPU, else fp32) are
compared with dlib's ``compute_face_descriptor`` (the ``dlib`` engine) on the same chips.
Prints per precision the minimum and mean cosine over the faces and the largest absolute
difference of the raw descriptors, and every engine's faces/s (the descriptors alone, after
one warm-up batch; torch on every core it uses, dlib in one process per CPU unless
``--workers``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def timed(rec, chips: np.ndarray) -> tuple[np.ndarray, float]:
    """(descriptors, faces/s) of ``rec.describe`` on ``chips``, after a warm-up batch."""
    rec.describe(chips[:rec.batch_size])
    start = time.perf_counter()
    desc = rec.describe(chips)
    return desc, len(chips) / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("OCCBENCH_DATA"), help="data root")
    p.add_argument("--limit", type=int, default=1000, help="the first LIMIT LFW faces")
    p.add_argument("--precisions", default="auto,fp32",
                   help="torch engine precisions, comma-separated (auto, fp32, bf16)")
    p.add_argument("--workers", type=int, default=None,
                   help="dlib engine processes (default: every CPU)")
    args = p.parse_args(argv)
    if not args.data:
        p.error("give --data or set OCCBENCH_DATA")

    import torch

    from occbench.align import align_dataset
    from occbench.data import load_dataset
    from occbench.models.dlib_recognizer import DlibRecognizer

    faces = align_dataset(load_dataset("lfw", args.data), limit=args.limit,
                          progress=sys.stderr.isatty())
    dlib_engine = DlibRecognizer(engine="dlib", workers=args.workers)
    chips = dlib_engine.chips(faces.images)
    print(f"{len(chips)} LFW faces ({int(faces.aligned.sum())} aligned on detected landmarks), "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads, "
          f"dlib on {dlib_engine.workers} processes")

    ref, dlib_rate = timed(dlib_engine, chips)
    print(f"dlib (compute_face_descriptor): {dlib_rate:.1f} faces/s, descriptor norm "
          f"{np.linalg.norm(ref, axis=1).mean():.3f} on average")
    for precision in args.precisions.split(","):
        rec = DlibRecognizer(precision=precision.strip())
        desc, rate = timed(rec, chips)
        cos = cosine(desc, ref)
        print(f"torch {precision} ({rec.precision} on {rec.device}): {rate:.1f} faces/s "
              f"({rate / dlib_rate:.1f}x dlib); cosine to dlib min {cos.min():.8f}, "
              f"mean {cos.mean():.8f}; max abs difference {np.abs(desc - ref).max():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
