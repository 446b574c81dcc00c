"""Closed-set identification with distractors: MegaFace challenge 1 as the paper uses it.

Probe set: features ``F`` (n, d) of FaceScrub-like images with identity labels (occluded
images in the occluded setting). Distractors: ``X`` (N, d), clean. For every ordered pair
(p, g) of two different images of one identity, g joins the distractors and is ranked by
cosine similarity to p::

    rank_D(p, g) = 1 + #{x in the first D distractors : s(p, x) >= s(p, g) - tie_eps}

so ties (and near-ties within ``tie_eps``, default :data:`TIE_EPS`, which absorbs the last-bit
differences between two float32 dot-product routines) count against g. TPIR@k at D is the
fraction of pairs with rank_D <= k.

Distractor subsets: D in :data:`DEFAULT_SIZES` up to N, plus N itself; nested, the first D
of one permutation of the distractors (``np.random.default_rng(seed).permutation(N)``, or
``order`` given). Reported: TPIR@1 for every D, and for the largest D the CMC curve to
rank min(``max_rank``, D) — to D when D <= ``full_curve_up_to`` — with TPIR@1..10 its head.

Cost: one streaming pass over the distractors (:func:`occbench.search.knn_ip_stream`):
per probe the top-K similarities over all N (K = CMC length) and the best similarity within
each band of permuted positions [0, 10), [10, 100), ..., whose running maxima are the
per-D maxima. A pair's rank at the largest D is a ``searchsorted`` in its probe's top K;
its rank-1 hit at a smaller D is a comparison with that D's maximum.

Intervals: 95 % percentile bootstrap over probe identities (all pairs of a resampled
identity come along), 1000 replicates, seeded.

Clean-gallery variant (``gallery`` given; protocol ``identification-clean-gallery``): the
target g is represented by ``gallery[g]``, its clean face's features, while the probe p stays
occluded: s(p, g) = <F[p], gallery[g]>. In the paper's setting both images of a pair are
occluded with the same form, size and position, so an occluder that looks alike on every face
(a mask, sunglasses) can make p and g more alike; against a clean gallery it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from occbench.errors import ConfigError
from occbench.metrics.bootstrap import DEFAULT_LEVEL, DEFAULT_REPS, cluster_bootstrap_ci
from occbench.search import DEFAULT_CHUNK_ROWS, Source, check_features, get_searcher, knn_ip_stream

#: Distractor set sizes D of MegaFace challenge 1.
DEFAULT_SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
#: CMC length for the largest D ...
MAX_RANK = 1_000
#: ... unless D is at most this, when the curve goes to rank D.
FULL_CURVE_UP_TO = 10_000
#: Similarities within this of the target's count against it (ties), see module docstring.
TIE_EPS = 1e-5
#: TPIR@1..TOP_RANKS is reported as ``tpir_at_rank``.
TOP_RANKS = 10


@dataclass(frozen=True)
class IdentificationResult:
    """TPIRs, their bootstrap intervals and the per-pair data behind them.

    ``sizes``: the distractor set sizes D, ascending (the last is all distractors).
    ``tpir_at_D`` / ``ci_at_D``: TPIR@1 and its (low, high) interval per D.
    ``cmc``: TPIR at ranks 1..``max_rank`` for the largest D; ``ci_at_rank``: rank -> interval.
    ``tpir_at_rank``: ``cmc[:10]``. ``ranks``: per pair, its rank at the largest D; the
    value ``max_rank + 1`` means "beyond the computed depth" when max_rank < D.
    ``hits_at_D``: (n_pairs, len(sizes)) bool, rank 1 at each D.
    ``pair_probe`` / ``pair_target``: row indices into the probe features;
    ``pair_identity``: index into ``identities`` (each label once, sorted).
    ``n_identities``: identities with at least one pair; ``n_singletons``: identities with a
    single image (no pairs, left out).
    """

    sizes: tuple[int, ...]
    tpir_at_D: dict[int, float]
    ci_at_D: dict[int, tuple[float, float]]
    cmc: np.ndarray
    ci_at_rank: dict[int, tuple[float, float]]
    ranks: np.ndarray
    hits_at_D: np.ndarray
    pair_probe: np.ndarray
    pair_target: np.ndarray
    pair_identity: np.ndarray
    identities: np.ndarray
    n_identities: int
    n_singletons: int
    n_probe_images: int
    n_distractors: int
    max_rank: int
    settings: dict = field(default_factory=dict)
    #: s(p, g) of each pair (float64), and the largest impostor similarities s(p, x) of the
    #: searched probes against the distractors (descending, the global top ``max_rank``:
    #: exact, as each is within its probe's top ``max_rank``), for MegaFace-style verification
    pair_sims: np.ndarray | None = None
    impostor_top: np.ndarray | None = None
    n_impostors: int = 0

    @property
    def n_pairs(self) -> int:
        return len(self.ranks)

    @property
    def tpir_at_rank(self) -> np.ndarray:
        """TPIR at ranks 1..10 (fewer if the CMC is shorter) for the largest D."""
        return self.cmc[:TOP_RANKS]


def distractor_sizes(n: int, sizes: Sequence[int] = DEFAULT_SIZES) -> tuple[int, ...]:
    """The D evaluated with ``n`` distractors: ``sizes`` up to n, then n if not among them."""
    if n < 1:
        raise ConfigError("identification needs at least one distractor")
    if any(int(s) < 1 for s in sizes):
        raise ConfigError(f"distractor sizes must be >= 1, got {list(sizes)}")
    out = sorted({int(s) for s in sizes if int(s) <= n})
    if not out or out[-1] != n:
        out.append(n)
    return tuple(out)


def distractor_order(n: int, seed: int = 0) -> np.ndarray:
    """The seeded permutation fixing the subsets: subset D = ``distractor_order(n, seed)[:D]``."""
    return np.random.default_rng(seed).permutation(n)


def probe_pairs(labels) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs of two different images of one identity.

    Returns ``(probe, target, identity, identities)``: row indices of p and g, the index of
    their identity in ``identities`` (the sorted distinct labels). Pairs are grouped by
    identity, then by probe.
    """
    identities, inv = np.unique(np.asarray(labels), return_inverse=True)
    inv = inv.ravel()
    members = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[members], np.arange(len(identities) + 1))
    probe, target, ident = [], [], []
    for i in range(len(identities)):
        m = members[bounds[i]:bounds[i + 1]]
        if len(m) < 2:
            continue
        p, g = np.meshgrid(m, m, indexing="ij")
        off = p != g
        probe.append(p[off])
        target.append(g[off])
        ident.append(np.full(off.sum(), i))
    cat = (lambda a: np.concatenate(a).astype(np.int64)) if probe else (lambda a: np.zeros(0, np.int64))
    return cat(probe), cat(target), cat(ident), identities


