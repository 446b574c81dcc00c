"""The confidence intervals in the result rows, against independent computations (issue 34):
verification's t-interval over the folds (scipy), ``mean_ci``'s percentile bootstrap over
items (reconstruction, landmarks) and the identity bootstrap of identification's TPIRs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from occbench.data.pairs import Pair
from occbench.metrics.bootstrap import cluster_bootstrap_ci, mean_ci
from occbench.metrics.verification import verify
from occbench.protocols.verification import Verification
from occbench.runner import RunConfig

# ------------------------------------------------------------------ verification t-interval


class _Ctx:
    """What :meth:`Verification.evaluate` asks of a run context: features by key, the data
    set's name and a row (here the tuple of what the row would hold)."""

    def __init__(self, features: dict[str, np.ndarray]):
        self._features = features

    def features(self, faces, cond, keys):
        return np.stack([self._features[k] for k in keys])

    def dataset(self, name):
        return type("Dataset", (), {"name": name})()

    def row(self, protocol, dataset, cond, metric, value, n, lo=np.nan, hi=np.nan):
        return metric, value, n, lo, hi


def _fold_pairs(n_folds: int, per_fold: int, noise: float, seed: int):
    """Pairs of random 8-d embeddings, ``per_fold`` per fold (half same: the first face plus
    noise), hard enough that the fold accuracies differ."""
    rng = np.random.default_rng(seed)
    pairs, feats = [], {}
    for f in range(n_folds):
        for j in range(per_fold):
            a, b = f"a{f}-{j}", f"b{f}-{j}"
            same = j % 2 == 0
            feats[a] = rng.normal(size=8)
            feats[b] = feats[a] + noise * rng.normal(size=8) if same else rng.normal(size=8)
            pairs.append(Pair(a, b, same, f))
    return pairs, feats


@pytest.mark.parametrize(("n_folds", "per_fold", "noise", "seed"),
                         [(10, 30, 1.5, 0), (10, 12, 2.0, 1), (5, 30, 1.5, 2), (3, 40, 1.5, 3),
                          (10, 30, 0.01, 4)])
def test_verification_interval_is_the_t_interval_over_the_folds(n_folds, per_fold, noise,
                                                                 seed):
    pairs, feats = _fold_pairs(n_folds, per_fold, noise, seed)
    proto = Verification(RunConfig(pairs_set="toy"))
    proto.pairs, proto.faces = pairs, None
    rows = {r[0]: r[1:] for r in proto.evaluate(_Ctx(feats), cond=None)}
    value, n, lo, hi = rows["accuracy"]
    # the fold accuracies, recomputed
    accs = verify(np.stack([feats[p.key1] for p in pairs]), np.stack([feats[p.key2] for p in pairs]),
                  np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
                  ).fold_accuracies
    assert len(accs) == n_folds and n == len(pairs)
    if noise > 1:
        assert accs.std() > 0.02  # the interval has a width to get wrong
    assert value == pytest.approx(accs.mean(), abs=1e-12)
    if accs.std() == 0:  # every fold perfect (noise 0.01): the interval is the point
        t_lo = t_hi = accs.mean()
    else:
        t_lo, t_hi = stats.t.interval(0.95, n_folds - 1, loc=accs.mean(), scale=stats.sem(accs))
    assert lo == pytest.approx(max(t_lo, 0.0), abs=1e-9)
    assert hi == pytest.approx(min(t_hi, 1.0), abs=1e-9)  # clipped to [0, 1]
    assert rows["accuracy_std"][0] == pytest.approx(accs.std(ddof=0), abs=1e-12)


# ------------------------------------------------------------------------------- mean_ci


@pytest.mark.parametrize(("n", "reps", "seed"), [(1, 10, 0), (17, 1000, 0), (250, 400, 7)])
def test_mean_ci_is_a_percentile_bootstrap_over_items(n, reps, seed):
    values = np.random.default_rng(100 + n).gamma(2.0, 3.0, n)
    mean, lo, hi = mean_ci(values, seed=seed, reps=reps)
    # written out: reps replicates of n items drawn with replacement, one index row each
    rng = np.random.default_rng(seed)
    boot = np.empty(reps)
    for r in range(reps):
        idx = rng.integers(0, n, size=n)
        boot[r] = values[idx].sum() / n
    boot_all = np.random.default_rng(seed).integers(0, n, size=(reps, n))  # the same draws
    assert np.array_equal(boot_all[0], np.random.default_rng(seed).integers(0, n, size=n))
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), rel=1e-9)
    assert lo <= mean <= hi


