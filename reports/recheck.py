"""Recompute a few conditions of the committed sweep and compare them with the stored rows.

    OCCBENCH_DATA=../shared/data python reports/recheck.py --model occluded --recognizer onnx \\
        --protocol identification,verification,reconstruction --conditions rect:eyes:0.1,text:nose:0.3

Each (model, recognizer) runs with the recognizer options stored in the sweep's rows, into a
scratch results folder; every recomputed row is matched with the stored row of the same
(model, recognizer, dataset, protocol, form, position, size, metric, D, rank) and the largest
difference of value / interval bounds is printed. Exit status 1 if any differs by more than
``--tol`` (default 1e-9) or has no stored counterpart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from occbench.results import ID_COLUMNS, read_results
from occbench.runner import RunConfig, run

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(HERE / "sweep"))
    p.add_argument("--model", required=True)
    p.add_argument("--recognizer", required=True)
    p.add_argument("--protocol", required=True, help="comma list")
    p.add_argument("--conditions", required=True, help="form:position:size,...")
    p.add_argument("--tol", type=float, default=1e-9)
    args = p.parse_args(argv)

    stored = read_results(args.results)
    mine = stored[(stored.model == args.model) & (stored.recognizer == args.recognizer)]
    if mine.empty:
        print(f"no stored rows of {args.model} x {args.recognizer}", file=sys.stderr)
        return 1
    rec_args = json.loads(mine.config.iloc[0]).get("recognizer_args") or {}
    rec_args = {k: tuple(v) if isinstance(v, list) else v for k, v in rec_args.items()}
    data = Path(os.environ["OCCBENCH_DATA"])
    if "path" in rec_args:  # an ONNX file of ../shared/models, wherever the sweep ran
        rec_args["path"] = str(data.parent / "models" / Path(rec_args["path"]).name)
    frames = []
    with tempfile.TemporaryDirectory() as out:
        for i, spec in enumerate(args.conditions.split(",")):
            form, position, size = spec.split(":")
            cfg = RunConfig(model=args.model, recognizer=args.recognizer, forms=(form,),
                            positions=(position,), sizes=(float(size),),
                            protocols=tuple(args.protocol.split(",")), include_clean=i == 0,
                            recognizer_args=rec_args)
            frames.append(run(cfg, data, Path(out), progress=False))
    new = pd.concat(frames, ignore_index=True)
    keys = [c for c in ID_COLUMNS if c in new.columns]
    known = set(stored.metric)
    added = sorted(set(new.metric) - known)  # metrics the stored sweep predates: not compared
    new = new[new.metric.isin(known)]
    both = new.merge(stored, on=keys, how="left", suffixes=("", "_stored"), indicator=True)
    missing = both[both["_merge"] != "both"]
    if len(missing):
        print(missing[keys + ["value"]].head(10).to_string(index=False))
    if added:
        print(f"metrics not in the stored sweep (not compared): {', '.join(added)}")
    diffs = {c: np.nanmax(np.abs(both[c] - both[f"{c}_stored"]).to_numpy())
             for c in ("value", "ci_low", "ci_high")}
    by_protocol = both.groupby("protocol").size().to_dict()
    print(f"{len(new)} rows recomputed ({by_protocol}); without a stored row: {len(missing)}; "
          f"largest |difference|: " + ", ".join(f"{c} {d:.3g}" for c, d in diffs.items()))
    return int(len(missing) > 0 or any(d > args.tol for d in diffs.values()))


if __name__ == "__main__":
    raise SystemExit(main())
