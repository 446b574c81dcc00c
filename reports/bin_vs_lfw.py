"""An insightface ``.bin`` written from all 6,000 LFW pairs, scored beside occbench's LFW protocol.

    OCCBENCH_DATA=../shared/data python reports/bin_vs_lfw.py --out reports/bin_vs_lfw.md

The ``.bin`` holds occbench's aligned 112x112 faces, PNG-encoded, in ``pairs.txt`` order (so
insightface's contiguous folds are LFW's own folds). Both sets are scored with the shared
MobileFaceNet (``onnx``, flip-sum), clean and under one occluded condition, by both accuracy
definitions (``accuracy``: occbench's 10-fold protocol; ``accuracy_insightface``: insightface's
``verification.py``). Clean faces are the same pixels in both, so the clean figures must agree
exactly; occluded faces of the ``.bin`` sit under other keys, hence other occlusion instances,
and agree only within the folds' spread. The table goes to ``--out`` (Markdown) and stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import sys
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image

from occbench.align import align_dataset
from occbench.data import load_dataset
from occbench.data.pairs import dataset_pairs
from occbench.imageio import atomic_write
from occbench.runner import RunConfig, run

HERE = Path(__file__).resolve().parent
ONNX = {"mean": (123.675, 116.28, 103.53), "std": (58.395, 57.12, 57.375), "flip": True}


def write_bin(data_root: Path, path: Path) -> int:
    """Write the LFW pairs as an insightface ``.bin`` at ``path``; returns the number of pairs."""
    lfw = load_dataset("lfw", data_root)
    pairs = dataset_pairs(lfw)
    faces = align_dataset(lfw, progress=True)

    def png(key: str) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(faces.face(key)).save(buf, format="PNG")
        return buf.getvalue()

    bins = [png(k) for p in pairs for k in (p.key1, p.key2)]
    atomic_write(path, pickle.dumps((bins, [p.same for p in pairs]), protocol=4))
    return len(pairs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("OCCBENCH_DATA"), help="data root")
    p.add_argument("--model-file", default=None,
                   help="the ONNX recognizer (default: <data>/../models/mobilefacenet-foamliu.onnx)")
    p.add_argument("--condition", default="rect:eyes:0.1", help="form:position:size")
    p.add_argument("--out", default=str(HERE / "bin_vs_lfw.md"))
    args = p.parse_args(argv)
    if not args.data:
        p.error("give --data or set OCCBENCH_DATA")
    root = Path(args.data)
    onnx = dict(ONNX, path=args.model_file or str(root.parent / "models" / "mobilefacenet-foamliu.onnx"))
    form, position, size = args.condition.split(":")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "lfw.bin"
        n = write_bin(root, path)
        print(f"wrote {path.name}: {n} pairs, {path.stat().st_size / 2**20:.1f} MiB")
        for name in ("lfw", f"bin:{path}"):
            cfg = RunConfig(recognizer="onnx", recognizer_args=onnx, protocols=("verification",),
                            forms=(form,), positions=(position,), sizes=(float(size),),
                            pairs_set=name)
            df = run(cfg, root, tmp / "out", progress=True)
            df = df[df.metric.isin(["accuracy", "accuracy_insightface"])]
            for r in df.itertuples():
                rows.append({"set": "lfw (pairs.txt)" if name == "lfw" else "lfw.bin",
                             "condition": "clean" if r.form == "none" else args.condition,
                             "metric": r.metric, "value %": round(100 * r.value, 2)})
    table = (pd.DataFrame(rows).pivot_table(index=["condition", "metric"], columns="set",
                                            values="value %").reset_index())
    text = table.to_markdown(index=False)
    print(text)
    command = " ".join(["python reports/bin_vs_lfw.py"] + (sys.argv[1:] if argv is None else argv))
    atomic_write(args.out, f"`{command}` (onnx MobileFaceNet, flip-sum; {n} pairs):\n\n{text}\n".encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