def _n_rows(distractors, n_distractors: int | None) -> int:
    if isinstance(distractors, np.ndarray) or (hasattr(distractors, "__array__")
                                               and getattr(distractors, "ndim", None) == 2):
        n = len(distractors)
        if n_distractors is not None and n_distractors != n:
            raise ConfigError(f"n_distractors={n_distractors} but the distractor array has {n} rows")
        return n
    if n_distractors is None:
        raise ConfigError("distractors given as chunks: pass n_distractors (the total row count)")
    return int(n_distractors)


def _check_order(order, n: int) -> np.ndarray:
    order = np.asarray(order)
    if order.shape != (n,) or not np.issubdtype(order.dtype, np.integer):
        raise ConfigError(f"order must be a permutation of range({n}), got shape {order.shape}")
    if n and (order.min() < 0 or order.max() >= n or np.bincount(order, minlength=n).max() > 1):
        raise ConfigError(f"order must be a permutation of range({n}) (repeated or out-of-range ids)")
    return order.astype(np.int64, copy=False)


def _pair_similarities(F, probe, target, ident, G=None) -> np.ndarray:
    """s(p, g) = <F[p], G[g]> per pair (G = F by default; float64 of float32 dot products), one
    small Gram matrix per identity (its probes x its targets)."""
    G = F if G is None else G
    sim = np.empty(len(probe), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, ident[1:] != ident[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(ident)], strict=True):
        mp, mt = np.unique(probe[a:b]), np.unique(target[a:b])
        S = F[mp] @ G[mt].T
        sim[a:b] = S[np.searchsorted(mp, probe[a:b]), np.searchsorted(mt, target[a:b])]
    return sim


