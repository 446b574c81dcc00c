"""MegaFace-style identification against a brute-force reference, a hand case, ties, subsets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occbench.errors import ConfigError, OccbenchError
from occbench.metrics.bootstrap import cluster_bootstrap_ci
from occbench.metrics.identification import (
    TIE_EPS,
    distractor_order,
    distractor_sizes,
    identify,
    probe_pairs,
)

MARGIN = 1e-6  # float32 rounding: a comparison this close to its threshold may go either way


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def reference(F, labels, X, order, sizes, eps=TIE_EPS, margin=MARGIN, G=None):
    """Brute force: full float64 similarity matrix, explicit loops over pairs and subsets.

    Returns per pair and D the lowest and highest rank that float32 rounding allows
    (equal unless some similarity lies within ``margin`` of the threshold; use margin 0 for
    data whose dot products are exact in float32).
    """
    F64, X64 = F.astype(np.float64), X.astype(np.float64)
    G64 = F64 if G is None else G.astype(np.float64)  # the targets' features
    S = F64 @ X64.T
    lo, hi = [], []
    labels = np.asarray(labels)
    pairs = [(p, g) for who in np.unique(labels) for p in np.flatnonzero(labels == who)
             for g in np.flatnonzero(labels == who) if p != g]  # identity, probe, target order
    for p, g in pairs:
        thr = F64[p] @ G64[g] - eps
        lo_p, hi_p = [], []
        for D in sizes:
            s = S[p, order[:D]]
            lo_p.append(1 + int(np.sum(s >= thr + margin)))
            hi_p.append(1 + int(np.sum(s >= thr - margin)))
        lo.append(lo_p)
        hi.append(hi_p)
    return np.array(lo), np.array(hi)


def clustered(rng, n_ids, per_id, d, noise):
    c = rng.standard_normal((n_ids, d))
    labels = np.repeat(np.arange(n_ids), per_id)
    return unit(c[labels] + noise * rng.standard_normal((len(labels), d))), labels


def check_against_reference(F, labels, X, seed=0, sizes=(10, 100, 1000), exact=False, **kw):
    res = identify(F, labels, X, seed=seed, sizes=sizes, **kw)
    order = distractor_order(len(X), seed)
    lo, hi = reference(F, labels, X, order, res.sizes, kw.get("tie_eps", TIE_EPS),
                       margin=0.0 if exact else MARGIN, G=kw.get("gallery"))
    L = res.max_rank
    # Pairs come in the same order (identity, probe, target) as the reference's.
    assert (lo[:, -1].clip(max=L + 1) <= res.ranks).all() and (res.ranks <= hi[:, -1].clip(max=L + 1)).all()
    for i, D in enumerate(res.sizes):
        assert ((hi[:, i] == 1) <= res.hits_at_D[:, i]).all() and (res.hits_at_D[:, i] <= (lo[:, i] == 1)).all()
        if (lo == hi).all():
            assert res.tpir_at_D[D] == pytest.approx(np.mean(lo[:, i] == 1))
    if (lo == hi).all():
        expect = [np.mean(lo[:, -1] <= r) for r in range(1, L + 1)]
        np.testing.assert_allclose(res.cmc, expect)
    return res, lo, hi


def test_random_data_matches_reference():
    rng = np.random.default_rng(0)
    F, labels = clustered(rng, 6, [2, 3, 5, 8, 9, 1], 32, 1.0)
    X = unit(rng.standard_normal((2500, 32)))
    res, lo, hi = check_against_reference(F, labels, X, seed=3)
    assert res.sizes == (10, 100, 1000, 2500)
    assert res.max_rank == 2500 and len(res.cmc) == 2500  # full curve when N <= 10,000
    assert (lo != hi).sum() <= 2
    assert res.n_pairs == 2 + 6 + 20 + 56 + 72 and res.n_singletons == 1 and res.n_identities == 5


def test_truncated_cmc_matches_reference():
    rng = np.random.default_rng(1)
    F, labels = clustered(rng, 4, 5, 16, 2.0)
    X = unit(rng.standard_normal((3000, 16)))
    res, lo, hi = check_against_reference(F, labels, X, seed=0, max_rank=20, full_curve_up_to=1000)
    assert res.max_rank == 20 and len(res.cmc) == 20
    assert (res.ranks == 21).any()  # some targets fall beyond the computed depth
    assert res.tpir_at_rank.shape == (10,)
    np.testing.assert_array_equal(res.tpir_at_rank, res.cmc[:10])


def sign_vectors(rng, n, d=16):
    """Unit vectors with entries +-1/4 (d=16): every dot product is exact in float32."""
    return (rng.choice([-0.25, 0.25], size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("eps", [0.0, TIE_EPS])
def test_ties_and_duplicates_match_reference(eps):
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(5), [4, 3, 2, 6, 1])
    F = sign_vectors(rng, len(labels))
    F[1] = F[0]  # duplicate images within an identity
    X = sign_vectors(rng, 600)
    X[[5, 50, 400]] = F[[2, 4, 9]]  # distractors that are exact copies of targets
    X[77] = X[78]
    res, lo, hi = check_against_reference(F, labels, X, seed=5, sizes=(10, 100), exact=True,
                                          tie_eps=eps)
    assert (res.ranks > 1).any() and (res.ranks == 1).any()


def test_hand_case():
    a1, a2 = [1, 0, 0], [0.6, 0.8, 0]
    b1, b2 = [0, 0, 1], [0, 0.6, 0.8]
    F = unit([a1, a2, b1, b2, [1, 1, 1]])
    labels = ["A", "A", "B", "B", "C"]  # C: one image, no pair
    X = unit([[0.8, 0.6, 0], [0, 0.8, 0.6], [0, 1, 0]])
    res = identify(F, labels, X, sizes=(1, 2), order=[0, 1, 2])
    # pairs (a1,a2) (a2,a1) (b1,b2) (b2,b1); s(p,g) = 0.6, 0.6, 0.8, 0.8
    # s(a1, X) = .8 0 0; s(a2, X) = .96 .64 .8; s(b1, X) = 0 .6 0; s(b2, X) = .36 .96 .6
    np.testing.assert_array_equal(res.pair_probe, [0, 1, 2, 3])
    np.testing.assert_array_equal(res.ranks, [2, 4, 1, 2])
    np.testing.assert_array_equal(res.hits_at_D, [[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 0, 0]])
    assert res.sizes == (1, 2, 3)
    assert res.tpir_at_D == {1: 0.5, 2: 0.25, 3: 0.25}
    np.testing.assert_allclose(res.cmc, [0.25, 0.75, 0.75])
    assert res.n_pairs == 4 and res.n_singletons == 1 and res.n_identities == 2
    assert list(res.identities) == ["A", "B", "C"]


def test_clean_gallery_hand_case_and_reference():
    # the hand case's probes, against targets represented by other ("clean") features
    F = unit([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 0.6, 0.8], [1, 1, 1]])
    G = unit([[1, 0, 0], [0.96, 0.28, 0], [0, 0, 1], [0, 0.6, 0.8], [1, 1, 1]])
    X = unit([[0.8, 0.6, 0], [0, 0.8, 0.6], [0, 1, 0]])
    res = identify(F, ["A", "A", "B", "B", "C"], X, sizes=(1, 2), order=[0, 1, 2], gallery=G)
    # s(p, g) = <F[p], G[g]>: (a1, a2) .96 (was .6: rank 2 -> 1), (a2, a1) .6, (b1, b2) .8,
    # (b2, b1) .8; the distractor similarities are the hand case's
    np.testing.assert_array_equal(res.ranks, [1, 4, 1, 2])
    assert res.tpir_at_D == {1: 0.75, 2: 0.5, 3: 0.5} and res.settings["gallery"] == "clean"
    # random data against the brute-force reference
    rng = np.random.default_rng(6)
    F, labels = clustered(rng, 6, [2, 3, 5, 8, 9, 1], 32, 1.0)
    G = unit(F + 0.5 * rng.standard_normal(F.shape))
    X = unit(rng.standard_normal((1500, 32)))
    plain = identify(F, labels, X, seed=1, sizes=(10, 100, 1000))
    with_g, lo, hi = check_against_reference(F, labels, X, seed=1, gallery=G)
    assert not np.array_equal(plain.ranks, with_g.ranks)  # the gallery changes the ranks
    with pytest.raises(ConfigError, match=r"gallery features of shape \(5, 32\)"):
        identify(F, labels, X, gallery=G[:5])


def test_copy_of_target_is_a_tie_against_it():
    rng = np.random.default_rng(4)
    F = unit(0.1 * rng.standard_normal((2, 64)) + [[1] + [0] * 63])  # two close images
    X = unit(rng.standard_normal((50, 64)))
    assert identify(F, [0, 0], X).ranks.tolist() == [1, 1]
    X[17] = F[1]  # pair (0, 1): a tie with the target; pair (1, 0): the probe itself, above
    res = identify(F, [0, 0], X, sizes=(), seed=0)
    assert res.ranks.tolist() == [2, 2]
    assert res.tpir_at_D == {50: 0.0}


def test_subsets_are_nested_and_seeded():
    order = distractor_order(5000, seed=7)
    assert set(order[:10]) <= set(order[:100]) <= set(order[:1000])
    np.testing.assert_array_equal(order, distractor_order(5000, seed=7))
    assert not np.array_equal(order, distractor_order(5000, seed=8))
    rng = np.random.default_rng(5)
    F, labels = clustered(rng, 5, 6, 16, 1.5)
    X = unit(rng.standard_normal((5000, 16)))
    r1 = identify(F, labels, X, seed=7)
    r2 = identify(F, labels, X, seed=7)
    r3 = identify(F, labels, X, order=order, seed=7)
    for r in (r2, r3):
        assert r.tpir_at_D == r1.tpir_at_D and r.ci_at_D == r1.ci_at_D
        np.testing.assert_array_equal(r.ranks, r1.ranks)
        np.testing.assert_array_equal(r.hits_at_D, r1.hits_at_D)
    # nested: a hit against 100 distractors is a hit against the 10 among them
    for i in range(len(r1.sizes) - 1):
        assert (r1.hits_at_D[:, i + 1] <= r1.hits_at_D[:, i]).all()
    r4 = identify(F, labels, X, seed=8)
    assert not np.array_equal(r4.hits_at_D, r1.hits_at_D)


def test_sizes():
    assert distractor_sizes(1_000_000) == (10, 100, 1000, 10_000, 100_000, 1_000_000)
    assert distractor_sizes(1_500_000)[-2:] == (1_000_000, 1_500_000)
    assert distractor_sizes(2500) == (10, 100, 1000, 2500)
    assert distractor_sizes(5) == (5,)
    with pytest.raises(ConfigError):
        distractor_sizes(0)


def test_large_D_uses_top_1000():
    rng = np.random.default_rng(6)
    F, labels = clustered(rng, 3, 4, 8, 3.0)
    X = unit(rng.standard_normal((12_000, 8)))
    res = identify(F, labels, X, reps=50)
    assert res.sizes == (10, 100, 1000, 10_000, 12_000) and res.max_rank == 1000
    assert len(res.cmc) == 1000 and len(res.ci_at_rank) == 1000
    order = distractor_order(len(X), 0)
    lo, hi = reference(F, labels, X, order, res.sizes)
    assert ((lo[:, -1].clip(max=1001) <= res.ranks) & (res.ranks <= hi[:, -1].clip(max=1001))).all()


def test_chunked_distractors():
    rng = np.random.default_rng(7)
    F, labels = clustered(rng, 4, 4, 16, 1.0)
    X = unit(rng.standard_normal((700, 16)))
    ref = identify(F, labels, X, seed=1)
    blocks = [X[a:a + 99] for a in range(0, 700, 99)]
    got = identify(F, labels, lambda: iter(blocks), seed=1, n_distractors=700)
    np.testing.assert_array_equal(got.ranks, ref.ranks)
    np.testing.assert_array_equal(got.hits_at_D, ref.hits_at_D)
    with pytest.raises(ConfigError, match="n_distractors"):
        identify(F, labels, iter(blocks))
    with pytest.raises(ConfigError, match="700 rows read"):
        identify(F, labels, iter(blocks), n_distractors=800)
    with pytest.raises(ConfigError, match="n_distractors"):
        identify(F, labels, X, n_distractors=5)


def test_bad_inputs():
    rng = np.random.default_rng(8)
    F, labels = clustered(rng, 3, 3, 8, 1.0)
    X = unit(rng.standard_normal((100, 8)))
    Fb = F.copy()
    Fb[[1, 4]] = np.nan
    with pytest.raises(OccbenchError, match=r"probe features: 2 row\(s\) with NaN"):
        identify(Fb, labels, X)
    Xb = X.copy()
    Xb[[3, 60, 61]] = np.inf
    with pytest.raises(OccbenchError, match=r"distractors: 3 row\(s\) with NaN/inf values out of 100"):
        identify(F, labels, Xb, chunk_rows=50)
    Xb[[3, 60, 61]] = 0
    with pytest.raises(OccbenchError, match=r"distractors: 3 row\(s\) of zero norm"):
        identify(F, labels, Xb)
    with pytest.raises(ConfigError, match="no identity"):
        identify(F[:3], [0, 1, 2], X)
    with pytest.raises(ConfigError, match="labels"):
        identify(F, labels[:-1], X)
    with pytest.raises(ConfigError, match="dimension"):
        identify(F, labels, X[:, :4])
    with pytest.raises(ConfigError, match="permutation"):
        identify(F, labels, X, order=np.zeros(100, dtype=int))


def test_bootstrap_intervals():
    rng = np.random.default_rng(9)
    F, labels = clustered(rng, 12, 5, 16, 2.5)
    X = unit(rng.standard_normal((1000, 16)))
    res = identify(F, labels, X, reps=300)
    for D, (lo, hi) in res.ci_at_D.items():
        assert lo <= res.tpir_at_D[D] <= hi
    lo1, hi1 = res.ci_at_rank[1]
    assert (lo1, hi1) == res.ci_at_D[1000]  # rank 1 at the largest D: one statistic
    assert lo1 < hi1
    # one identity resampled as a whole: same interval as a direct cluster bootstrap
    hits = np.bincount(res.pair_identity, weights=res.ranks == 1, minlength=12)
    n = np.bincount(res.pair_identity, minlength=12)
    assert cluster_bootstrap_ci(hits, n, reps=300, seed=0) == pytest.approx((lo1, hi1))


def test_cluster_bootstrap_matches_explicit_loop():
    rng = np.random.default_rng(10)
    num = rng.integers(0, 10, 7).astype(float)
    den = num + rng.integers(1, 5, 7)
    lo, hi = cluster_bootstrap_ci(num, den, reps=200, seed=3)
    r = np.random.default_rng(3)
    W = r.multinomial(7, np.full(7, 1 / 7), size=200)
    est = []
    for w in W:
        idx = np.repeat(np.arange(7), w)
        est.append(num[idx].sum() / den[idx].sum())
    assert (lo, hi) == pytest.approx(tuple(np.percentile(est, [2.5, 97.5])))


def test_probe_pairs():
    p, g, ident, ids = probe_pairs(["b", "a", "b", "c", "b"])
    assert list(ids) == ["a", "b", "c"]
    assert sorted(zip(p.tolist(), g.tolist(), strict=True)) == [(0, 2), (0, 4), (2, 0), (2, 4), (4, 0), (4, 2)]
    assert (ident == 1).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 40), st.integers(1, 300))
def test_property_exact_data_matches_reference(seed, n_probes, n_distractors):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, max(1, n_probes // 3), n_probes)
    if np.bincount(labels).max() < 2:
        labels[1] = labels[0]
    F = sign_vectors(rng, n_probes)
    X = sign_vectors(rng, n_distractors)
    check_against_reference(F, labels, X, seed=seed, sizes=(3, 30), exact=True, reps=20)


def test_given_pairs_rank_exactly_those_pairs():
    """``pairs=``: only the pairs given are ranked (a real occluded probe against the neutral
    images of its person), each against the distractors by brute force; the probes and
    targets are different rows of one feature array."""
    rng = np.random.default_rng(8)
    neutral, labels = clustered(rng, 5, [3, 4, 2, 5, 3], 32, 0.8)
    real = unit(neutral[[0, 3, 9, 12]] + 0.3 * rng.standard_normal((4, 32)))  # 4 real probes
    real_labels = labels[[0, 3, 9, 12]]
    F = np.concatenate([real, neutral])
    all_labels = np.r_[real_labels, labels]
    probe, target = np.nonzero(real_labels[:, None] == labels[None, :])
    X = unit(rng.standard_normal((300, 32)))
    res = identify(F, all_labels, X, seed=2, sizes=(10, 100), pairs=(probe, 4 + target))
    assert res.n_pairs == len(probe) == sum((labels == lab).sum() for lab in real_labels)
    assert set(res.pair_probe) == {0, 1, 2, 3} and (res.pair_target >= 4).all()
    sim = (F[res.pair_probe] * F[res.pair_target]).sum(1)
    above = (F[res.pair_probe] @ X.T >= sim[:, None] - TIE_EPS).sum(1)
    np.testing.assert_array_equal(res.ranks, 1 + above)
    assert res.tpir_at_D[300] == pytest.approx(np.mean(above == 0))
    assert 0 < res.tpir_at_D[300] < 1 and res.tpir_at_D[10] > res.tpir_at_D[300]
    assert res.n_singletons == 2  # labels 2 and 4 have no real probe
    for bad, message in (((probe, target[:-1]), "equal lengths"), (([0], [0]), "itself"),
                         (([0], [4 + np.flatnonzero(labels != real_labels[0])[0]]), "same label"),
                         ((probe, [99] * len(probe)), r"rows in \[0, 21\)")):
        with pytest.raises(ConfigError, match=message):
            identify(F, all_labels, X, pairs=bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_megaface_verification_against_a_dense_brute_force(seed):
    """TAR at FAR from the identification search's kept impostors equals the dense
    computation over every probe x distractor similarity; unresolvable FARs are NaN."""
    from occbench.metrics.identification import megaface_tar

    rng = np.random.default_rng(seed)
    F, labels = clustered(rng, 8, [3, 2, 4, 5, 2, 3, 6, 2], 16, 0.9)
    X = unit(rng.standard_normal((400, 16)))
    res = identify(F, labels, X, seed=seed, sizes=(10, 100), max_rank=50,
                   full_curve_up_to=100)
    assert res.n_impostors == len(F) * 400 and len(res.impostor_top) == 50
    genuine = (F[res.pair_probe] * F[res.pair_target]).sum(1)
    np.testing.assert_allclose(res.pair_sims, genuine, atol=1e-6)
    impostors = np.sort((F @ X.T).astype(np.float64).ravel())[::-1]
    np.testing.assert_allclose(res.impostor_top, impostors[:50], atol=1e-6)
    fars = (1e-4, 1e-3, 5e-3, 0.1)  # k = 1, 10, 58 (> 50 kept: NaN), 1,160
    got = megaface_tar(res, fars)
    for f in fars:
        k = int(np.floor(f * len(impostors)))
        if k + 1 > 50:
            assert np.isnan(got[f])
            continue
        # the lowest threshold accepting at most k impostors, every genuine pair scored
        want = max((genuine > t).mean() for t in impostors if (impostors > t).sum() <= k)
        assert got[f] == pytest.approx(want)
