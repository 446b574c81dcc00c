"""What each committed training cost and reached, from the provenance files alone (issue 30's
"must show": precision, threads, img/s, epochs and images seen, wall time summed over run
segments, held-out figures at the end).

    python reports/training_ledger.py                      # every weights file with segments
    python reports/training_ledger.py c2fdan-small-campaign resnet50-mid

One row per weights file (``baselines/*/weights/<stem>.json``): done (complete, or the steps so
far of the config's), segments, precision and threads (each distinct value over the segments),
images seen, epochs, img/s (images over training seconds, all segments), training and wall
hours summed over segments, and the figures of the last held-out evaluation. Files written
before run segments were recorded (no ``sessions`` with timings) are left out unless named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

WEIGHTS = Path(__file__).resolve().parents[1] / "baselines"
BASE = ("weights", "done", "segments", "precision", "threads", "images", "epochs", "img/s",
        "train h", "wall h")


def _distinct(sessions: list[dict], key: str) -> str:
    return "/".join(dict.fromkeys(str(s[key]) for s in sessions if s.get(key) is not None))


def row(path: Path) -> dict:
    """The ledger row of one provenance file."""
    p = json.loads(path.read_text())
    sessions = [s for s in p.get("sessions") or [] if "train_seconds" in s]
    images = sum(s.get("images", 0) for s in sessions)
    train = sum(s.get("train_seconds", 0.0) for s in sessions)
    wall = sum(s.get("wall_seconds", 0.0) for s in sessions)
    steps, of = p.get("steps"), p.get("of_steps", p.get("steps"))
    out = dict(zip(BASE, (
        path.stem, "complete" if p.get("complete", True) else f"{steps:,} of {of:,} steps",
        len(sessions), _distinct(sessions, "precision"), _distinct(sessions, "threads"), images,
        p.get("epochs"), round(images / train, 1) if train else None, round(train / 3600, 2),
        round(wall / 3600, 2)), strict=True))
    last = (p.get("evals") or [{}])[-1]
    if last:
        out["held-out at step"] = last["step"]
        out.update({k: v for k, v in last.items() if k not in ("step", "images", "session")})
    return out


def main(argv: list[str]) -> int:
    paths = sorted(WEIGHTS.glob("*/weights/*.json"))
    if argv:
        by_stem = {p.stem: p for p in paths}
        unknown = [a for a in argv if a not in by_stem]
        if unknown:
            print(f"no provenance file for {', '.join(unknown)} under {WEIGHTS}/*/weights/",
                  file=sys.stderr)
            return 2
        rows = [row(by_stem[a]) for a in argv]
    else:
        rows = [r for r in map(row, paths) if r["segments"]]
    groups: dict[tuple, list[dict]] = {}  # one table per kind of held-out figures
    for r in rows:
        groups.setdefault(tuple(r)[len(BASE):], []).append(r)
    for group in groups.values():
        print(pd.DataFrame(group).to_markdown(index=False, floatfmt="g"))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