def test_mean_ci_against_an_independent_large_bootstrap_and_the_normal_interval():
    values = np.random.default_rng(5).gamma(2.0, 3.0, 400)
    mean, lo, hi = mean_ci(values, seed=1, reps=4000)
    boot = values[np.random.default_rng(999).integers(0, 400, (20000, 400))].mean(axis=1)
    ref_lo, ref_hi = np.percentile(boot, [2.5, 97.5])
    half = 1.96 * values.std(ddof=1) / np.sqrt(400)  # CLT: ~0.42 here
    assert abs(lo - ref_lo) < 0.05 * half and abs(hi - ref_hi) < 0.05 * half
    assert abs((hi - lo) / 2 - half) < 0.05 * half


def test_mean_ci_leaves_out_infinite_values():
    """Documented: a PSNR of inf (an untouched image) is left out of the mean and the
    interval (reconstruction's row then counts only the finite values in ``n``)."""
    values = np.array([20.0, 25.0, 30.0, 35.0])
    with_inf = np.array([20.0, np.inf, 25.0, 30.0, np.inf, 35.0])
    assert mean_ci(with_inf, seed=3) == mean_ci(values, seed=3)
    assert np.isnan(mean_ci([np.inf, np.nan])).all()


# --------------------------------------------------------------------- identity bootstrap


def test_cluster_bootstrap_against_an_independent_large_bootstrap():
    """Identities of 1..9 pairs with a per-identity hit rate: the interval of sum(hits) /
    sum(pairs) against 40,000 replicates drawn another way (integer draws of identities, not
    multinomial counts), and every statistic of a 2-d input against its own column."""
    rng = np.random.default_rng(11)
    G = 150
    pairs = rng.integers(1, 10, G).astype(float)
    hits = rng.binomial(pairs.astype(int), rng.uniform(0.2, 0.9, G)).astype(float)
    lo, hi = cluster_bootstrap_ci(hits, pairs, reps=8000, seed=4)
    draw = np.random.default_rng(2024).integers(0, G, (40000, G))
    est = hits[draw].sum(axis=1) / pairs[draw].sum(axis=1)
    ref_lo, ref_hi = np.percentile(est, [2.5, 97.5])
    width = ref_hi - ref_lo  # ~0.09 here
    assert abs(lo - ref_lo) < 0.04 * width and abs(hi - ref_hi) < 0.04 * width
    # the pairs of one identity stay together: the interval is wider than a pair bootstrap's
    rate = hits.sum() / pairs.sum()
    pair_half = 1.96 * np.sqrt(rate * (1 - rate) / pairs.sum())
    assert (hi - lo) / 2 > pair_half
    # 90 %: the 5th and 95th percentiles of the same replicates
    lo90, hi90 = cluster_bootstrap_ci(hits, pairs, reps=8000, seed=4, level=0.9)
    W = np.random.default_rng(4).multinomial(G, np.full(G, 1 / G), size=8000)
    same_draws = (W @ hits) / (W @ pairs)
    assert (lo90, hi90) == pytest.approx(tuple(np.percentile(same_draws, [5, 95])), rel=1e-12)
    # m statistics at once = each on its own
    both = np.stack([hits, pairs - hits], axis=1)
    lows, highs = cluster_bootstrap_ci(both, pairs, reps=500, seed=9)
    for j in range(2):
        assert (lows[j], highs[j]) == pytest.approx(
            cluster_bootstrap_ci(both[:, j], pairs, reps=500, seed=9), rel=1e-12)


def test_reconstruction_counts_the_faces_psnr_leaves_out():
    """A completed face equal to the clean one (PSNR inf) is left out of the PSNR mean (the
    row's n says how many were averaged) and counted in a ``psnr_identical`` row."""
    from occbench.protocols.reconstruction import Reconstruction

    psnr = np.array([30.0, np.inf, 20.0, np.inf, 25.0])
    ssim = np.array([0.9, 1.0, 0.8, 1.0, 0.85])

    class Ctx(_Ctx):
        def quality(self, faces, cond):
            return {"psnr": psnr, "ssim": ssim}

    proto = Reconstruction(RunConfig())
    proto.sets = [("facescrub", [0] * 5)]
    rows = {r[0]: r[1:] for r in proto.evaluate(Ctx({}), cond=None)}
    assert rows["psnr"][:2] == (25.0, 3)  # mean of the three finite values, n = 3
    assert rows["psnr_identical"][:2] == (0.4, 5)
    assert rows["ssim"][:2] == (pytest.approx(0.91), 5)
    psnr[:] = 30.0  # no identical face: no such row
    assert "psnr_identical" not in {r[0] for r in proto.evaluate(Ctx({}), cond=None)}
