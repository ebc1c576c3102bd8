"""Concept families: structure, addressability, and sampling statistics."""

import itertools

import numpy as np
import pytest
from scipy import stats

from divlab.data.ginc import ConceptFamily, FamilySpec, sample_documents
from divlab.data.ginc.concept_sets import (
    OOD_OFFSET,
    added_concepts,
    eval_concepts,
    nested_concepts,
    ood_concepts,
)
from divlab.data.ginc.sampler import alias_tables
from divlab.errors import ConfigError

FAMILY = ConceptFamily(FamilySpec(vocab_size=50, n_values=10, n_slots=10, seed=3))


def test_family_structure_follows_the_paper():
    e = FAMILY.emissions
    assert e.shape == (10, 10)
    assert (e[:, 0] == 0).all() and (e[:, 1:] >= 1).all() and (e[:, 1:] < 50).all()
    a_v = FAMILY.value_transitions
    np.testing.assert_allclose(a_v.sum(1), 1.0)
    assert (np.diag(a_v) >= 0.9 - 1e-12).all()  # vic * I plus a permutation mixture
    c = FAMILY.concept(4)
    np.testing.assert_allclose(c.slot_transitions.sum(1), 1.0)
    np.testing.assert_allclose(c.start.sum(), 1.0)
    full = FAMILY.transition_matrix(4)
    np.testing.assert_allclose(full, np.kron(a_v, c.slot_transitions))
    np.testing.assert_allclose(full.sum(1), 1.0)


def test_concept_is_the_same_whatever_the_family_size():
    small = FAMILY.concepts(range(10))
    large = FAMILY.concepts(range(10_000))
    np.testing.assert_array_equal(small.slot_transitions[7], large.slot_transitions[7])
    np.testing.assert_array_equal(small.start[7], large.start[7])
    # a fresh family object with the same spec derives the same concept
    again = ConceptFamily(FamilySpec(vocab_size=50, n_values=10, n_slots=10, seed=3)).concept(7)
    np.testing.assert_array_equal(again.slot_transitions, small.slot_transitions[7])
    # a different family seed gives a different concept
    other = ConceptFamily(FamilySpec(vocab_size=50, n_values=10, n_slots=10, seed=4)).concept(7)
    assert not np.allclose(other.slot_transitions, small.slot_transitions[7])
    # 10,000 concepts cost megabytes (the reference pickles ~121 KB per concept)
    assert large.nbytes < 20 * 2**20


def test_concept_sets_nested_and_disjoint():
    c_test = eval_concepts(100)
    sets = [nested_concepts(100, k, order_seed=1) for k in (1, 2, 5, 10, 50, 100)]
    for smaller, larger in itertools.pairwise(sets):
        assert set(smaller) < set(larger)
    assert set(sets[-1]) == set(c_test)
    plan2 = added_concepts(100, 10, 25, order_seed=1)
    assert plan2[:10] == sets[3]
    added = set(plan2[10:])
    assert len(added) == 25 and not added & set(c_test)
    assert set(added_concepts(100, 10, 5, 1)) < set(plan2)  # nested in k_added too
    assert min(ood_concepts(3)) >= OOD_OFFSET


@pytest.mark.parametrize(
    "call",
    [
        lambda: nested_concepts(10, 11),
        lambda: nested_concepts(10, 0),
        lambda: eval_concepts(0),
        lambda: added_concepts(10, 0, 0),
        lambda: FAMILY.concept(-1),
        lambda: ConceptFamily(vocab_size=1),
        lambda: ConceptFamily(n_values=-2),
    ],
)
def test_bad_concept_requests_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()


def test_alias_tables_reproduce_the_probabilities():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(7, 0.3), size=20)
    p[:, 3] = 0.0
    p /= p.sum(1, keepdims=True)
    keep, alias = alias_tables(p)
    n = p.shape[1]
    # P(draw = j) = (keep[j] + sum_{i: alias[i] = j} (1 - keep[i])) / n
    implied = keep.copy()
    for r in range(len(p)):
        np.add.at(implied[r], alias[r], 1.0 - keep[r])
    np.testing.assert_allclose(implied / n, p, atol=1e-12)


def _chi_square_p(observed: np.ndarray, probabilities: np.ndarray) -> float:
    """Pearson chi-square, cells with expected count < 5 pooled into one (so the
    asymptotic distribution holds); a zero-probability event fails outright."""
    assert observed[probabilities == 0].sum() == 0, "a zero-probability event was sampled"
    expected = probabilities * observed.sum()
    large = expected >= 5
    observed = np.append(observed[large], observed[~large].sum())
    expected = np.append(expected[large], expected[~large].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    return stats.chisquare(observed, expected).pvalue


def test_sampled_statistics_match_the_concept():
    arrays = FAMILY.concepts([2, 9])
    rows = np.repeat([0, 1], 1500)
    tokens, states = sample_documents(
        FAMILY, arrays, rows, 120, np.random.default_rng(11), return_states=True
    )
    # emissions are exactly E[state]
    np.testing.assert_array_equal(tokens, FAMILY.emissions.reshape(-1)[states])
    p_values = []
    for row, index in enumerate([2, 9]):
        docs = states[rows == row]
        # start distribution
        start_counts = np.bincount(docs[:, 0], minlength=100)
        p_values.append(_chi_square_p(start_counts, FAMILY.concept(index).start))
        # transitions: one chi-square per well-visited source state
        full = FAMILY.transition_matrix(index)
        counts = np.zeros((100, 100))
        np.add.at(counts, (docs[:, :-1].ravel(), docs[:, 1:].ravel()), 1)
        for source in np.flatnonzero(counts.sum(1) >= 500):
            p_values.append(_chi_square_p(counts[source], full[source]))
    assert len(p_values) > 10
    # Fisher's combination: the whole set of tests at once
    combined = stats.combine_pvalues(p_values, method="fisher").pvalue
    assert combined > 1e-3, combined
    assert min(p_values) > 1e-4
