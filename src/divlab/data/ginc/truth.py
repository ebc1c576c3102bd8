"""Ground-truth diversity of a concept set (what Task2Vec diversity should track), and
the rival explanations a diversity measure must be separated from.

* ``n_concepts``; the entropy of the concept weights ``H(w)`` (nats) and the effective
  number of concepts ``exp(H(w))``.
* Distances between concepts: each concept ``c`` is summarised by its expected token
  *bigram* distribution in a document of ``horizon`` tokens,
  ``B_c[a, b] = (1 / (L - 1)) sum_t P(x_t = a, x_{t+1} = b | c)``, and two concepts are
  compared with the Hellinger distance ``H(P, Q) = sqrt(1 - sum sqrt(P * Q))`` (in [0, 1]).
  Bigrams rather than unigrams because concepts of one family share emissions and differ
  in their transitions. Reported as the unweighted mean over pairs and as the expected
  distance between two different concepts drawn by weight (which imbalance lowers).
  Sets above ``max_concepts`` concepts are measured on a seeded random subset of that size.
* ``effective_distinct_concepts``: the weighted Vendi score of the concepts under the
  similarity ``S = 1 - H`` (see :func:`effective_distinct_concepts`); unlike
  ``exp(H(w))`` it counts near-duplicate concepts as one.
* Rivals (:func:`ground_truth_rivals`), which a diversity effect must be told apart from:
  ``eval_coverage_distance``, how far each eval concept is from its nearest training
  concept, and ``train_typicality_distance``, how far the training concepts are from the
  eval set on average. Both are distances: LOWER means better covered / more typical.

Bigram distributions are the cost; :class:`ConceptGeometry` computes each concept's once
and serves any number of conditions (subsets, plans) from the cache.
"""

from __future__ import annotations

import numpy as np

from divlab import seeds
from divlab.data.ginc.family import ConceptFamily
from divlab.errors import ConfigError


def bigram_distributions(
    family: ConceptFamily, indices: list[int] | np.ndarray, horizon: int = 1024
) -> np.ndarray:
    """Expected bigram distribution of each concept over a ``horizon``-token document:
    shape (C, V, V), each slice summing to 1."""
    arrays = family.concepts(indices)
    n_values, n_slots, vocab = family.spec.n_values, family.spec.n_slots, family.spec.vocab_size
    marginal = arrays.start.reshape(-1, n_values, n_slots)
    mean_marginal = np.zeros_like(marginal)
    value_t = family.value_transitions.T
    for _ in range(max(horizon - 1, 1)):  # average state marginal over positions 0 .. L-2
        mean_marginal += marginal
        marginal = np.matmul(np.matmul(value_t, marginal), arrays.slot_transitions)
    mean_marginal /= max(horizon - 1, 1)
    emission = family.emission_matrix()  # (S, V)
    out = np.empty((len(arrays), vocab, vocab))
    for c in range(len(arrays)):
        pairs = mean_marginal[c].reshape(-1, 1) * np.kron(
            family.value_transitions, arrays.slot_transitions[c]
        )
        out[c] = emission.T @ pairs @ emission
    return out


def hellinger_matrix(distributions: np.ndarray) -> np.ndarray:
    """Pairwise Hellinger distances between flattened distributions (C, ...) -> (C, C)."""
    roots = np.sqrt(distributions.reshape(len(distributions), -1))
    return _hellinger(roots, roots)


