"""Exact likelihoods under GINC concepts: the oracle loss and next-token posteriors.

The forward algorithm runs on many documents at once and exploits the factorised
transition ``kron(A_v, A_s)``: with the forward vector of a document held as an
(n_values x n_slots) matrix ``alpha``, one step is ``A_v^T @ alpha @ A_s`` (two small
matmuls instead of one n_states^2 one). Each step is normalised and the log of the
normaliser accumulated (the scaled forward algorithm: log-space accuracy without
logsumexp). A document the concept cannot produce gets log-likelihood ``-inf``, never NaN.

Emissions may pass through the substitution channel of the quality knobs:
``P(x | state) = (1 - r) 1[x = E[state]] + r / (V - 1) 1[x != E[state]]`` (r = 0: the
deterministic GINC emission).
"""

from __future__ import annotations

import numpy as np

from divlab.data.ginc.family import ConceptArrays, ConceptFamily


def forward(
    family: ConceptFamily,
    concepts: ConceptArrays,
    rows: np.ndarray,
    tokens: np.ndarray,
    substitution_rate: float | np.ndarray = 0.0,
    start: np.ndarray | None = None,
    per_token: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward pass of each document ``tokens[d]`` under concept ``concepts[rows[d]]``.

    ``start`` (D, n_states) overrides the concepts' start distributions (ICL prompts start
    in one slot). Returns ``(log_likelihood, alpha)``: ``log_likelihood`` is (D,), or with
    ``per_token`` the (D, T) conditional log-probabilities ``log P(x_t | x_<t)`` (whose
    row sums are the log-likelihoods); ``alpha`` (D, n_values, n_slots) is the filtered
    posterior over the last hidden state (zeros if the document is impossible)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError("tokens must be a (documents, length) array")
    n_docs, length = tokens.shape
    rows = np.asarray(rows, dtype=np.int64)
    n_values, n_slots = family.spec.n_values, family.spec.n_slots
    vocab_size = family.spec.vocab_size
    emissions = family.emissions[None]  # (1, n_values, n_slots)
    value_t = family.value_transitions.T
    slot_transitions = concepts.slot_transitions[rows]  # (D, n_slots, n_slots)

    rate = np.broadcast_to(np.asarray(substitution_rate, dtype=float), (n_docs,))
    hit = (1.0 - rate)[:, None, None]
    miss = (rate / (vocab_size - 1))[:, None, None]

    def emission(t: int) -> np.ndarray:
        match = emissions == tokens[:, t, None, None].astype(np.int64)
        return np.where(match, hit, miss)

    alpha = (concepts.start[rows] if start is None else np.asarray(start, float)).reshape(
        n_docs, n_values, n_slots
    )
    log_likelihood = np.zeros(n_docs)
    steps = np.empty((n_docs, length)) if per_token else None
    for t in range(length):
        if t > 0:
            alpha = np.matmul(np.matmul(value_t, alpha), slot_transitions)
        alpha = alpha * emission(t)
        norm = alpha.sum(axis=(1, 2))
        dead = norm <= 0.0
        with np.errstate(divide="ignore"):
            log_norm = np.log(norm)
        log_likelihood += log_norm
        if steps is not None:
            steps[:, t] = log_norm
        alpha = alpha / np.where(dead, 1.0, norm)[:, None, None]
    return (steps if steps is not None else log_likelihood), alpha


def slot_start(family: ConceptFamily, start_slot) -> np.ndarray:
    """(D, n_states) start distributions of documents that begin in slot ``start_slot[d]``
    with the value uniform: the start of an ICL prompt's examples (``prompts``)."""
    start_slot = np.asarray(start_slot, dtype=np.int64)
    n_values, n_slots = family.spec.n_values, family.spec.n_slots
    start = np.zeros((len(start_slot), family.n_states))
    states = np.arange(n_values) * n_slots + start_slot[:, None]
    start[np.arange(len(start_slot))[:, None], states] = 1.0 / n_values
    return start


def next_token_distribution(
    family: ConceptFamily, concepts: ConceptArrays, rows: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """``P(x_{t+1} = a | x_{1..t})`` (D, vocab_size) from filtered posteriors ``alpha``
    (deterministic emissions)."""
    rows = np.asarray(rows, dtype=np.int64)
    following = np.matmul(
        np.matmul(family.value_transitions.T, alpha), concepts.slot_transitions[rows]
    )
    return following.reshape(len(rows), -1) @ family.emission_matrix()


def oracle_nll(
    family: ConceptFamily,
    concepts: ConceptArrays,
    rows: np.ndarray,
    tokens: np.ndarray,
    substitution_rate: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Per-token negative log-likelihood (nats) of each document under its true concept:
    ``-log P(x_1..x_T | concept) / T``, the irreducible loss of a model of that concept."""
    log_likelihood, _ = forward(family, concepts, rows, tokens, substitution_rate)
    return -log_likelihood / tokens.shape[1]


def bayes_mixture_nll(
    family: ConceptFamily,
    concepts: ConceptArrays,
    weights: np.ndarray,
    tokens: np.ndarray,
    substitution_rate: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Per-token NLL of each document under the Bayes-optimal predictor that knows the
    concept set and its weights but not the document's concept:
    ``-log sum_c w_c P(x | c) / T``. Costs one forward pass per concept."""
    tokens = np.asarray(tokens)
    per_concept = np.stack(
        [
            forward(family, concepts, np.full(len(tokens), c), tokens, substitution_rate)[0]
            for c in range(len(concepts))
        ]
    )  # (C, D)
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(weights, float))[:, None]
    total = per_concept + log_weights
    peak = total.max(axis=0)
    safe_peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):  # every concept impossible: -inf, reported as inf NLL
        log_mixture = safe_peak + np.log(np.exp(total - safe_peak).sum(axis=0))
    return -log_mixture / tokens.shape[1]


def greedy_continuation(
    family: ConceptFamily,
    concepts: ConceptArrays,
    rows: np.ndarray,
    prefixes: np.ndarray,
    length: int,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """(D, length) argmax continuation of each prefix under its true concept: at each step
    the most probable next token, which is then observed (the oracle's greedy decoding).
    ``start`` as for :func:`forward` (e.g. :func:`slot_start` for ICL examples)."""
    rows = np.asarray(rows, dtype=np.int64)
    _, alpha = forward(family, concepts, rows, prefixes, start=start)
    emissions = family.emissions[None]
    slot_transitions = concepts.slot_transitions[rows]
    out = np.empty((len(rows), length), dtype=np.int64)
    for t in range(length):
        following = np.matmul(np.matmul(family.value_transitions.T, alpha), slot_transitions)
        predictive = following.reshape(len(rows), -1) @ family.emission_matrix()
        out[:, t] = predictive.argmax(axis=1)
        alpha = following * (emissions == out[:, t, None, None])
        norm = alpha.sum(axis=(1, 2), keepdims=True)
        alpha = alpha / np.where(norm > 0, norm, 1.0)
    return out
