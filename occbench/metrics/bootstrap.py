"""Percentile bootstrap intervals: over clusters (probe identities) for ratio statistics
(:func:`cluster_bootstrap_ci`), and over items for a mean (:func:`mean_ci`).

A rate such as TPIR is sum(hits) / sum(pairs) over identities. Resampling identities with
replacement keeps the pairs of one person together, which is what makes the interval honest:
pairs of the same identity are not independent.
"""

from __future__ import annotations

import numpy as np

from occbench.errors import ConfigError

#: Bootstrap replicates used by default.
DEFAULT_REPS = 1000
#: Coverage of the percentile interval used by default.
DEFAULT_LEVEL = 0.95


def cluster_bootstrap_ci(numerators, denominators, *, reps: int = DEFAULT_REPS,
                         level: float = DEFAULT_LEVEL, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of ``sum(num) / sum(den)`` when resampling clusters.

    ``numerators``: (G,) or (G, m) per-cluster counts (m statistics at once, e.g. hits at
    every rank); ``denominators``: (G,) per-cluster totals, all > 0. Each of ``reps``
    replicates (default 1000) draws G clusters with replacement from
    ``np.random.default_rng(seed)``; returns ``(low, high)``, each of shape (m,) (or
    scalars for 1-d input), at the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles
    (default level 0.95). With no clusters both are NaN.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    scalar = num.ndim == 1
    num = num.reshape(len(num), -1)
    if den.shape != (len(num),):
        raise ConfigError(f"bootstrap: {len(num)} numerator rows but denominators of shape {den.shape}")
    if not 0 < level < 1 or reps < 1:
        raise ConfigError(f"bootstrap: need 0 < level < 1 and reps >= 1, got {level}, {reps}")
    G = len(num)
    if G == 0:
        nan = np.full(num.shape[1], np.nan)
        return (nan[0], nan[0]) if scalar else (nan, nan.copy())
    if (den <= 0).any():
        raise ConfigError("bootstrap: every cluster needs a positive denominator")
    rng = np.random.default_rng(seed)
    # Replicate weights: how often each cluster is drawn (multinomial = G draws with replacement).
    W = rng.multinomial(G, np.full(G, 1.0 / G), size=reps).astype(np.float64)
    est = (W @ num) / (W @ den)[:, None]
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    low, high = np.percentile(est, q, axis=0)
    return (float(low[0]), float(high[0])) if scalar else (low, high)


def mean_ci(values: np.ndarray, *, seed: int = 0, reps: int = 1000) -> tuple[float, float, float]:
    """Mean of per-item values with a 95 % percentile bootstrap interval over items.

    Non-finite values (a PSNR of inf for an untouched image) are left out of all three.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(reps, v.size))
    boot = v[idx].mean(axis=1)
    return float(v.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
