"""Vectorised GINC sampling: every document of a chunk advances one position at a time.

The reference samples document by document through hmmlearn (about 133k tokens/s here).
Here all documents of a chunk move together, and the value and slot chains are sampled
separately because the transition ``kron(A_v, A_s)`` factorises; each step of each chain
is one alias-table draw (O(1) whatever the number of states).
``bench/bench_ginc_sampler.py`` measures the speed-up.

The quality knobs (noise, near duplicates) are substitutions: a chosen position gets a
uniformly random *different* symbol, so every substitution is visible and counted, and the
channel ``P(x | state) = (1 - r) 1[x = E] + r / (V - 1) 1[x != E]`` is exactly what the
oracle scores.
"""

from __future__ import annotations

import numpy as np

from divlab.data.ginc.family import ConceptArrays, ConceptFamily
from divlab.errors import ConfigError

_STEP_BLOCK = 256  # positions whose random numbers are drawn in one call


def _cumulative(probabilities: np.ndarray) -> np.ndarray:
    """Row-wise CDF with the last column exactly 1, so ``u in (0, 1]`` never falls off."""
    cdf = np.cumsum(probabilities, axis=-1)
    cdf[..., -1] = 1.0
    return cdf


def _draw(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: the first index whose CDF reaches ``u`` (``u`` in (0, 1])."""
    return np.count_nonzero(cdf_rows < u[:, None], axis=1)


def alias_tables(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias tables for each row of ``probabilities`` (R, n).

    A draw from row r: pick a column j uniformly, keep it if a uniform falls below
    ``threshold[r, j]``, else take ``alias[r, j]``. Exact, and O(1) per draw whatever n is,
    which is what makes stepping thousands of documents at once cheap.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    n_rows, n = probabilities.shape
    threshold = np.ones((n_rows, n))
    alias = np.tile(np.arange(n), (n_rows, 1))
    for r in range(n_rows):
        scaled = probabilities[r] * n / probabilities[r].sum()
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:
            lo, hi = small.pop(), large.pop()
            threshold[r, lo], alias[r, lo] = scaled[lo], hi
            scaled[hi] -= 1.0 - scaled[lo]
            (small if scaled[hi] < 1.0 else large).append(hi)
        # leftovers are 1 up to rounding: always keep them
    return threshold, alias


def sample_documents(
    family: ConceptFamily,
    concepts: ConceptArrays,
    rows: np.ndarray,
    length: int,
    rng: np.random.Generator,
    return_states: bool = False,
    start_states: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Sample one document per entry of ``rows`` (indices into ``concepts``).

    ``start_states`` (D,) fixes the first hidden state instead of drawing it from the
    concept's start distribution (ICL examples start in a chosen slot). Returns tokens of
    shape (D, length) as uint16 (and the hidden states, flattened as ``v * n_slots + s``,
    if ``return_states``).
    """
    if length < 1:
        raise ConfigError(f"document length must be >= 1, got {length}")
    rows = np.asarray(rows, dtype=np.int64)
    n_docs = len(rows)
    n_values, n_slots = family.spec.n_values, family.spec.n_slots

    # Alias tables, flattened: row r of the value table starts at r * n_values, row s of
    # concept c's slot table at c * n_slots**2 + s * n_slots. Per step and chain: one
    # index sum, two gathers, one compare, one select; then one 2-D gather for the token.
    value_keep, value_alias = (t.ravel() for t in alias_tables(family.value_transitions))
    slot_keep, slot_alias = (
        t.ravel() for t in alias_tables(concepts.slot_transitions.reshape(-1, n_slots))
    )
    concept_offset = rows * n_slots * n_slots
    emissions = family.emissions.astype(np.uint16)

    if start_states is None:
        start = _draw(_cumulative(concepts.start)[rows], 1.0 - rng.random(n_docs))
    else:
        start = np.asarray(start_states, dtype=np.int64)
    value, slot = np.divmod(start, n_slots)

    tokens = np.empty((length, n_docs), dtype=np.uint16)  # time-major: each step writes a row
    states = np.empty((length, n_docs), dtype=np.int64) if return_states else None
    tokens[0] = emissions[value, slot]
    if states is not None:
        states[0] = start
    for block_start in range(1, length, _STEP_BLOCK):
        block = min(_STEP_BLOCK, length - block_start)
        value_pick = rng.integers(0, n_values, size=(block, n_docs))
        slot_pick = rng.integers(0, n_slots, size=(block, n_docs))
        value_u, slot_u = rng.random((2, block, n_docs))
        slot_pick_at = slot_pick + concept_offset  # where the pick sits in the flat table
        for i in range(block):
            index = value * n_values + value_pick[i]
            value = np.where(value_u[i] < value_keep[index], value_pick[i], value_alias[index])
            index = slot * n_slots + slot_pick_at[i]
            slot = np.where(slot_u[i] < slot_keep[index], slot_pick[i], slot_alias[index])
            tokens[block_start + i] = emissions[value, slot]
            if states is not None:
                states[block_start + i] = value * n_slots + slot
    if states is not None:
        return np.ascontiguousarray(tokens.T), np.ascontiguousarray(states.T)
    return np.ascontiguousarray(tokens.T)


def substitute(
    tokens: np.ndarray, rate: float, vocab_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Replace each token with probability ``rate`` by a uniformly random other symbol,
    in place. Returns the number of substituted tokens per row."""
    if rate <= 0.0 or tokens.size == 0:
        return np.zeros(len(tokens), dtype=np.int64)
    hit = rng.random(tokens.shape) < rate
    shift = rng.integers(1, vocab_size, size=int(hit.sum()))
    tokens[hit] = ((tokens[hit].astype(np.int64) + shift) % vocab_size).astype(tokens.dtype)
    return hit.sum(axis=1)


def composed_substitution_rate(rate_a: np.ndarray | float, rate_b: np.ndarray | float, V: int):
    """Rate of two independent uniform-other-symbol channels applied one after the other.

    A symbol survives if neither channel hits it, or if both hit and the second lands
    back on the original (probability 1 / (V - 1))."""
    rate_a, rate_b = np.asarray(rate_a, float), np.asarray(rate_b, float)
    stay = (1 - rate_a) * (1 - rate_b) + rate_a * rate_b / (V - 1)
    return 1.0 - stay


def concept_weights(n: int, weighting: str = "uniform", zipf_exponent: float = 1.0) -> np.ndarray:
    """Mixture weights over a concept set: uniform, or Zipf ``w_i ~ (i + 1) ** -a``
    (imbalance; the first concept of the set is the most frequent)."""
    if n < 1:
        raise ConfigError("a concept set needs at least one concept")
    if weighting == "uniform":
        return np.full(n, 1.0 / n)
    if weighting == "zipf":
        if zipf_exponent < 0:
            raise ConfigError(f"zipf_exponent must be >= 0, got {zipf_exponent}")
        w = np.arange(1, n + 1, dtype=float) ** -float(zipf_exponent)
        return w / w.sum()
    raise ConfigError(f"unknown concept weighting {weighting!r}; use 'uniform' or 'zipf'")
