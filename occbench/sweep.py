"""``occbench sweep``: every model x recognizer over the chosen occlusions, into one table.

    occbench sweep --models occluded,clean,bvmr,c2fdan --recognizers dlib,resnet50 \\
        --out reports/sweep

Each (model, recognizer) is one :func:`occbench.runner.run` (same options as ``occbench
run``), stored as one part of the results folder ``<out>`` (``occbench.results``); the data sets are loaded and aligned once for
the whole sweep. Resumable at two levels: a finished (model, recognizer, settings) is recorded
in ``<out>/sweep.json`` with the cache tags (name, version, options) of its two models, and
skipped when the sweep is run again unless a model's tag changed since (retrained weights: the
part runs again and its rows replace the old ones; ``force=True`` redoes every part),
and an interrupted one resumes from the feature cache. ``sweep.json`` also records, for each
finished part, the command, the occbench commit and the wall time.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from occbench.imageio import atomic_write, locked
from occbench.results import git_commit
from occbench.runner import RunConfig, run

STATE = "sweep.json"


def _settings_key(config: RunConfig) -> str:
    d = asdict(config)
    d.pop("conditions")
    if d["include_clean"]:  # the default, left out: keys of states written before it existed hold
        d.pop("include_clean")
    for name, default in (("recognizer_args", {}), ("model_args", {}), ("pairs_set", "lfw"),
                          ("real_set", None)):
        if d[name] == default:  # likewise: the default, the key of earlier states
            d.pop(name)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_state(path: Path) -> dict:
    if not path.exists():
        return {"done": {}}
    try:
        state = json.loads(path.read_text())
    except ValueError:
        from occbench.errors import DataError

        raise DataError(f"{path}: not valid JSON; delete it to start the sweep over") from None
    state.setdefault("done", {})
    return state


def _tags(config: RunConfig, memo: dict) -> dict[str, str]:
    """The cache tags (name, version, options) of a part's completer and recognizer: what its
    rows were computed with (a retrained weights file is another version); each model is
    created once per sweep (``memo``)."""
    from occbench.models import cache_tag, create_completer, create_recognizer

    tags = {}
    for kind, create, name, args in (
            ("completer", create_completer, config.model, config.model_args),
            ("recognizer", create_recognizer, config.recognizer, config.recognizer_args)):
        key = (kind, name, json.dumps(args, sort_keys=True, default=str))
        if key not in memo:
            memo[key] = cache_tag(create(name, **args))
        tags[kind] = memo[key]
    return tags


def sweep(models: list[str], recognizers: list[str], base: RunConfig, data_root: Path,
          out: Path, *, force: bool = False, progress: bool = True) -> list[tuple[str, str, str]]:
    """Run every (model, recognizer) with the settings of ``base``; returns
    (model, recognizer, "done" | "skipped") per part, in order."""
    from occbench.errors import ConfigError
    from occbench.models import list_models

    known = list_models()  # unknown names fail before any work starts
    for kind, names in (("completers", models), ("recognizers", recognizers)):
        for name in names:
            if name not in known[kind]:
                raise ConfigError(f"unknown {kind[:-1]} {name!r}; known {kind}: "
                                  f"{', '.join(known[kind])}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE
    state = _load_state(state_path)
    command = "occbench " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["sweep"] else None
    parts = [(m, r) for m in models for r in recognizers]
    memo: dict = {}
    tag_memo: dict = {}
    status = []
    for i, (model, rec) in enumerate(parts, start=1):
        config = replace(base, model=model, recognizer=rec)
        key = f"{model}|{rec}|{_settings_key(config)}"
        tags = _tags(config, tag_memo)
        before = state["done"].get(key)
        changed = {k: (was, tags[k]) for k, was in (before or {}).get("tags", {}).items()
                   if tags.get(k) != was}
        if before and not force and not changed:  # parts from before tags were kept: trusted
            print(f"[{i}/{len(parts)}] {model} x {rec}: done before, skipped", file=sys.stderr)
            status.append((model, rec, "skipped"))
            continue
        why = "; ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
        print(f"[{i}/{len(parts)}] {model} x {rec} ..." + (
            f" (done before with other weights: {why})" if changed and not force else ""),
            file=sys.stderr)
        t0 = time.perf_counter()
        run(config, data_root, out, progress=progress, memo=memo)
        with locked(state_path):  # another sweep may share this folder
            state = _load_state(state_path)
            state["done"][key] = {
                "model": model, "recognizer": rec, "tags": tags,
                "seconds": round(time.perf_counter() - t0, 1),
                "git_commit": git_commit(), "command": command,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            atomic_write(state_path, (json.dumps(state, indent=1) + "\n").encode())
        status.append((model, rec, "done"))
    return status