def _given_pairs(labels, pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(probe, target, identity, identities)`` as :func:`probe_pairs` returns them, for the
    pairs given (sorted by identity, then probe, then target; checked)."""
    try:
        probe, target = (np.asarray(a, dtype=np.int64).ravel() for a in pairs)
    except (TypeError, ValueError):
        raise ConfigError("pairs must be (probe, target): two arrays of row indices") from None
    n = len(labels)
    if len(probe) != len(target) or (len(probe) and (min(probe.min(), target.min()) < 0
                                                      or max(probe.max(), target.max()) >= n)):
        raise ConfigError(f"pairs: probe and target need equal lengths and rows in [0, {n})")
    if (probe == target).any():
        raise ConfigError("pairs: a pair compares an image with itself")
    if (labels[probe] != labels[target]).any():
        raise ConfigError("pairs: every pair's probe and target must have the same label")
    identities, inv = np.unique(labels, return_inverse=True)
    ident = inv.ravel()[probe]
    order = np.lexsort((target, probe, ident))
    return probe[order], target[order], ident[order], identities


def identify(features, labels, distractors: Source, *, seed: int = 0,
             sizes: Sequence[int] = DEFAULT_SIZES, order=None, n_distractors: int | None = None,
             max_rank: int = MAX_RANK, full_curve_up_to: int = FULL_CURVE_UP_TO,
             tie_eps: float = TIE_EPS, reps: int = DEFAULT_REPS, level: float = DEFAULT_LEVEL,
             chunk_rows: int = DEFAULT_CHUNK_ROWS, gallery=None,
             pairs=None) -> IdentificationResult:
    """MegaFace-style identification of probe ``features`` against ``distractors``.

    ``features``: (n, d) probe-set embeddings; ``labels``: n identity labels (any sortable
    values). ``distractors``: (N, d) array or memmap, or chunks (an iterable of (m, d)
    blocks or a callable returning one; then ``n_distractors`` must give N). Subsets D are
    ``sizes`` (default :data:`DEFAULT_SIZES`) up to N, plus N; nested in the order
    ``order`` (a permutation of range(N)) or, by default, ``distractor_order(N, seed)``.
    The CMC of the largest D runs to min(``max_rank``, D) (default 1000), or to D when
    D <= ``full_curve_up_to`` (default 10,000). Ties: see :data:`TIE_EPS`. Intervals:
    ``reps`` (1000) identity-bootstrap replicates at ``level`` (0.95), seeded by ``seed``.
    Identities with a single image give no pair and are only counted (``n_singletons``).
    ``gallery``: (n, d) features of the same images used for the target of each pair (the
    clean-gallery variant, see the module docstring); default ``features``.
    ``pairs``: ``(probe, target)`` row indices (two equal-length integer arrays) of the pairs
    to rank instead of every ordered pair of two images of one identity: e.g. a real
    occluded image as the probe and a neutral image of the same person as the target, both
    rows of ``features`` / ``gallery``; each pair's two labels must be equal.
    Raises ConfigError for inconsistent inputs and OccbenchError for NaN/inf or zero rows.
    """
    F = check_features(features, "probe features")
    labels = np.asarray(labels)
    if labels.shape != (len(F),):
        raise ConfigError(f"{len(F)} probe features but labels of shape {labels.shape}")
    if tie_eps < 0 or max_rank < 1:
        raise ConfigError(f"need tie_eps >= 0 and max_rank >= 1, got {tie_eps}, {max_rank}")
    if gallery is not None:
        gallery = check_features(gallery, "gallery features")
        if gallery.shape != F.shape:
            raise ConfigError(f"{F.shape} probe features but gallery features of shape "
                              f"{gallery.shape}: one gallery row per probe image")
    if pairs is None:
        probe, target, ident, identities = probe_pairs(labels)
        per_id = np.unique(labels, return_counts=True)[1]
        singletons = int((per_id == 1).sum())
    else:
        probe, target, ident, identities = _given_pairs(labels, pairs)
        singletons = len(np.setdiff1d(np.unique(labels), identities[np.unique(ident)]))
    if not len(probe):
        raise ConfigError(f"no identity among {len(identities)} has two probe images: no pairs to rank")

    N = _n_rows(distractors, n_distractors)
    sizes = distractor_sizes(N, sizes)
    order_given = order is not None
    order = _check_order(order, N) if order_given else distractor_order(N, seed)
    proper = np.asarray(sizes[:-1], dtype=np.int64)  # subsets smaller than N: bands of positions
    groups = np.full(N, -1, dtype=np.int16)
    inner = order[:proper[-1]] if len(proper) else order[:0]
    groups[inner] = np.searchsorted(proper, np.arange(len(inner)), side="right")
    L = N if N <= full_curve_up_to else min(max_rank, N)

    # Search only the images that are a probe of some pair.
    qrows = np.unique(probe)
    qpos = np.full(len(F), -1, dtype=np.int64)
    qpos[qrows] = np.arange(len(qrows))
    res = knn_ip_stream(F[qrows], distractors, L, groups=groups, n_groups=len(proper),
                        chunk_rows=chunk_rows, name="distractors")
    if res.n_rows != N:
        raise ConfigError(f"distractors: {res.n_rows} rows read but n_distractors={N}")

    pair_sims = _pair_similarities(F, probe, target, ident, gallery)
    thr = pair_sims - tie_eps
    # rank at the largest D: 1 + #(top-K similarities >= thr); K + 1 means beyond the top K.
    neg = -res.sims.astype(np.float64)  # ascending per row
    ranks = np.empty(len(probe), dtype=np.int64)
    pq = qpos[probe]
    starts = np.flatnonzero(np.r_[True, pq[1:] != pq[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(pq)], strict=True):
        ranks[a:b] = 1 + np.searchsorted(neg[pq[a]], -thr[a:b], side="right")
    prefix_max = np.maximum.accumulate(res.group_max, axis=1) if len(proper) else res.group_max
    hits = np.empty((len(probe), len(sizes)), dtype=bool)
    hits[:, :-1] = prefix_max[pq] < thr[:, None]
    hits[:, -1] = ranks == 1

    cmc = np.cumsum(np.bincount(ranks, minlength=L + 2)[1:L + 1]) / len(ranks)

    # Bootstrap over identities that have pairs.
    used, pid = np.unique(ident, return_inverse=True)
    G = len(used)
    n_pairs_id = np.bincount(pid, minlength=G).astype(np.float64)
    hits_id = np.zeros((G, len(sizes)))
    np.add.at(hits_id, pid, hits)
    hist = np.bincount(pid * (L + 2) + ranks, minlength=G * (L + 2)).reshape(G, L + 2)
    cmc_id = np.cumsum(hist[:, 1:L + 1], axis=1, dtype=np.float64)
    ci_kw = dict(reps=reps, level=level, seed=seed)
    d_lo, d_hi = cluster_bootstrap_ci(hits_id, n_pairs_id, **ci_kw)
    r_lo, r_hi = cluster_bootstrap_ci(cmc_id, n_pairs_id, **ci_kw)

    return IdentificationResult(
        sizes=sizes,
        tpir_at_D={D: float(hits[:, i].mean()) for i, D in enumerate(sizes)},
        ci_at_D={D: (float(d_lo[i]), float(d_hi[i])) for i, D in enumerate(sizes)},
        cmc=cmc,
        ci_at_rank={r: (float(r_lo[r - 1]), float(r_hi[r - 1])) for r in range(1, L + 1)},
        ranks=ranks, hits_at_D=hits, pair_probe=probe, pair_target=target, pair_identity=ident,
        identities=identities, n_identities=G, n_singletons=singletons,
        n_probe_images=len(F), n_distractors=N, max_rank=L,
        settings=dict(seed=seed, tie_eps=tie_eps, reps=reps, level=level,
                      gallery="clean" if gallery is not None else "probes",
                      device=get_searcher().device, order="given" if order_given else "seed"),
        pair_sims=pair_sims, impostor_top=_largest(res.sims, L),
        n_impostors=len(qrows) * N,
    )


def _largest(sims: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest values of a (rows, L) array, descending (float64)."""
    flat = sims.astype(np.float64).ravel()
    k = min(k, len(flat))
    top = np.partition(flat, len(flat) - k)[len(flat) - k:] if k else flat[:0]
    return np.sort(top)[::-1]


#: False accept rates of MegaFace-style verification (its headline: 1e-6).
MEGAFACE_FARS = (1e-6, 1e-5, 1e-4)


def megaface_tar(res: IdentificationResult, fars=MEGAFACE_FARS) -> dict[float, float]:
    """MegaFace challenge 1's verification on the identification data: genuine pairs = the
    probe pairs of ``res`` (s(p, g)), impostor pairs = every searched probe x every
    distractor (``res.n_impostors``). TAR at each FAR: the share of genuine pairs scoring
    above the (k + 1)-th largest impostor similarity, k = floor(FAR x impostors) (at most k
    impostors accepted). NaN where k + 1 exceeds the impostors kept (``max_rank``): that
    FAR needs a deeper search."""
    out = {}
    for f in fars:
        k = int(np.floor(f * res.n_impostors + 1e-9))
        if k + 1 > len(res.impostor_top):
            out[float(f)] = float("nan")
            continue
        out[float(f)] = float(np.mean(res.pair_sims > res.impostor_top[k]))
    return out
