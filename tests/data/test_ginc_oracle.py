"""Oracle likelihoods and ICL labels against brute-force enumeration of hidden paths."""

import itertools

import numpy as np
import pytest

from divlab.data.ginc import ConceptFamily, FamilySpec, make_prompts
from divlab.data.ginc.oracle import (
    bayes_mixture_nll,
    forward,
    next_token_distribution,
    oracle_nll,
)

# Tiny: 2 values x 3 slots = 6 states, vocab 4; transition_temp 1 so no entry is negligible
TINY = ConceptFamily(
    FamilySpec(vocab_size=4, n_values=2, n_slots=3, transition_temp=1.0, start_temp=1.0, seed=5)
)


def _emission_probability(family, state, token, rate):
    emitted = family.emissions.reshape(-1)[state]
    if emitted == token:
        return 1.0 - rate
    return rate / (family.spec.vocab_size - 1)


def brute_force_likelihood(family, index, tokens, rate=0.0, start=None):
    transitions = family.transition_matrix(index)
    start = family.concept(index).start if start is None else start
    total = 0.0
    for path in itertools.product(range(family.n_states), repeat=len(tokens)):
        p = start[path[0]]
        for t in range(1, len(tokens)):
            p *= transitions[path[t - 1], path[t]]
        for state, token in zip(path, tokens, strict=True):
            p *= _emission_probability(family, state, token, rate)
        total += p
    return total


def test_oracle_matches_brute_force_enumeration():
    rng = np.random.default_rng(0)
    arrays = TINY.concepts([0, 1, 2])
    tokens = rng.integers(0, 4, size=(6, 5))
    tokens[0] = TINY.emissions.reshape(-1)[[1, 2, 0, 4, 5]]  # a likely document
    rows = np.array([0, 1, 2, 0, 1, 2])
    for rate in (0.0, 0.15):
        log_likelihood, _ = forward(TINY, arrays, rows, tokens, rate)
        expected = np.array(
            [
                brute_force_likelihood(TINY, arrays.indices[r], x, rate)
                for r, x in zip(rows, tokens, strict=True)
            ]
        )
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(log_likelihood, np.log(expected), rtol=1e-10)
        nll = oracle_nll(TINY, arrays, rows, tokens, rate)
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(nll, -np.log(expected) / 5, rtol=1e-10)


def test_impossible_document_gets_minus_infinity_not_nan():
    family = ConceptFamily(FamilySpec(vocab_size=50, n_values=1, n_slots=2, seed=0))
    arrays = family.concepts([0])
    unused = sorted(set(range(50)) - set(family.emissions.reshape(-1).tolist()))[0]
    tokens = np.array([[0, unused, 0], [0, 0, 0]])
    log_likelihood, alpha = forward(family, arrays, [0, 0], tokens)
    assert log_likelihood[0] == -np.inf
    assert np.isfinite(alpha).all()
    # with substitution noise the same document is possible: finite, positive NLL
    assert np.isfinite(oracle_nll(family, arrays, [0, 0], tokens, 0.1)).all()


def test_bayes_mixture_matches_brute_force():
    arrays = TINY.concepts([0, 3])
    weights = np.array([0.3, 0.7])
    tokens = np.random.default_rng(1).integers(0, 4, size=(4, 4))
    got = bayes_mixture_nll(TINY, arrays, weights, tokens)
    for d, x in enumerate(tokens):
        mixture = sum(
            w * brute_force_likelihood(TINY, c, x) for w, c in zip(weights, [0, 3], strict=True)
        )
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(got[d], -np.log(mixture) / 4, rtol=1e-10)


def brute_force_next_token(family, index, x, start):
    joint = np.array(
        [brute_force_likelihood(family, index, [*x, a], start=start) for a in range(4)]
    )
    return joint / joint.sum()


def test_icl_labels_are_the_brute_force_posterior_argmax():
    rng = np.random.default_rng(4)
    cell = make_prompts(TINY, [0, 1, 2], n_prompts=12, n_examples=2, example_length=4, rng=rng)
    n_values, n_slots = 2, 3
    assert cell["tokens"].shape == (12, 2 * 5 + 3)
    for i in range(12):
        x = cell["tokens"][i, -3:]
        start = np.zeros(6)
        start[np.arange(n_values) * n_slots + cell["start_slot"][i]] = 1.0 / n_values
        posterior = brute_force_next_token(TINY, cell["concept"][i], x, start)
        assert cell["label"][i] == int(np.argmax(posterior))
        np.testing.assert_allclose(cell["label_prob"][i], posterior.max(), rtol=1e-10)
    # the next-token distribution agrees with brute force too
    arrays = TINY.concepts([1])
    x = cell["tokens"][:1, -3:]
    start = np.full((1, 6), 1 / 6)
    _, alpha = forward(TINY, arrays, [0], x, start=start)
    got = next_token_distribution(TINY, arrays, [0], alpha)[0]
    np.testing.assert_allclose(got, brute_force_next_token(TINY, 1, x[0], start[0]), rtol=1e-10)


@pytest.mark.parametrize("pattern", ["hmm", "random"])
def test_large_prompt_sets_have_no_nan_or_degenerate_labels(pattern):
    family = ConceptFamily(FamilySpec(vocab_size=50, seed=1))
    rng = np.random.default_rng(0)
    redraws = 0
    for length in (3, 5, 8, 10):
        cell = make_prompts(family, [100, 101, 102], 500, 4, length, rng, pattern=pattern)
        assert np.isfinite(cell["label_prob"]).all() and (cell["label_prob"] > 0).all()
        assert ((cell["label"] >= 0) & (cell["label"] < 50)).all()
        # a delimiter label must be the real argmax: its posterior mass is the largest
        delimiter = cell["label"] == 0
        assert (cell["label_margin"][delimiter] >= 0).all()
        redraws += int(cell["redraws"].sum())
        # the test input ends the prompt: (n examples + "/") then L - 1 tokens
        assert cell["tokens"].shape[1] == 4 * (length + 1) + length - 1
        assert (cell["tokens"][:, length :: length + 1][:, :4] == 0).all()
    if pattern == "random":
        # the reference would have produced NaN posteriors (and delimiter labels) here
        assert redraws > 0
    else:
        assert redraws == 0
