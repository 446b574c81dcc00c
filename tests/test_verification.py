"""LFW-style 10-fold verification: exact threshold search, hand case, brute-force agreement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occbench.errors import ConfigError, OccbenchError
from occbench.metrics.verification import best_threshold, cosine_scores, verify, verify_scores


def accuracy(s, y, t):
    return np.mean((s > t) == y)


def test_hand_case():
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.65])
    y = np.array([0, 1, 0, 1, 1, 0, 1], dtype=bool)
    f = np.array([0, 0, 1, 1, 2, 2, 2])
    res = verify_scores(s, y, f)
    # fold 0, train on 0.2 0.8 0.3+ 0.7- 0.65+ (sorted: .2- .3+ .65+ .7- .8+):
    # best cut below .3 (4/5, lowest threshold of the tied cuts) -> t = .25; fold 0 acc 1
    # fold 1, train on .1- .3+ .65+ .7- .9+: same cut, t = .2; fold 1 acc 1
    # fold 2, train on .1- .2- .8+ .9+: t = .5; fold 2: .3+ wrong, .7- wrong, .65+ right -> 1/3
    np.testing.assert_allclose(res.thresholds, [0.25, 0.2, 0.5])
    np.testing.assert_allclose(res.fold_accuracies, [1, 1, 1 / 3])
    np.testing.assert_allclose(res.train_accuracies, [0.8, 0.8, 1.0])
    assert res.mean == pytest.approx(7 / 9)
    assert res.std == pytest.approx(np.std([1, 1, 1 / 3]))
    assert res.ddof == 0 and res.n_pairs == 7
    assert verify_scores(s, y, f, ddof=1).std == pytest.approx(np.std([1, 1, 1 / 3], ddof=1))


def test_best_threshold_extremes_and_ties():
    t, a = best_threshold([0.5, 0.5, 0.5], [1, 1, 1])
    assert a == 1 and t < 0.5  # all same
    t, a = best_threshold([0.5, 0.5, 0.5], [0, 0, 0])
    assert a == 1 and t == 0.5  # none same
    t, a = best_threshold([0.1, 0.4, 0.4, 0.9], [0, 1, 0, 1])
    assert a == 0.75 and accuracy(np.array([0.1, 0.4, 0.4, 0.9]), np.array([0, 1, 0, 1], bool), t) == 0.75


def brute_force_best(s, y):
    """Try every candidate threshold by an explicit loop, plus a dense grid."""
    u = np.unique(s)
    cands = [u[0] - 1.0, u[-1]] + [(u[i] + u[i + 1]) / 2 for i in range(len(u) - 1)]
    exact = max(accuracy(s, y, t) for t in cands)
    grid = max(accuracy(s, y, t) for t in np.linspace(s.min() - 0.01, s.max() + 0.01, 2001))
    return exact, grid


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.random(n) < 0.5
    s = np.round(rng.normal(0.3 + 0.4 * y, 0.25), 2)  # rounded: many tied scores
    f = np.repeat(np.arange(10), n // 10)
    res = verify_scores(s, y, f)
    for i in range(10):
        train = f != i
        exact, grid = brute_force_best(s[train], y[train])
        assert res.train_accuracies[i] == pytest.approx(exact)
        assert accuracy(s[train], y[train], res.thresholds[i]) == pytest.approx(exact)
        assert exact >= grid - 1e-12
        assert res.fold_accuracies[i] == pytest.approx(accuracy(s[~train], y[~train], res.thresholds[i]))
    assert res.mean == pytest.approx(res.fold_accuracies.mean())


def test_perfect_separation():
    rng = np.random.default_rng(11)
    y = np.tile([True, False], 300)
    s = np.where(y, rng.uniform(0.5, 1, 600), rng.uniform(-1, 0.4, 600))
    res = verify_scores(s, y, np.arange(600) % 10)
    assert res.mean == 1.0 and res.std == 0.0
    assert (res.fold_accuracies == 1).all()


def test_embeddings_use_cosine():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((100, 16)).astype(np.float32)
    b = a + rng.standard_normal((100, 16)).astype(np.float32)
    b[50:] = rng.standard_normal((50, 16))
    y = np.arange(100) < 50
    f = np.arange(100) % 10
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cosine_scores(a * 3, b), cos, atol=1e-6)
    r1, r2 = verify(a, b, y, f), verify_scores(cos, y, f)
    np.testing.assert_allclose(r1.fold_accuracies, r2.fold_accuracies)


def test_bad_inputs():
    a = np.ones((4, 3), np.float32)
    b = a.copy()
    b[2] = np.nan
    with pytest.raises(OccbenchError, match=r"features2: 1 row\(s\) with NaN"):
        verify(a, b, [1, 0, 1, 0], [0, 0, 1, 1])
    with pytest.raises(ConfigError, match="rows"):
        verify(a, a[:3], [1, 0, 1], [0, 0, 1])
    with pytest.raises(ConfigError, match="two folds"):
        verify_scores([0.1, 0.2], [1, 0], [0, 0])
    with pytest.raises(ConfigError, match="one entry per pair"):
        verify_scores([0.1, 0.2], [1, 0, 1], [0, 1])
    with pytest.raises(ConfigError, match="NaN"):
        verify_scores([0.1, np.nan], [1, 0], [0, 1])
    with pytest.raises(ConfigError, match="boolean"):
        verify_scores([0.1, 0.2], [2, 0], [0, 1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-20, 20), st.booleans()), min_size=1, max_size=40))
def test_best_threshold_property(pairs):
    s = np.array([p[0] / 8 for p in pairs])
    y = np.array([p[1] for p in pairs])
    t, a = best_threshold(s, y)
    assert accuracy(s, y, t) == pytest.approx(a)
    assert a == pytest.approx(brute_force_best(s, y)[0])


def test_tar_at_far_hand_case():
    from occbench.metrics.verification import roc, tar_at_far

    scores, same = [0.9, 0.8, 0.7, 0.6], [True, False, True, False]
    # FAR 0: both different pairs rejected, so only 0.9 is accepted; FAR 0.5: one may pass
    assert tar_at_far(scores, same, [0.0, 0.49, 0.5, 1.0]) == {0.0: 0.5, 0.49: 0.5, 0.5: 1.0,
                                                               1.0: 1.0}
    far, tar, thr = roc(scores, same)
    assert far.tolist() == [0, 0, 0.5, 0.5, 1] and tar.tolist() == [0, 0.5, 0.5, 1, 1]
    assert thr[0] == np.inf and (np.diff(thr) < 0).all()
    with pytest.raises(ConfigError, match="same- and different-person pairs"):
        roc([0.1, 0.2], [True, True])


@pytest.mark.parametrize("seed", range(5))
def test_tar_at_far_against_brute_force(seed):
    """Every threshold tried directly (scores rounded, so ties occur)."""
    from occbench.metrics.verification import FARS, roc, tar_at_far

    rng = np.random.default_rng(seed)
    same = rng.random(600) < 0.5
    scores = np.round(rng.normal(same * 1.5, 1.0), 1)
    fars = (*FARS, 0.0, 1.0)
    got = tar_at_far(scores, same, fars)
    for f in fars:
        best = max((scores[same] > t).mean() for t in np.r_[-np.inf, np.unique(scores)]
                   if (scores[~same] > t).mean() <= f)
        assert got[f] == best, f
    far, tar, thr = roc(scores, same)
    for a, b, t in zip(far, tar, thr, strict=True):  # each ROC point is its threshold's
        assert a == (scores[~same] > t).mean() and b == (scores[same] > t).mean()


def test_tar_at_far_interval_is_a_bootstrap_over_each_kind_of_pair():
    """Against a bootstrap written out here: same-person and different-person pairs redrawn
    separately, the TAR@FAR of each replicate by brute force over every threshold."""
    from occbench.metrics.verification import tar_at_far, tar_at_far_ci

    rng = np.random.default_rng(3)
    same = rng.random(300) < 0.5
    scores = np.round(rng.normal(same * 1.2, 1.0), 2)
    fars = (0.01, 0.1)
    got = tar_at_far_ci(scores, same, fars, reps=200, seed=7)
    pos, neg = scores[same], scores[~same]
    draw = np.random.default_rng(7)
    reps = []
    for _ in range(200):
        p = pos[draw.integers(0, len(pos), len(pos))]
        n = neg[draw.integers(0, len(neg), len(neg))]
        row = []
        for f in fars:
            row.append(max((p > t).mean() for t in np.r_[-np.inf, np.unique(np.r_[p, n])]
                           if (n > t).mean() <= f))
        reps.append(row)
    want = np.percentile(np.array(reps), [2.5, 97.5], axis=0)
    for i, f in enumerate(fars):
        assert got[f] == pytest.approx((want[0, i], want[1, i]), abs=1e-12)
        point = tar_at_far(scores, same, [f])[f]
        assert got[f][0] <= point <= got[f][1] and got[f][1] > got[f][0]
