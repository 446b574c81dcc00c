"""Pair verification with k-fold threshold selection (LFW, as in insightface's ``verification.py``).

Score = cosine similarity of the two embeddings; a pair is called "same" when its score is
strictly above the threshold. For every fold, the threshold maximising accuracy on the other
folds is applied to that fold. The search is exact: every cut between two consecutive
distinct training scores (at their midpoint), plus "all same" and "none same", is tried; of
equally accurate cuts the lowest threshold is taken. Reported: per-fold accuracies, their
mean and standard deviation (``ddof=0`` by default, numpy's ``np.std`` as insightface uses),
and the thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occbench.errors import ConfigError
from occbench.search import check_features

N_FOLDS = 10


@dataclass(frozen=True)
class VerificationResult:
    """``fold_ids``: the folds in sorted order; ``fold_accuracies`` and ``thresholds`` follow it.

    ``train_accuracies``: accuracy of each threshold on the folds it was chosen on.
    ``std`` uses ``ddof`` (0 by default).
    """

    fold_ids: np.ndarray
    fold_accuracies: np.ndarray
    thresholds: np.ndarray
    train_accuracies: np.ndarray
    mean: float
    std: float
    ddof: int
    n_pairs: int


def cosine_scores(features1, features2) -> np.ndarray:
    """Cosine similarity of row i of ``features1`` and row i of ``features2`` (float64)."""
    a = check_features(features1, "features1")
    b = check_features(features2, "features2", dim=a.shape[1])
    if len(a) != len(b):
        raise ConfigError(f"features1 has {len(a)} rows but features2 has {len(b)}")
    return np.einsum("ij,ij->i", a, b, dtype=np.float64)


def best_threshold(scores, same) -> tuple[float, float]:
    """Exact accuracy-maximising threshold: ``(threshold, accuracy)`` for "same iff score > t".

    Candidates: just below the lowest score (all same), the midpoints between consecutive
    distinct scores, and the highest score (none same); ties go to the lowest threshold.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if not len(s):
        raise ConfigError("no pairs to choose a threshold on")
    o = np.argsort(s, kind="stable")
    s, y = s[o], y[o]
    n = len(s)
    # Cut i: the i lowest scores are called "different", the rest "same".
    diff_below = np.r_[0, np.cumsum(~y)]
    same_above = y.sum() - np.r_[0, np.cumsum(y)]
    correct = diff_below + same_above
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] > s[:-1]  # only between distinct scores
    i = int(np.flatnonzero(valid)[np.argmax(correct[valid])])
    if i == 0:
        t = np.nextafter(s[0], -np.inf)
    elif i == n:
        t = s[-1]
    else:
        t = 0.5 * (s[i - 1] + s[i])
        if not t < s[i]:  # adjacent float64 values: the midpoint rounds up
            t = s[i - 1]
    return float(t), float(correct[i] / n)


