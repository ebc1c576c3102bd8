"""Concept sets for the experiment plans (BRIEF section 2).

The eval set ``C_test`` is concepts ``0 .. n_eval - 1`` of a family. Plan 1 (``nested``)
trains on ``C_k``: the first ``k`` of one seeded permutation of ``C_test``, so
``C_k`` is a subset of ``C_k'`` whenever ``k < k'``. Plan 2 (``added``) trains on ``C_k``
plus ``k_added`` concepts from outside ``C_test`` (indices ``n_eval, n_eval + 1, ...``),
again nested in ``k_added``. Out-of-distribution prompt concepts live in a separate index
range, ``OOD_OFFSET + j``, that no plan ever trains on.

Designs that separate diversity from the number of concepts (pure functions of a distance
matrix over ``C_test``, deterministic given a seed): ``similarity_spanning_subsets`` holds
``k`` fixed and spans the concepts' mutual distance; ``random_subsets`` draws distinct
random ``k``-subsets; ``design_correlations`` says, before any training, how strongly each
ground-truth diversity measure is tied to ``k`` and to the rival explanations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
from scipy import stats

from divlab import seeds
from divlab.errors import ConfigError

OOD_OFFSET = 1 << 40


def _check_count(name: str, value: int) -> None:
    if int(value) != value or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


def eval_concepts(n_eval: int) -> list[int]:
    """``C_test``: concepts 0 .. n_eval - 1."""
    _check_count("n_eval", n_eval)
    if n_eval < 1:
        raise ConfigError("n_eval must be at least 1 (the eval set needs a concept)")
    return list(range(n_eval))


def nested_concepts(n_eval: int, k: int, order_seed: int = 0) -> list[int]:
    """``C_k``: the first ``k`` concepts of a seeded permutation of ``C_test``."""
    eval_set = eval_concepts(n_eval)
    _check_count("k", k)
    if k < 1 or k > n_eval:
        raise ConfigError(
            f"k={k} must be between 1 and the eval set's size n_eval={n_eval}; "
            "to train on concepts outside the eval set use plan 'added'"
        )
    order = seeds.rng(order_seed, 7).permutation(n_eval)
    return [eval_set[i] for i in order[:k]]


def added_concepts(n_eval: int, k: int, k_added: int, order_seed: int = 0) -> list[int]:
    """Plan 2: ``C_k`` plus ``k_added`` concepts that are not in ``C_test``."""
    _check_count("k_added", k_added)
    base = nested_concepts(n_eval, k, order_seed) if k > 0 else []
    if k == 0:
        eval_concepts(n_eval)
    if not base and k_added == 0:
        raise ConfigError("plan 'added' needs k >= 1 or k_added >= 1")
    return base + [n_eval + j for j in range(k_added)]


def ood_concepts(n: int) -> list[int]:
    """``n`` concepts reserved for out-of-distribution prompts (never trained on)."""
    _check_count("n_ood_concepts", n)
    return [OOD_OFFSET + j for j in range(n)]


def _check_distances(distances: np.ndarray, k: int) -> np.ndarray:
    d = np.asarray(distances, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or not np.isfinite(d).all():
        raise ConfigError(f"distances must be a finite square matrix, got shape {d.shape}")
    if not np.allclose(d, d.T, atol=1e-9) or (d < 0).any():
        raise ConfigError("distances must be symmetric and non-negative")
    _check_count("k", k)
    if not 2 <= k <= len(d):
        raise ConfigError(
            f"k={k} must be between 2 (a pair has a distance) and the {len(d)} concepts"
        )
    return d


def mean_pairwise_distance(distances: np.ndarray, subset: Sequence[int]) -> float:
    """Mean distance over the pairs of a subset of the concepts."""
    return _mean_distance(_check_distances(distances, len(subset)), subset)


def _mean_distance(d: np.ndarray, subset: Sequence[int]) -> float:
    subset = np.asarray(subset, dtype=np.int64)
    return float(d[np.ix_(subset, subset)].sum() / (len(subset) * (len(subset) - 1)))


_EXTREME_STARTS = 16  # greedy starts per extreme: the closest (farthest) pairs


def _greedy(d: np.ndarray, k: int, sign: float, a: int, b: int) -> list[int]:
    """Grow the pair (a, b) to ``k`` concepts, adding the concept nearest the set on
    average (``sign = 1``) or farthest from it on average (``sign = -1``)."""
    chosen = [a, b]
    to_set = d[a] + d[b]  # each concept's summed distance to the set
    while len(chosen) < k:
        score = sign * to_set
        score[chosen] = np.inf
        best = int(np.argmin(score))
        chosen.append(best)
        to_set = to_set + d[best]
    return chosen


def _extreme(d: np.ndarray, k: int, sign: float, starts: int, max_swaps: int) -> list[int]:
    """The ``k`` most similar (``sign = 1``) or most dissimilar (``sign = -1``) concepts,
    approximately: greedy from each of the ``starts`` closest (farthest) pairs, each
    refined by swaps, keeping the best."""
    rows, cols = np.triu_indices(len(d), k=1)
    scores = sign * d[rows, cols]
    starts = min(starts, len(scores))
    best_pairs = np.argpartition(scores, starts - 1)[:starts]
    best_pairs = best_pairs[np.argsort(scores[best_pairs], kind="stable")]
    candidates = [
        _swap_search(
            d, _greedy(d, k, sign, int(rows[p]), int(cols[p])), lambda m: sign * m, max_swaps
        )
        for p in best_pairs
    ]
    return min(candidates, key=lambda subset: sign * _mean_distance(d, subset))


def _swap_search(d: np.ndarray, chosen: list[int], objective, max_swaps: int) -> list[int]:
    """Best-improvement single swaps (one concept out, one in) until none lowers
    ``objective(mean pairwise distance)``; every swap is scored at once from each
    concept's summed distance to the set."""
    k = len(chosen)
    pairs = k * (k - 1) / 2
    inside = np.zeros(len(d), dtype=bool)
    inside[chosen] = True
    for _ in range(max_swaps):
        members, others = np.flatnonzero(inside), np.flatnonzero(~inside)
        if len(others) == 0:
            break
        total = d[np.ix_(members, members)].sum() / 2
        to_set = d[:, members].sum(axis=1)
        # total after swapping out m, in o: total - to_set[m] + to_set[o] - d[m, o]
        swapped = total - to_set[members][:, None] + to_set[others][None, :]
        swapped = swapped - d[np.ix_(members, others)]
        scores = objective(swapped / pairs)
        m, o = np.unravel_index(np.argmin(scores), scores.shape)
        if not scores[m, o] < objective(np.array(total / pairs)) - 1e-12:
            break
        inside[members[m]], inside[others[o]] = False, True
    return sorted(int(i) for i in np.flatnonzero(inside))


