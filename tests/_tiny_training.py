"""Train a baseline for a couple of steps on a few real CelebA faces (for end-to-end tests)."""

from __future__ import annotations

import json
from pathlib import Path

from occbench.train.cli import train_main
from tests._configs import shipped, write_config


def train_tiny(name: str, data_root, tmp_path: Path, *, limit: int, options: dict | None = None,
               **settings) -> tuple[Path, dict]:
    """Train ``name`` with its ``small`` config overridden by ``settings`` (e.g. steps=2,
    batch_size=4) and ``options`` on the first ``limit`` CelebA images; weights go to
    ``tmp_path/w``. Returns (weights path, provenance dict)."""
    write_config(tmp_path, shipped(name), "tiny.json", options=options or {}, **settings)
    path = train_main(name, str(tmp_path / "tiny.json"), data_root, tmp_path / "ck", weights_dir=tmp_path / "w",
                      limit=limit, progress=False)
    return path, json.loads(path.with_suffix(".json").read_text())
