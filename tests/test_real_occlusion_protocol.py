"""``identification-real`` end to end on the in-memory toy sets and the fake recognizer: a
"real occluded" set (toy faces with a bar baked over the eyes) against the toy set's neutral
images; the real rows recomputed by brute force from the recognizer's embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from occbench import registry
from occbench.data.memory import load_toy, load_toy_distractors, memory_dataset
from occbench.errors import ConfigError
from occbench.metrics.identification import TIE_EPS
from occbench.models import create_recognizer
from occbench.runner import RunConfig, run

REAL_PEOPLE = 12  # the first 12 toy people have one real occluded image each


def load_toy_real(root=None):
    toy = load_toy()
    images, names, seen = [], [], set()
    for s in toy.samples:
        if s.identity in seen or len(seen) == REAL_PEOPLE:
            continue
        seen.add(s.identity)
        face = toy.faces.face(s.key).copy()
        face[38:62, 20:92] = (40, 40, 40)  # a dark band over the eyes, in the image itself
        images.append(face)
        names.append(s.identity)
    return memory_dataset("toy-real", np.stack(images), names)


@pytest.fixture
def toy_real():
    registry.datasets.register("toy-real", load_toy_real)
    yield
    registry.datasets.unregister("toy-real")


def _config(**kw):
    return RunConfig(**{"recognizer": "fake", "probes": "toy", "distractor_set": "toy-distractors",
                        "pairs_set": "toy", "protocols": ("identification-real",),
                        "forms": ("rect",), "positions": ("eyes",), "sizes": (0.1,),
                        "real_set": "toy-real", **kw})


def test_real_twin_and_clean_rows(tmp_path, toy_real):
    df = run(_config(), tmp_path, tmp_path / "out", cache=tmp_path / "cache", progress=False)
    top = df[(df["rank"] == 1) & (df.D == df.D.max())].set_index(["dataset", "form"]).value
    neutral = "toy (toy-real people)"  # the neutral set, of the real set's people only
    assert sorted(top.index) == [(neutral, "none"), (neutral, "rect"), ("toy-real", "real")]
    assert (df.protocol == "identification-real").all() and df.D.max() == 60
    # the real rows by brute force: each real probe (as it is: the occluded completer)
    # against each neutral image of its person, among the 60 clean distractors
    rec = create_recognizer("fake")
    real, toy, dis = load_toy_real(), load_toy(), load_toy_distractors()
    R, N, X = (rec.embed(ds.faces.images) for ds in (real, toy, dis))
    r_id = np.array([s.identity for s in real.samples])
    n_id = np.array([s.identity for s in toy.samples])
    p, g = np.nonzero(r_id[:, None] == n_id[None, :])
    sim = (R[p] * N[g]).sum(1)
    ranks = 1 + (R[p] @ X.T >= sim[:, None] - TIE_EPS).sum(1)
    real_rows = df[(df.form == "real") & (df["rank"] == 1) & (df.D == 60)]
    assert real_rows.n.iloc[0] == len(p) == 3 * REAL_PEOPLE
    assert real_rows.value.iloc[0] == pytest.approx(np.mean(ranks == 1))
    assert real_rows.dataset.iloc[0] == "toy-real"
    counts = df[(df.form == "real") & df.metric.isin(["people", "probes"])]
    assert dict(zip(counts.metric, counts.value, strict=True)) == {"people": REAL_PEOPLE,
                                                                   "probes": REAL_PEOPLE}
    # the twin ranks occluded neutral probes against their clean targets (clean gallery)
    twin = df[(df.form == "rect") & (df["rank"] == 1) & (df.D == 60)]
    # every ordered pair of a person's three images, of the 12 people with a real image
    assert twin.n.iloc[0] == REAL_PEOPLE * 3 * 2
    clean = df[(df.form == "none") & (df["rank"] == 1) & (df.D == 60)]
    assert clean.n.iloc[0] == REAL_PEOPLE * 3 * 2


def test_real_set_is_required_and_must_share_people(tmp_path, toy_real):
    with pytest.raises(ConfigError, match="needs --real-set"):
        run(_config(real_set=None), tmp_path, tmp_path / "out", cache=tmp_path / "cache",
            progress=False)
    with pytest.raises(ConfigError, match="none of its people"):
        run(_config(real_set="toy-distractors"), tmp_path, tmp_path / "out",
            cache=tmp_path / "cache", progress=False)