def similarity_spanning_subsets(
    distances: np.ndarray, k: int, levels: int | Sequence[float], seed: int = 0
) -> list[list[int]]:
    """``k``-subsets of ``C_test`` whose mean pairwise distance spans from the ``k`` most
    mutually similar concepts to the ``k`` most dissimilar, at fixed ``k``.

    ``distances`` is the (n_eval x n_eval) distance matrix of ``C_test`` (e.g. Hellinger,
    :meth:`divlab.data.ginc.truth.ConceptGeometry.hellinger`); the subsets hold indices
    into it, which are the concepts' ids since ``C_test`` is ``0 .. n_eval - 1``.
    ``levels``: a count of evenly spaced levels (at least 2), or levels in [0, 1].

    Method: each extreme is built greedily from each of the 16 closest (farthest) pairs,
    adding the concept with the smallest (largest) mean distance to the set, then
    improved by best-improvement single swaps (one concept out, one in) until no swap
    helps; the best of the 16 is kept. Level ``l`` targets the mean pairwise distance
    ``lo + l * (hi - lo)`` between the two extremes (levels evenly spaced in value, not
    in random subsets' quantiles, which would bunch the middle levels), reached by the
    same swaps from a seeded random ``k``-subset. The extremes are local optima (finding
    the exact ones is NP-hard), so approximate, though on 16-24 GINC concepts at k = 4-8
    they matched exhaustive search; intermediate subsets land within a swap's step of
    their targets. Returned sorted by mean pairwise distance (ties by level), each subset
    in increasing order; equal levels may return equal subsets. ``seed`` moves only the
    intermediate levels' starting subsets."""
    d = _check_distances(distances, k)
    if isinstance(levels, int | np.integer):
        if levels < 2:
            raise ConfigError(f"levels must be at least 2 (the two extremes), got {levels}")
        levels = np.linspace(0.0, 1.0, int(levels))
    levels = np.asarray(levels, dtype=float).reshape(-1)
    if len(levels) == 0 or not ((levels >= 0) & (levels <= 1)).all():
        raise ConfigError(f"levels must lie in [0, 1], got {levels.tolist()}")
    max_swaps = 10 * len(d)
    similar = _extreme(d, k, 1.0, _EXTREME_STARTS, max_swaps)
    dissimilar = _extreme(d, k, -1.0, _EXTREME_STARTS, max_swaps)
    lo, hi = _mean_distance(d, similar), _mean_distance(d, dissimilar)
    subsets = []
    for position, level in enumerate(levels):
        if level == 0.0:
            subset = similar
        elif level == 1.0:
            subset = dissimilar
        else:
            target = lo + level * (hi - lo)
            start = seeds.rng(seed, "similarity_spanning", k, position).permutation(len(d))[:k]
            subset = _swap_search(
                d, [int(i) for i in start], lambda m, t=target: np.abs(m - t), max_swaps
            )
        subsets.append((_mean_distance(d, subset), float(level), subset))
    return [subset for _, _, subset in sorted(subsets, key=lambda item: item[:2])]


