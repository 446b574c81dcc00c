"""reports/training_ledger.py: each weights file's cost and reach summed over its run segments,
by hand on a two-segment provenance file and against a committed one's own totals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("training_ledger", REPO / "reports/training_ledger.py")
ledger = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ledger)


def test_two_segments_by_hand(tmp_path):
    seg = {"precision": "bf16", "threads": 2}
    prov = {"steps": 300, "of_steps": 1000, "complete": False, "epochs": 0.4,
            "sessions": [{**seg, "images": 3200, "train_seconds": 100.0, "wall_seconds": 120.0},
                         {**seg, "threads": 1, "images": 1600, "train_seconds": 60.0,
                          "wall_seconds": 60.0}],
            "evals": [{"step": 0, "images": 0, "session": 0, "psnr_rect": 20.0},
                      {"step": 300, "images": 4800, "session": 1, "psnr_rect": 25.5}]}
    path = tmp_path / "x-small-tag.json"
    path.write_text(json.dumps(prov))
    row = ledger.row(path)
    assert row["weights"] == "x-small-tag" and row["done"] == "300 of 1,000 steps"
    assert (row["segments"], row["precision"], row["threads"]) == (2, "bf16", "2/1")
    assert row["images"] == 4800 and row["img/s"] == 30.0  # 4,800 images / 160 s
    assert row["train h"] == round(160 / 3600, 2) and row["wall h"] == round(180 / 3600, 2)
    assert row["held-out at step"] == 300 and row["psnr_rect"] == 25.5


def test_a_committed_file_matches_its_own_totals():
    path = REPO / "baselines/resnet50/weights/resnet50-mid.json"
    prov = json.loads(path.read_text())
    row = ledger.row(path)
    assert row["wall h"] == round(prov["wall_seconds"] / 3600, 2)
    assert row["img/s"] == pytest.approx(prov["images_per_s"], abs=0.1)
    assert row["held-out at step"] == prov["evals"][-1]["step"]
    assert ledger.main(["no-such-weights"]) == 2