def _hellinger(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Hellinger distances between square-rooted, flattened distributions."""
    affinity = np.clip(rows @ cols.T, 0.0, 1.0)
    return np.sqrt(1.0 - affinity)


def _weights(n: int, weights: np.ndarray | list[float] | None) -> np.ndarray:
    """Normalised concept weights (uniform by default), validated."""
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=float).reshape(-1)
    if len(w) != n or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(
            f"concept weights must be {n} finite non-negative numbers with a positive sum, "
            f"got {len(w)} values summing to {w.sum() if len(w) else 0}"
        )
    return w / w.sum()


def _indices(name: str, indices: list[int] | np.ndarray) -> np.ndarray:
    out = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(out) == 0:
        raise ConfigError(f"{name} needs at least one concept")
    return out


def _subsample(n: int, max_concepts: int, rng: np.random.Generator) -> np.ndarray:
    if n <= max_concepts:
        return np.arange(n)
    return np.sort(rng.choice(n, max_concepts, replace=False))


class ConceptGeometry:
    """Hellinger geometry of a family's concepts at one ``horizon``, with a cache.

    Each concept's square-rooted bigram distribution is computed once (all missing ones in
    one batch) and kept: ``8 * vocab_size ** 2`` bytes per concept (20 KB at vocab 50), so
    a plan that measures many conditions over one ``C_test`` pays for ``C_test`` once.
    """

    def __init__(self, family: ConceptFamily, horizon: int = 1024) -> None:
        if int(horizon) != horizon or horizon < 2:
            raise ConfigError(f"horizon must be an integer of at least 2 tokens, got {horizon!r}")
        self.family = family
        self.horizon = int(horizon)
        self._roots: dict[int, np.ndarray] = {}

    def roots(self, indices: list[int] | np.ndarray) -> np.ndarray:
        """``sqrt(B_c)`` flattened, shape (C, V * V), for the given concepts."""
        indices = _indices("a concept set", indices)
        # in the order asked, so a cold cache computes exactly what one batch call would
        missing = list(dict.fromkeys(int(i) for i in indices if int(i) not in self._roots))
        if missing:
            computed = bigram_distributions(self.family, missing, self.horizon)
            for index, distribution in zip(missing, computed, strict=True):
                self._roots[index] = np.sqrt(distribution.reshape(-1))
        return np.stack([self._roots[int(i)] for i in indices])

    def hellinger(
        self, rows: list[int] | np.ndarray, cols: list[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Hellinger distances between concepts ``rows`` and ``cols`` (default: ``rows``),
        shape (len(rows), len(cols)); a concept's distance to itself is exactly 0."""
        rows = _indices("a concept set", rows)
        row_roots = self.roots(rows)
        if cols is None:  # one array, so numpy's symmetric product gives a symmetric matrix
            cols, col_roots = rows, row_roots
        else:
            cols = _indices("a concept set", cols)
            col_roots = self.roots(cols)
        distances = _hellinger(row_roots, col_roots)
        distances[rows[:, None] == cols[None, :]] = 0.0  # not sqrt(rounding error)
        return distances

    def similarity(self, indices: list[int] | np.ndarray) -> np.ndarray:
        """``S = 1 - H`` between the concepts (see :func:`similarity_matrix`)."""
        return 1.0 - self.hellinger(indices)

    def coverage(self, train: list[int] | np.ndarray, eval_: list[int] | np.ndarray) -> float:
        """Mean over eval concepts of the distance to the nearest training concept."""
        return coverage_distance(self.hellinger(eval_, train))

    def typicality(
        self,
        train: list[int] | np.ndarray,
        eval_: list[int] | np.ndarray,
        weights: np.ndarray | list[float] | None = None,
    ) -> float:
        """Mean over training concepts (by ``weights``) of their mean distance to the eval
        concepts."""
        return typicality_distance(self.hellinger(eval_, train), weights)


def similarity_matrix(
    family: ConceptFamily, indices: list[int] | np.ndarray, horizon: int = 1024
) -> np.ndarray:
    """``S = 1 - H``, H the Hellinger matrix of the concepts' bigram distributions.

    ``S`` is a valid (positive semi-definite) kernel with ``S_ii = 1``: ``H = sqrt(1 - A)``
    with ``A`` the Bhattacharyya affinities ``sum sqrt(P * Q)``, a Gram matrix with entries
    in [0, 1], and ``1 - sqrt(1 - x) = x/2 + x^2/8 + x^3/16 + ...`` has non-negative
    coefficients, so ``S`` is a non-negative sum of Hadamard powers of ``A`` (Schur)."""
    return ConceptGeometry(family, horizon).similarity(indices)