def random_subsets(n_eval: int, k: int, count: int, seed: int = 0) -> list[list[int]]:
    """``count`` distinct seeded random ``k``-subsets of ``C_test`` (each in increasing
    order), refused when ``C_test`` has fewer than ``count`` distinct ``k``-subsets."""
    eval_concepts(n_eval)
    _check_count("k", k)
    _check_count("count", count)
    if not 1 <= k <= n_eval:
        raise ConfigError(f"k={k} must be between 1 and n_eval={n_eval}")
    available = math.comb(n_eval, k)
    if count > available:
        raise ConfigError(
            f"C_test of {n_eval} concepts has only {available} distinct {k}-subsets, "
            f"fewer than the {count} asked for; ask for fewer or use a larger n_eval"
        )
    rng = seeds.rng(seed, "random_subsets", n_eval, k)
    if available <= 4 * count:  # dense: rejection would stall, so draw from them all
        pool = np.array(list(combinations(range(n_eval), k)))
        return [row.tolist() for row in pool[rng.choice(available, count, replace=False)]]
    seen: dict[tuple[int, ...], None] = {}
    while len(seen) < count:
        seen.setdefault(tuple(sorted(int(i) for i in rng.choice(n_eval, k, replace=False))))
    return [list(subset) for subset in seen]


DIVERSITY_MEASURES = ("effective_distinct_concepts", "mean_pairwise_hellinger")
RIVALS = ("n_concepts", "eval_coverage_distance", "train_typicality_distance")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:  # undefined, not an error
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def design_correlations(
    conditions: Sequence[Mapping[str, float]],
    measures: Sequence[str] = DIVERSITY_MEASURES,
    rivals: Sequence[str] = RIVALS,
) -> dict[str, dict[str, float]]:
    """Spearman correlation, across conditions, of each ground-truth diversity measure
    with each rival (``k`` as ``n_concepts``, coverage and typicality distances):
    ``{measure: {rival: rho}}``. A design separates diversity from a rival when ``|rho|``
    is small. ``conditions`` are per-condition dicts, e.g. ``ground_truth_diversity`` and
    ``ground_truth_rivals`` merged; rho is NaN when a column is constant or fewer than 3
    conditions have finite values of both."""
    if len(conditions) == 0:
        raise ConfigError("design_correlations needs at least one condition")
    columns = {}
    for name in (*measures, *rivals):
        missing = [i for i, row in enumerate(conditions) if name not in row]
        if missing:
            raise ConfigError(
                f"condition {missing[0]} has no {name!r}; merge ground_truth_diversity and "
                "ground_truth_rivals into each condition"
            )
        columns[name] = np.array([float(row[name]) for row in conditions])
    return {m: {r: _spearman(columns[m], columns[r]) for r in rivals} for m in measures}
