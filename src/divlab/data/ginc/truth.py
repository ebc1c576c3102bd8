"""Ground-truth diversity of a concept set (what Task2Vec diversity should track).

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
"""

from __future__ import annotations

import numpy as np

from divlab.data.ginc.family import ConceptFamily


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
    affinity = np.clip(roots @ roots.T, 0.0, 1.0)
    return np.sqrt(1.0 - affinity)


def ground_truth_diversity(
    family: ConceptFamily,
    indices: list[int] | np.ndarray,
    weights: np.ndarray | None = None,
    horizon: int = 1024,
    max_concepts: int = 2000,
    seed: int = 0,
) -> dict:
    """Ground-truth diversity measures of a weighted concept set (see module docstring)."""
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
    }
    if n < 2:
        return result
    chosen = np.arange(n)
    if n > max_concepts:
        chosen = np.sort(np.random.default_rng(seed).choice(n, max_concepts, replace=False))
    distances = hellinger_matrix(bigram_distributions(family, indices[chosen], horizon))
    upper = np.triu_indices(len(chosen), k=1)
    result["mean_pairwise_hellinger"] = float(distances[upper].mean())
    w = weights[chosen]
    pair_weights = np.outer(w, w)
    np.fill_diagonal(pair_weights, 0.0)
    result["expected_hellinger"] = float((pair_weights * distances).sum() / pair_weights.sum())
    return result
