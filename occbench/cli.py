"""The ``occbench`` command line.

    occbench data check [--data ROOT]
    occbench align --set lfw [--data ROOT] [--limit N]
    occbench occlude --set lfw --form text --position eyes --size 0.3 --out DIR

Errors caused by input (a missing data root, an unknown position, a corrupt file) are printed
as one line ``occbench: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from occbench import __version__
from occbench.errors import OccbenchError


def _add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="ROOT", help="data root (default: $OCCBENCH_DATA)")


def _cmd_data_check(args: argparse.Namespace) -> int:
    from occbench.data.check import check_data
    from occbench.paths import resolve_data_root

    report = check_data(resolve_data_root(args.data))
    print(report.render())
    return 0 if report.ok else 1


def _cmd_align(args: argparse.Namespace) -> int:
    from occbench.align import align_dataset
    from occbench.data import load_dataset
    from occbench.paths import resolve_data_root

    ds = load_dataset(args.set, resolve_data_root(args.data))
    faces = align_dataset(ds, limit=args.limit, workers=args.workers)
    print(faces.summary())
    return 0


def _cmd_occlude(args: argparse.Namespace) -> int:
    from occbench.export import export_occluded
    from occbench.paths import resolve_data_root

    summary = export_occluded(
        data_root=resolve_data_root(args.data),
        set_name=args.set,
        form=args.form,
        position=args.position,
        size=args.size,
        out=args.out,
        seed=args.seed,
        limit=args.limit,
        workers=args.workers,
    )
    print(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="occbench",
        description="Benchmark occluded face recognition and blind face completion.",
    )
    parser.add_argument("--version", action="version", version=f"occbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p_data = sub.add_parser("data", help="inspect data sets")
    data_sub = p_data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p_check = data_sub.add_parser("check", help="report what the data root holds and what is missing")
    _add_data_arg(p_check)
    p_check.set_defaults(func=_cmd_data_check)

    p_align = sub.add_parser("align", help="detect, align to 112x112 and cache a data set's faces")
    _add_data_arg(p_align)
    p_align.add_argument("--set", required=True, help="data set name (lfw, facescrub, celeba, ...)")
    p_align.add_argument("--limit", type=int, default=None, help="only the first N images")
    p_align.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    p_align.set_defaults(func=_cmd_align)

    p_occ = sub.add_parser("occlude", help="export occluded faces in the paper's gallery layout")
    _add_data_arg(p_occ)
    p_occ.add_argument("--set", required=True, help="data set name (lfw, facescrub, ...)")
    p_occ.add_argument("--form", required=True, help="rect (alias square) or text")
    p_occ.add_argument("--position", required=True, help="eyes, nose, mouth or outside")
    p_occ.add_argument("--size", required=True, type=float, help="area ratio a or height ratio h")
    p_occ.add_argument("--out", required=True, help="output folder")
    p_occ.add_argument("--seed", type=int, default=0, help="occlusion seed (default 0)")
    p_occ.add_argument("--limit", type=int, default=None, help="only the first N images")
    p_occ.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    p_occ.set_defaults(func=_cmd_occlude)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OccbenchError as exc:
        print(f"occbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("occbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