def verify_scores(scores, same, folds, *, ddof: int = 0) -> VerificationResult:
    """k-fold verification from per-pair ``scores`` (higher = more alike).

    ``same``: per pair, True for the same person; ``folds``: per pair, its fold id (any
    values, at least two distinct; LFW has 10 folds of 600). ``ddof`` for the std (default 0).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(same)
    f = np.asarray(folds)
    if not (len(s) == len(y) == len(f)) or y.ndim != 1 or f.ndim != 1:
        raise ConfigError(f"scores, same and folds need one entry per pair, got {len(s)}, {y.shape}, {f.shape}")
    if not np.isfinite(s).all():
        raise ConfigError(f"scores: {int((~np.isfinite(s)).sum())} of {len(s)} are NaN/inf")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ConfigError("same must be boolean (or 0/1)")
        y = y.astype(bool)
    fold_ids = np.unique(f)
    if len(fold_ids) < 2:
        raise ConfigError(f"need at least two folds, got {len(fold_ids)}")
    acc, thr, train = [], [], []
    for fid in fold_ids:
        test = f == fid
        t, a = best_threshold(s[~test], y[~test])
        thr.append(t)
        train.append(a)
        acc.append(np.mean((s[test] > t) == y[test]))
    acc = np.array(acc)
    return VerificationResult(fold_ids=fold_ids, fold_accuracies=acc, thresholds=np.array(thr),
                              train_accuracies=np.array(train), mean=float(acc.mean()),
                              std=float(acc.std(ddof=ddof)), ddof=ddof, n_pairs=len(s))


def verify(features1, features2, same, folds, *, ddof: int = 0) -> VerificationResult:
    """k-fold verification of pairs of embeddings (row i of each array is pair i).

    Cosine similarity (rows are checked and normalised, see :func:`cosine_scores`), then
    :func:`verify_scores`.
    """
    return verify_scores(cosine_scores(features1, features2), same, folds, ddof=ddof)


def insightface_accuracy(features1, features2, same, n_folds: int = 10
                         ) -> tuple[float, float, np.ndarray]:
    """Accuracy as insightface's ``verification.py`` computes it, for tables that quote it:
    the pairs split into ``n_folds`` contiguous folds (``KFold(n_folds, shuffle=False)``); on
    each, the threshold of ``np.arange(0, 4, 0.01)`` on the squared L2 distance of the
    L2-normalised embeddings that is most accurate on the other folds (the first, i.e.
    lowest, of equals; a pair is "same" when its distance is below it) is applied to the
    fold. Returns (mean, std (ddof 0), per-fold accuracies)."""
    e1, e2 = (np.asarray(f, np.float64) for f in (features1, features2))
    e1 = e1 / np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = e2 / np.linalg.norm(e2, axis=1, keepdims=True)
    dist = ((e1 - e2) ** 2).sum(axis=1)
    same = np.asarray(same, dtype=bool)
    thresholds = np.arange(0, 4, 0.01)
    correct = (dist[None, :] < thresholds[:, None]) == same[None, :]  # (thresholds, pairs)
    folds = contiguous_folds(len(dist), n_folds)
    accs = np.empty(n_folds)
    for k in range(n_folds):
        test = folds == k
        best = int(np.argmax(correct[:, ~test].mean(axis=1)))
        accs[k] = correct[best, test].mean()
    return float(accs.mean()), float(accs.std()), accs


def contiguous_folds(n: int, k: int = N_FOLDS) -> np.ndarray:
    """Fold of each of ``n`` pairs in insightface's split: k contiguous runs, the first n mod k
    one longer (sklearn's ``KFold(k, shuffle=False)``)."""
    sizes = np.full(k, n // k) + (np.arange(k) < n % k)
    return np.repeat(np.arange(k), sizes)


#: The false accept rates of the verification rows' ``tar@far=...`` figures (the ROC curve
#: sampled on a log grid; LFW's 3,000 different-person pairs resolve down to 1e-3).
FARS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def roc(scores, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve of "same iff score > t": ``(far, tar, thresholds)``, one point per
    distinct score plus the all-reject end, thresholds decreasing. FAR = share of
    different-person pairs above t, TAR = share of same-person pairs above t."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(same, dtype=bool).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if len(s) != len(y) or not n_pos or not n_neg:
        raise ConfigError(f"ROC needs same- and different-person pairs with one score each, got "
                          f"{len(s)} scores, {n_pos} same and {n_neg} different")
    o = np.argsort(-s, kind="stable")
    s, y = s[o], y[o]
    last = np.r_[s[1:] < s[:-1], True]  # the last pair of each run of equal scores
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    # threshold just below each distinct score accepts that score and all above it
    thresholds = np.r_[np.inf, np.nextafter(s[last], -np.inf)]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], thresholds


def tar_at_far(scores, same, fars=FARS) -> dict[float, float]:
    """TAR at each FAR of ``fars``: the share of same-person pairs accepted at the lowest
    threshold whose FAR does not exceed it (the usual reading of TAR@FAR; with N
    different-person pairs a FAR below 1/N accepts only pairs scoring above every one of
    them)."""
    far, tar, _ = roc(scores, same)
    out = {}
    for f in fars:
        ok = far <= f + 1e-12
        out[float(f)] = float(tar[ok].max())
    return out


def tar_at_far_ci(scores, same, fars=FARS, *, reps: int = 1000, level: float = 0.95,
                  seed: int = 0) -> dict[float, tuple[float, float]]:
    """Percentile bootstrap interval of :func:`tar_at_far` at each FAR: each of ``reps``
    replicates redraws the same-person pairs and the different-person pairs with replacement
    (each group keeps its size, as the protocol fixes them), from
    ``np.random.default_rng(seed)``; returns {far: (low, high)} at the ``(1 -+ level) / 2``
    percentiles."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(same, dtype=bool).ravel()
    pos, neg = s[y], s[~y]
    rng = np.random.default_rng(seed)
    draws = np.empty((reps, len(fars)))
    labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    for r in range(reps):
        both = np.r_[pos[rng.integers(0, len(pos), len(pos))],
                     neg[rng.integers(0, len(neg), len(neg))]]
        draws[r] = list(tar_at_far(both, labels, fars).values())
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    lo, hi = np.percentile(draws, q, axis=0)
    return {float(f): (float(a), float(b)) for f, a, b in zip(fars, lo, hi, strict=True)}


def t_half_width(values, level: float = 0.95) -> float:
    """Half-width of the ``level`` t-interval of the mean of ``values`` (e.g. the per-fold
    accuracies): t((1 + level) / 2, k - 1) * std(ddof=1) / sqrt(k); NaN for fewer than 2."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    k = len(v)
    return float(t.ppf((1 + level) / 2, k - 1) * v.std(ddof=1) / np.sqrt(k)) if k > 1 else np.nan
