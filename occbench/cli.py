"""The ``occbench`` command line.

    occbench data check [--data ROOT]
    occbench align --set lfw [--data ROOT] [--limit N]
    occbench occlude --set lfw --form text --position eyes --size 0.3 --out DIR
    occbench run --model c2fdan --position eyes [--recognizer dlib] [--form rect] ...
    occbench report [--results DIR] [--out DIR]
    occbench plot [--results DIR] [--out DIR]
    occbench grid --models c2fdan,bvmr --form rect --position eyes --size 0.1 [--out FILE]
    occbench train NAME --config small
    occbench models

Errors caused by input (a missing data root, an unknown position, a corrupt file) are printed
as one line ``occbench: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from occbench import __version__, options
from occbench.errors import OccbenchError


def _add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="ROOT", help="data root (default: $OCCBENCH_DATA)")


def _cmd_data_check(args: argparse.Namespace) -> int:
    from occbench.data.check import check_data
    from occbench.paths import resolve_data_root

    report = check_data(resolve_data_root(args.data))
    print(report.render())
    return 0 if report.ok else 1


def _cmd_data_sources(args: argparse.Namespace) -> int:
    import os

    import pandas as pd

    from occbench.data.sources import load_training_faces
    from occbench.paths import check_cache, resolve_data_root

    if args.data or os.environ.get("OCCBENCH_DATA"):  # ${OCCBENCH_DATA} in the sources file
        os.environ["OCCBENCH_DATA"] = str(resolve_data_root(args.data))
    check_cache()
    faces, report = load_training_faces(args.sources, limit=args.limit)
    cols = ["source", "reader", "images", "detected", "fallback", "dropped", "people"]
    print(pd.DataFrame(report)[cols].to_string(index=False))
    labelled = int((faces.labels >= 0).sum())
    print(f"\n{len(faces)} faces: {labelled} labelled of {len(faces.identities)} people, "
          f"{len(faces) - labelled} unlabelled")
    return 0


def _cmd_data_rof_landmarks(args: argparse.Namespace) -> int:
    from occbench.data.real_occlusions import ROF_CONDITIONS, ROF_DIR
    from occbench.data.rof_landmarks import (
        LANDMARKS_FILE,
        OFFICIAL,
        match_condition,
        write_landmarks,
    )
    from occbench.errors import DataError
    from occbench.paths import resolve_data_root

    root = resolve_data_root(args.data) / ROF_DIR
    official = Path(args.official) / ROF_DIR
    if not official.is_dir():
        raise DataError(f"{official}: no ROF folder of pickles; --official is a checkout of "
                        f"{OFFICIAL}")
    for condition in ROF_CONDITIONS:
        if not (root / condition).is_dir() or not (official / condition).is_dir():
            print(f"{condition}: skipped (no {root / condition} or {official / condition})")
            continue
        points, c = match_condition(official / condition, root / condition)
        if not points:
            print(f"{condition}: no crop matched an annotated face ({c['images']} images, "
                  f"{c['no_pickle']} of {c['people']} people without a pickle); nothing written")
            continue
        try:
            path = write_landmarks(root / condition / LANDMARKS_FILE, points, OFFICIAL)
        except OSError as exc:
            raise DataError(f"{root / condition / LANDMARKS_FILE}: cannot write "
                            f"({exc.strerror or exc})") from None
        print(f"{condition}: {c['matched']} of {c['images']} images given five points "
              f"({c['exact']} crops exactly their box's size), {c['people_matched']} of "
              f"{c['people']} people matched, {c['no_pickle']} without a pickle -> {path}")
    return 0


def _cmd_align(args: argparse.Namespace) -> int:
    from occbench.align import align_dataset
    from occbench.data import load_dataset
    from occbench.paths import check_cache, resolve_data_root

    ds = load_dataset(args.set, resolve_data_root(args.data))
    check_cache()
    faces = align_dataset(ds, limit=args.limit, workers=args.workers, detector=args.detector)
    print(faces.summary())
    return 0


def _cmd_occlude(args: argparse.Namespace) -> int:
    from occbench.export import export_occluded
    from occbench.occlusion import NO_POSITION, check_spec, get_form
    from occbench.paths import check_cache, resolve_data_root

    if args.position is None:
        if get_form(args.form).positions:
            raise OccbenchError(f"--position is needed for {args.form} "
                                f"({', '.join(get_form(args.form).positions)})")
        args.position = NO_POSITION
    check_spec(args.form, args.size, args.position)  # a bad setting writes nothing
    _out_folder(args.out)
    check_cache()
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


def _out_folder(path) -> Path:
    """The ``--out`` folder, checked writable before any work (else one clear error)."""
    from occbench.paths import writable_folder

    return writable_folder(path, "output folder (--out)", "choose another folder with --out")


def _split(value: str | None, cast=str):
    return None if value in (None, "", "all") else tuple(cast(v) for v in value.split(","))


def _run_config(args: argparse.Namespace, model: str, recognizer: str):
    """The RunConfig of ``run``/``sweep`` options."""
    from occbench.runner import RunConfig

    defaults = RunConfig.__dataclass_fields__
    return RunConfig(
        model=model,
        recognizer=recognizer,
        forms=_split(args.form) or defaults["forms"].default,
        positions=_split(args.position) or defaults["positions"].default,
        sizes=_split(args.size, float),
        protocols=_split(args.protocol),
        distractors=args.distractors,
        exclude=args.exclude,
        seed=args.seed,
        limit=args.limit,
        batch_size=args.batch_size,
        include_clean=not args.no_clean,
        recognizer_args=args.recognizer_args or {},
        model_args=args.model_args or {},
        pairs_set=(f"bin:{args.pairs_set}" if args.pairs_set.endswith(".bin")
                   and not args.pairs_set.startswith("bin:") else args.pairs_set),
        probes=args.probes,
        distractor_set=args.distractor_set,
        real_set=args.real_set,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from occbench.paths import resolve_data_root
    from occbench.report import summary_table
    from occbench.runner import run

    config = _run_config(args, args.model, args.recognizer)
    frame = run(config, resolve_data_root(args.data), Path(args.out), progress=not args.quiet)
    if frame is not None:
        print(summary_table(frame).to_string())
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in frame.attrs.get("timings", {}).items())
        print(f"\n{len(frame)} rows stored in {frame.attrs['part']} ({timings})")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from occbench.paths import resolve_data_root
    from occbench.report import write_report
    from occbench.sweep import sweep

    base = _run_config(args, model="occluded", recognizer="dlib")
    models, recognizers = _split(args.models), _split(args.recognizers)
    if not models or not recognizers:
        raise OccbenchError("--models and --recognizers name at least one model each")
    _out_folder(args.out)
    status = sweep(list(models), list(recognizers), base, resolve_data_root(args.data),
                   Path(args.out), force=args.force, progress=not args.quiet)
    from occbench.results import read_results

    print(write_report(read_results(args.out)))
    print(", ".join(f"{m} x {r}: {s}" for m, r, s in status))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from occbench.report import write_report
    from occbench.results import read_results

    df = read_results(args.results)
    if args.out:
        _out_folder(args.out)
    text = write_report(df, Path(args.out) if args.out else None, _split(args.size),
                        _split(args.form))
    print(text)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from occbench.plots import all_figures, fig7
    from occbench.results import read_results

    if args.training:
        from occbench.train.curves import plot_training

        for path in args.training:
            print(plot_training(path, _out_folder(args.out)))
        return 0

    df = read_results(args.results)
    out = _out_folder(args.out)
    try:
        paths = fig7(df, args.recognizer, out) if args.recognizer else all_figures(df, out)
    except ValueError as exc:  # nothing to plot: say what is missing
        raise OccbenchError(f"{args.results}: {exc}") from None
    if not paths:
        raise OccbenchError(f"{args.results}: no identification or landmark rows to plot")
    for path in paths:
        print(path)
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from occbench.condition import Condition
    from occbench.grid import grid_images, write_grid
    from occbench.occlusion import NO_POSITION, check_spec, get_form
    from occbench.paths import resolve_data_root

    if not get_form(args.form).positions:
        args.position = NO_POSITION
    form, _ = check_spec(args.form, args.size, args.position)
    cond = Condition(form, args.position, args.size, args.seed)
    parts = [form] + ([] if args.position == NO_POSITION else [args.position])
    out = Path(args.out) if args.out else Path(
        "occbench-results") / "_".join(["grid", *parts, f"{args.size:g}"])
    _out_folder(out.parent)
    labels, images = grid_images(resolve_data_root(args.data), _split(args.models) or (),
                                 cond, n=args.n, dataset=args.set, seed=args.seed)
    where = "" if args.position == NO_POSITION else f", {args.position}"
    title = f"{args.set}: {form} occlusion{where}, size {args.size:g}"
    for path in write_grid(labels, images, out, title):
        print(path)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from occbench.paths import check_cache, resolve_data_root
    from occbench.train.cli import train_main

    check_cache()
    for folder in (args.out, args.weights_dir):
        if folder:
            _out_folder(folder)
    path = train_main(args.name, args.config, resolve_data_root(args.data), out=args.out,
                      weights_dir=args.weights_dir, resume=args.resume, steps=args.steps,
                      limit=args.limit, minutes=args.minutes)
    if path is not None:
        print(f"weights: {path}\nprovenance: {path.with_suffix('.json')}")
    elif args.minutes is not None:
        print("segment over before the last step: weights so far, provenance and "
              "<stem>.state.safetensors written beside the weights; continue with the same "
              "command and --resume")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from occbench import registry

    for reg in (registry.completers, registry.recognizers, registry.datasets,
                registry.protocols, registry.forms, registry.trainable):
        print(f"{reg.plural}: {', '.join(reg.describe_names())}")
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Occlusion, protocol and output options shared by ``run`` and ``sweep``."""
    p.add_argument("--form", default=None,
                   help="comma list of occlusion forms (default rect,text; see `occbench models`)")
    p.add_argument("--position", default=None,
                       help="comma list of eyes,nose,mouth,outside (default all four)")
    p.add_argument("--size", default=None,
                       help="comma list of sizes (default the paper's: a 0.05,0.1,0.15; h 0.1,0.3,0.5)")
    p.add_argument("--protocol", default=None,
                   help="comma list of protocols (default identification,verification,"
                        "reconstruction; also landmarks and plug-ins: see `occbench models`)")
    p.add_argument("--probes", default="facescrub",
                   help="probe set of identification and reconstruction (default facescrub)")
    p.add_argument("--distractor-set", default="lfw",
                   help="distractor set of identification (default lfw)")
    p.add_argument("--pairs-set", "--verification-set", dest="pairs_set", default="lfw",
                   help="data set whose pairs verification uses (default lfw: pairs.txt), or "
                        "an insightface .bin file (agedb_30.bin, cfp_fp.bin, ...)")
    p.add_argument("--real-set", default=None,
                   help="real occluded images of the probe set's people, for the protocol "
                        "identification-real (e.g. --probes rof:neutral --real-set rof:masked)")
    p.add_argument("--distractors", type=options.count, default=None,
                       help="largest number of distractors D (default all available)")
    p.add_argument("--exclude", default=None,
                       help="noise/exclusion list file of distractor keys or names to drop")
    p.add_argument("--seed", type=options.seed, default=0, help="occlusion and subset seed (default 0)")
    p.add_argument("--limit", type=options.count, default=None,
                       help="at most N images of each set (quick runs)")
    p.add_argument("--batch-size", type=options.count, default=None, help="images per batch")
    p.add_argument("--recognizer-args", type=options.key_values, default=None, metavar="KEY=VALUE,...",
                   help="recognizer options, e.g. path=model.onnx,mean=123.675/116.28/103.53,"
                        "flip=1 (per-channel values separated by /)")
    p.add_argument("--model-args", type=options.key_values, default=None, metavar="KEY=VALUE,...",
                   help="completer options, e.g. arch=small,weights=path.safetensors")
    p.add_argument("--no-clean", action="store_true",
                   help="leave out the clean condition (e.g. measured by an earlier run)")
    p.add_argument("--out", default="occbench-results",
                       help="results folder: each run adds a part under parts/ (default ./occbench-results)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


class _Parser(argparse.ArgumentParser):
    """argparse with every usage error on one line (``occbench run: error: ...``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p_src = data_sub.add_parser("sources", help="align the training faces of a sources file "
                                                "and report per source")
    _add_data_arg(p_src)
    p_src.add_argument("sources", help="sources file, e.g. baselines/data/faces-51k.json")
    p_src.add_argument("--limit", type=options.count, default=None,
                       help="only the first N images of each source")
    p_src.set_defaults(func=_cmd_data_sources)
    p_rofl = data_sub.add_parser(
        "rof-landmarks", help="write ROF's given five-point landmarks (ROOT/ROF/<condition>/"
                              "landmarks5.tsv) from the official ROF release's pickles")
    _add_data_arg(p_rofl)
    p_rofl.add_argument("--official", required=True, metavar="DIR",
                        help="a checkout of github.com/ekremerakin/RealWorldOccludedFaces "
                             "(its ROF/<condition>/*.pkl)")
    p_rofl.set_defaults(func=_cmd_data_rof_landmarks)

    p_align = sub.add_parser("align", help="detect, align to 112x112 and cache a data set's faces")
    _add_data_arg(p_align)
    p_align.add_argument("--set", required=True, help="data set name (lfw, facescrub, celeba, ...)")
    p_align.add_argument("--limit", type=options.count, default=None, help="only the first N images")
    p_align.add_argument("--workers", type=options.count, default=None, help="processes (default: CPUs)")
    p_align.add_argument("--detector", choices=("hog", "cnn", "given"), default=None,
                         help="face detector: hog (dlib's HOG, the default of the evaluation sets), "
                              "cnn (dlib's CNN: slower, finds more occluded faces; its own cache) "
                              "or given (the set's own five points, e.g. ROF's landmarks5.tsv; "
                              "HOG where it gives none); default: the set's own")
    p_align.set_defaults(func=_cmd_align)

    p_occ = sub.add_parser("occlude", help="export occluded faces in the paper's gallery layout")
    _add_data_arg(p_occ)
    p_occ.add_argument("--set", required=True, help="data set name (lfw, facescrub, ...)")
    p_occ.add_argument("--form", required=True, help="occlusion form: rect (alias square), text, ...")
    p_occ.add_argument("--position", default=None,
                       help="eyes, nose, mouth or outside (forms without positions: none)")
    p_occ.add_argument("--size", required=True, type=float, help="area ratio a or height ratio h")
    p_occ.add_argument("--out", required=True, help="output folder")
    p_occ.add_argument("--seed", type=options.seed, default=0, help="occlusion seed (default 0)")
    p_occ.add_argument("--limit", type=options.count, default=None, help="only the first N images")
    p_occ.add_argument("--workers", type=options.count, default=None, help="processes (default: CPUs)")
    p_occ.set_defaults(func=_cmd_occlude)

    p_run = sub.add_parser("run", help="evaluate a completer (and recognizer) under occlusion")
    _add_data_arg(p_run)
    p_run.add_argument("--model", default="occluded",
                       help="completer under test (default occluded; see `occbench models`)")
    p_run.add_argument("--recognizer", default="dlib", help="recognizer (default dlib)")
    _add_run_options(p_run)
    p_run.set_defaults(func=_cmd_run)

    p_sw = sub.add_parser("sweep", help="every model x recognizer into one results table")
    _add_data_arg(p_sw)
    p_sw.add_argument("--models", default="occluded,clean",
                      help="completers, comma-separated (default occluded,clean)")
    p_sw.add_argument("--recognizers", default="dlib",
                      help="recognizers, comma-separated (default dlib)")
    _add_run_options(p_sw)
    p_sw.add_argument("--force", action="store_true",
                      help="redo parts sweep.json records as finished")
    p_sw.set_defaults(func=_cmd_sweep)

    p_rep = sub.add_parser("report", help="markdown and CSV tables from a results table")
    p_rep.add_argument("--results", default="occbench-results",
                       help="results folder or one .parquet file (default ./occbench-results)")
    p_rep.add_argument("--out", default=None, help="folder to write report.md and results.csv")
    p_rep.add_argument("--size", default=None,
                       help="Table I over these sizes only, e.g. rect:0.1,text:0.3 (a bare "
                            "number: both forms; default all sizes)")
    p_rep.add_argument("--form", default=None,
                       help="Table I over these occlusion forms only, e.g. rect,text (default all)")
    p_rep.set_defaults(func=_cmd_report)

    p_plot = sub.add_parser("plot", help="the paper's Fig. 7 and Fig. 8 from a results table")
    p_plot.add_argument("--results", default="occbench-results",
                        help="results folder or one .parquet file (default ./occbench-results)")
    p_plot.add_argument("--out", default="occbench-results/figures",
                        help="folder for the PNG and PDF files (default occbench-results/figures)")
    p_plot.add_argument("--recognizer", default=None,
                        help="only Fig. 7 of this recognizer (default: every recognizer + Fig. 8)")
    p_plot.add_argument("--training", nargs="+", default=None, metavar="FILE",
                        help="instead: held-out training curves of these provenance .json or "
                             "checkpoint.pt files (training_<model>.png)")
    p_plot.set_defaults(func=_cmd_plot)

    p_grid = sub.add_parser("grid", help="qualitative grid: occluded / completers / clean")
    _add_data_arg(p_grid)
    p_grid.add_argument("--models", default="", help="completers, comma-separated")
    p_grid.add_argument("--form", default="rect", help="occlusion form (default rect)")
    p_grid.add_argument("--position", default="eyes", help="eyes, nose, mouth or outside")
    p_grid.add_argument("--size", type=float, default=0.1, help="area/height ratio (default 0.1)")
    p_grid.add_argument("--set", default="facescrub", help="data set (default facescrub)")
    p_grid.add_argument("--n", type=options.count, default=8, help="faces (columns), default 8")
    p_grid.add_argument("--seed", type=options.seed, default=0, help="face and occlusion seed")
    p_grid.add_argument("--out", default=None, help="output path without extension")
    p_grid.set_defaults(func=_cmd_grid)

    p_tr = sub.add_parser("train", help="train a model of baselines/ (resnet50, c2fdan, bvmr, ...)")
    _add_data_arg(p_tr)
    from occbench import registry

    p_tr.add_argument("name", help="trainable model: " + ", ".join(registry.trainable.names()))
    p_tr.add_argument("--config", default="small",
                      help="config name in baselines/<model>/configs/ or a JSON file (default small)")
    p_tr.add_argument("--steps", type=options.count, default=None, help="override the config's steps")
    p_tr.add_argument("--minutes", type=float, default=None,
                      help="end this run segment after M minutes of wall time, writing the "
                           "weights so far, their provenance and the whole training state "
                           "(<stem>.state.safetensors) beside them to commit; --resume "
                           "continues from that state on a fresh machine (a file STOP in "
                           "the checkpoint folder ends the segment the same way, at its next "
                           "checkpoint)")
    p_tr.add_argument("--limit", type=options.count, default=None, help="only the first N training images")
    p_tr.add_argument("--out", default=None,
                      help="checkpoint folder (default $OCCBENCH_CACHE/train/<weights stem>, "
                           "e.g. c2fdan-small-campaign)")
    p_tr.add_argument("--weights-dir", default=None,
                      help="where the final weights go (default baselines/<model>/weights)")
    p_tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p_tr.set_defaults(func=_cmd_train)

    p_mod = sub.add_parser("models", help="list what is registered: completers, recognizers, "
                                          "data sets, protocols, occlusion forms, trainables")
    p_mod.set_defaults(func=_cmd_models)
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