def effective_distinct_concepts(
    similarity: np.ndarray, weights: np.ndarray | list[float] | None = None
) -> float:
    """The effective number of distinct concepts: the weighted Vendi score
    ``exp(-sum_i lambda_i log lambda_i)``, ``lambda`` the eigenvalues of
    ``diag(sqrt w) S diag(sqrt w)`` (Friedman & Dieng 2023, "The Vendi Score", with a
    probability-weighted kernel; uniform ``w`` gives their ``K / n``).

    With ``S_ii = 1`` and ``sum w = 1`` the eigenvalues sum to 1. Closed forms: ``k``
    for ``k`` equally weighted orthogonal concepts (``S = I``), ``exp(H(w))`` for weighted
    orthogonal ones, 1 for identical ones (``S`` all ones), and the number of blocks for
    equally weighted blocks of identical concepts."""
    s = np.asarray(similarity, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0 or not np.isfinite(s).all():
        raise ConfigError(f"similarity must be a finite square matrix, got shape {s.shape}")
    if not np.allclose(s, s.T, atol=1e-9) or not np.allclose(np.diag(s), 1.0, atol=1e-9):
        raise ConfigError("similarity must be symmetric with ones on the diagonal")
    root = np.sqrt(_weights(len(s), weights))
    eigenvalues = np.linalg.eigvalsh(root[:, None] * s * root[None, :])
    eigenvalues = eigenvalues[eigenvalues > 1e-12]  # rounding can leave tiny negatives
    eigenvalues = eigenvalues / eigenvalues.sum()
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def coverage_distance(eval_by_train: np.ndarray) -> float:
    """Mean over eval concepts (rows) of the distance to the nearest training concept
    (columns): 0 when every eval concept is trained on; lower is better coverage."""
    d = np.asarray(eval_by_train, dtype=float)
    if d.ndim != 2 or d.size == 0:
        raise ConfigError(f"need an (eval x train) distance matrix, got shape {d.shape}")
    return float(d.min(axis=1).mean())


def typicality_distance(
    eval_by_train: np.ndarray, weights: np.ndarray | list[float] | None = None
) -> float:
    """Mean over training concepts (columns, by ``weights``, uniform by default) of their
    mean distance to the eval concepts (rows); lower is more typical of the eval set."""
    d = np.asarray(eval_by_train, dtype=float)
    if d.ndim != 2 or d.size == 0:
        raise ConfigError(f"need an (eval x train) distance matrix, got shape {d.shape}")
    return float(d.mean(axis=0) @ _weights(d.shape[1], weights))


def coverage(
    family: ConceptFamily,
    train: list[int] | np.ndarray,
    eval_: list[int] | np.ndarray,
    horizon: int = 1024,
) -> float:
    """``eval_coverage_distance``: for each eval concept the Hellinger distance to its
    nearest training concept, averaged over eval concepts (0 when eval is a subset of train;
    LOWER is better coverage)."""
    return ConceptGeometry(family, horizon).coverage(train, eval_)


def typicality(
    family: ConceptFamily,
    train: list[int] | np.ndarray,
    eval_: list[int] | np.ndarray,
    horizon: int = 1024,
) -> float:
    """``train_typicality_distance``: the mean over training concepts of their mean
    Hellinger distance to all eval concepts (LOWER is more typical of the eval set)."""
    return ConceptGeometry(family, horizon).typicality(train, eval_)


def _geometry(
    family: ConceptFamily, horizon: int, geometry: ConceptGeometry | None
) -> ConceptGeometry:
    if geometry is None:
        return ConceptGeometry(family, horizon)
    if geometry.family.spec != family.spec or geometry.horizon != horizon:
        raise ConfigError(
            f"the geometry is of another family or horizon ({geometry.horizon} tokens) than "
            f"asked ({horizon} tokens); build one ConceptGeometry per family and horizon"
        )
    return geometry


def ground_truth_diversity(
    family: ConceptFamily,
    indices: list[int] | np.ndarray,
    weights: np.ndarray | None = None,
    horizon: int = 1024,
    max_concepts: int = 2000,
    seed: int = 0,
    geometry: ConceptGeometry | None = None,
) -> dict:
    """Ground-truth diversity measures of a weighted concept set (see module docstring).

    ``geometry`` (same family and horizon) reuses cached bigram distributions."""
    indices = np.asarray(indices, dtype=np.int64)
    n = len(indices)
    weights = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, float)
    weights = weights / weights.sum()
    nonzero = weights[weights > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    result = {
        "n_concepts": int(n),
        "weight_entropy": entropy,
        "effective_concepts": float(np.exp(entropy)),
        "hellinger_horizon": int(horizon),
        "hellinger_sampled_concepts": int(min(n, max_concepts)),
        "mean_pairwise_hellinger": 0.0,
        "expected_hellinger": 0.0,
        "effective_distinct_concepts": 1.0,
    }
    if n < 2:
        return result
    chosen = np.arange(n)
    if n > max_concepts:
        chosen = np.sort(np.random.default_rng(seed).choice(n, max_concepts, replace=False))
    distances = _geometry(family, horizon, geometry).hellinger(indices[chosen])
    upper = np.triu_indices(len(chosen), k=1)
    result["mean_pairwise_hellinger"] = float(distances[upper].mean())
    w = weights[chosen]
    pair_weights = np.outer(w, w)
    np.fill_diagonal(pair_weights, 0.0)
    result["expected_hellinger"] = float((pair_weights * distances).sum() / pair_weights.sum())
    result["effective_distinct_concepts"] = effective_distinct_concepts(1.0 - distances, w)
    return result


def ground_truth_rivals(
    family: ConceptFamily,
    train: list[int] | np.ndarray,
    eval_: list[int] | np.ndarray,
    weights: np.ndarray | list[float] | None = None,
    horizon: int = 1024,
    max_concepts: int = 2000,
    seed: int = 0,
    geometry: ConceptGeometry | None = None,
) -> dict:
    """Rival explanations of a training concept set's effect on the eval set.

    ``eval_coverage_distance``: mean over eval concepts of the Hellinger distance to the
    nearest training concept (of positive weight). ``train_typicality_distance``: mean
    over training concepts, by ``weights`` (uniform by default), of their mean Hellinger
    distance to the eval concepts. Both LOWER = better covered / more typical. A side
    above ``max_concepts`` concepts is measured on a seeded random subset of that size
    (the eval side's subset is then a sample, so coverage is an estimate; a training set
    inside the eval set still scores 0 while it is not subsampled itself)."""
    train = _indices("the training concept set", train)
    eval_ = _indices("the eval concept set", eval_)
    if int(max_concepts) != max_concepts or max_concepts < 1:
        raise ConfigError(f"max_concepts must be a positive integer, got {max_concepts!r}")
    w = _weights(len(train), weights)
    keep = w > 0
    train, w = train[keep], w[keep]
    chosen_train = _subsample(len(train), max_concepts, seeds.rng(seed, "rivals", "train"))
    chosen_eval = _subsample(len(eval_), max_concepts, seeds.rng(seed, "rivals", "eval"))
    geo = _geometry(family, horizon, geometry)
    cross = geo.hellinger(eval_[chosen_eval], train[chosen_train])
    return {
        "eval_coverage_distance": coverage_distance(cross),
        "train_typicality_distance": typicality_distance(cross, w[chosen_train]),
        "rivals_sampled_train_concepts": len(chosen_train),
        "rivals_sampled_eval_concepts": len(chosen_eval),
    }
