"""Ground truth on GINC: effective distinct concepts, coverage and typicality, and the
concept-subset designs that hold the number of concepts fixed while diversity varies."""

import numpy as np
import pytest

from divlab.data.ginc import ConceptFamily, FamilySpec
from divlab.data.ginc.concept_sets import (
    design_correlations,
    mean_pairwise_distance,
    random_subsets,
    similarity_spanning_subsets,
)
from divlab.data.ginc.truth import (
    ConceptGeometry,
    bigram_distributions,
    coverage,
    coverage_distance,
    effective_distinct_concepts,
    ground_truth_diversity,
    ground_truth_rivals,
    hellinger_matrix,
    similarity_matrix,
    typicality,
    typicality_distance,
)
from divlab.errors import ConfigError

FAMILY = ConceptFamily(FamilySpec(vocab_size=20, n_values=5, n_slots=5, seed=3))
N_EVAL = 16


@pytest.fixture(scope="module")
def geometry():
    return ConceptGeometry(FAMILY, horizon=1024)


@pytest.fixture(scope="module")
def eval_distances(geometry):
    return geometry.hellinger(range(N_EVAL))


def test_effective_distinct_concepts_closed_forms():
    for k in (1, 2, 5, 17):
        assert effective_distinct_concepts(np.eye(k)) == pytest.approx(k)
        assert effective_distinct_concepts(np.ones((k, k))) == pytest.approx(1.0)
    w = np.array([0.5, 0.25, 0.125, 0.125])
    assert effective_distinct_concepts(np.eye(4), w) == pytest.approx(
        np.exp(-(w * np.log(w)).sum())
    )
    # unnormalised weights are normalised; a zero weight drops the concept
    assert effective_distinct_concepts(np.eye(3), [2, 2, 0]) == pytest.approx(2.0)
    blocks = np.zeros((5, 5))
    blocks[:3, :3] = 1.0
    blocks[3:, 3:] = 1.0
    # two blocks of identical concepts with equal block weights: exactly 2
    assert effective_distinct_concepts(blocks, [1, 1, 1, 1.5, 1.5]) == pytest.approx(2.0)
    # partial similarity lies strictly between the extremes
    s = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
    assert 1.0 < effective_distinct_concepts(s) < 3.0
    with pytest.raises(ConfigError):
        effective_distinct_concepts(np.array([[1.0, 0.2], [0.3, 1.0]]))
    with pytest.raises(ConfigError):
        effective_distinct_concepts(np.eye(2), [1.0, -1.0])


def test_blocks_of_identical_concepts_with_uniform_weights():
    blocks = np.zeros((5, 5))
    blocks[:3, :3] = 1.0
    blocks[3:, 3:] = 1.0
    p = np.array([0.6, 0.4])  # block weights under uniform concept weights
    assert effective_distinct_concepts(blocks) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    two_equal = np.kron(np.eye(2), np.ones((2, 2)))
    assert effective_distinct_concepts(two_equal) == pytest.approx(2.0)


def test_similarity_matrix_is_a_kernel(geometry):
    s = similarity_matrix(FAMILY, range(N_EVAL))
    np.testing.assert_allclose(np.diag(s), 1.0)
    np.testing.assert_allclose(s, s.T)
    assert np.linalg.eigvalsh(s).min() > -1e-10  # PSD: 1 - sqrt(1 - x) is absolutely monotone
    np.testing.assert_allclose(s, geometry.similarity(range(N_EVAL)))
    # the cache zeroes the self-distances that rounding leaves at ~1e-7
    np.testing.assert_allclose(
        1.0 - s, hellinger_matrix(bigram_distributions(FAMILY, range(N_EVAL))), atol=1e-6
    )


def test_geometry_cache_gives_the_same_numbers_as_a_fresh_computation(geometry):
    fresh = hellinger_matrix(bigram_distributions(FAMILY, [9, 2, 30]))
    np.fill_diagonal(fresh, 0.0)
    np.testing.assert_array_equal(geometry.hellinger([9, 2, 30]), fresh)
    cross = geometry.hellinger([9, 2], [30, 2])
    np.testing.assert_array_equal(cross[:, 0], fresh[:2, 2])
    assert cross[1, 1] == 0.0


def test_ground_truth_diversity_adds_effective_distinct_concepts(geometry):
    truth = ground_truth_diversity(FAMILY, [0, 1, 2, 3])
    assert set(truth) >= {"n_concepts", "effective_concepts", "mean_pairwise_hellinger"}
    s = geometry.similarity([0, 1, 2, 3])
    assert truth["effective_distinct_concepts"] == pytest.approx(effective_distinct_concepts(s))
    assert 1.0 < truth["effective_distinct_concepts"] < truth["effective_concepts"] == 4.0
    weights = np.array([4.0, 2.0, 1.0, 1.0])
    weighted = ground_truth_diversity(FAMILY, [0, 1, 2, 3], weights, geometry=geometry)
    assert weighted["effective_distinct_concepts"] == pytest.approx(
        effective_distinct_concepts(s, weights / weights.sum())
    )
    assert weighted["effective_distinct_concepts"] < truth["effective_distinct_concepts"]
    assert ground_truth_diversity(FAMILY, [5])["effective_distinct_concepts"] == 1.0
    with pytest.raises(ConfigError):
        ground_truth_diversity(FAMILY, [0, 1], geometry=ConceptGeometry(FAMILY, horizon=64))


def test_coverage_and_typicality_on_a_hand_made_matrix():
    # rows: 3 eval concepts; columns: 2 training concepts
    cross = np.array([[0.0, 0.6], [0.3, 0.9], [0.8, 0.2]])
    assert coverage_distance(cross) == pytest.approx((0.0 + 0.3 + 0.2) / 3)
    assert typicality_distance(cross) == pytest.approx((1.1 / 3 + 1.7 / 3) / 2)
    assert typicality_distance(cross, [3, 1]) == pytest.approx(0.75 * 1.1 / 3 + 0.25 * 1.7 / 3)
    with pytest.raises(ConfigError):
        typicality_distance(cross, [1, 2, 3])


def test_coverage_is_zero_when_eval_is_inside_train(geometry, eval_distances):
    assert coverage(FAMILY, range(N_EVAL), [3, 7, 11], 1024) == 0.0
    rivals = ground_truth_rivals(FAMILY, range(N_EVAL), range(N_EVAL), geometry=geometry)
    assert rivals["eval_coverage_distance"] == 0.0
    assert rivals["train_typicality_distance"] == pytest.approx(eval_distances.mean())
    # training on part of C_test leaves the rest uncovered: each at its nearest distance
    part = ground_truth_rivals(FAMILY, [0, 1], range(N_EVAL), geometry=geometry)
    nearest = eval_distances[:, [0, 1]].min(1)
    assert part["eval_coverage_distance"] == pytest.approx(nearest.mean()) and nearest.mean() > 0
    assert typicality(FAMILY, [0, 1], range(N_EVAL), 1024) == pytest.approx(
        eval_distances[:, [0, 1]].mean()
    )
    # concepts outside C_test (plan 2) are measured too; a zero weight removes a concept
    outside = ground_truth_rivals(FAMILY, [0, 100], range(N_EVAL), weights=[0, 1])
    assert outside["eval_coverage_distance"] == pytest.approx(
        geometry.hellinger(range(N_EVAL), [100]).mean()
    )
    sampled = ground_truth_rivals(FAMILY, range(N_EVAL), range(N_EVAL), max_concepts=5)
    assert sampled["rivals_sampled_eval_concepts"] == 5
    assert sampled["rivals_sampled_train_concepts"] == 5


def test_spanning_subsets_span_the_mutual_distance_at_fixed_k(eval_distances):
    subsets = similarity_spanning_subsets(eval_distances, k=4, levels=5)
    assert subsets == similarity_spanning_subsets(eval_distances, k=4, levels=5)
    assert len(subsets) == 5 and all(len(s) == 4 == len(set(s)) for s in subsets)
    assert all(0 <= i < N_EVAL for s in subsets for i in s)
    means = np.array([mean_pairwise_distance(eval_distances, s) for s in subsets])
    assert (np.diff(means) >= 0).all()
    random_means = [
        mean_pairwise_distance(eval_distances, s) for s in random_subsets(N_EVAL, 4, 200)
    ]
    assert means[-1] >= np.percentile(random_means, 90)
    assert means[0] <= np.percentile(random_means, 10)
    # the levels are evenly spaced in value between the extremes (within a swap's step)
    np.testing.assert_allclose(means, np.linspace(means[0], means[-1], 5), atol=0.02)
    # exhaustive check on C_test (1,820 subsets): the extremes are the true ones here
    np.testing.assert_allclose(means[[0, -1]], [0.4553, 0.8105], atol=1e-4)
    effective = [effective_distinct_concepts(1.0 - eval_distances[np.ix_(s, s)]) for s in subsets]
    assert (np.diff(effective) > 0).all()
    np.testing.assert_allclose(effective[0], 2.7469, atol=1e-4)
    np.testing.assert_allclose(effective[-1], 3.7834, atol=1e-4)
    with pytest.raises(ConfigError):
        similarity_spanning_subsets(eval_distances, k=1, levels=5)
    with pytest.raises(ConfigError):
        similarity_spanning_subsets(eval_distances, k=4, levels=[0.0, 1.5])


def test_random_subsets_are_distinct_and_deterministic():
    subsets = random_subsets(N_EVAL, 4, 50, seed=2)
    assert subsets == random_subsets(N_EVAL, 4, 50, seed=2)
    assert subsets != random_subsets(N_EVAL, 4, 50, seed=3)
    assert len({tuple(s) for s in subsets}) == 50
    assert all(len(s) == 4 and s == sorted(set(s)) and max(s) < N_EVAL for s in subsets)
    every = random_subsets(6, 3, 20)  # all C(6, 3) = 20 of them
    assert len({tuple(s) for s in every}) == 20
    with pytest.raises(ConfigError, match="only 20 distinct"):
        random_subsets(6, 3, 21)


def test_design_correlations_before_training(geometry, eval_distances):
    subsets = similarity_spanning_subsets(eval_distances, k=4, levels=5)
    conditions = [
        {
            **ground_truth_diversity(FAMILY, s, geometry=geometry),
            **ground_truth_rivals(FAMILY, s, range(N_EVAL), geometry=geometry),
        }
        for s in subsets
    ]
    rho = design_correlations(conditions)
    # k is held fixed, so its correlation is undefined rather than an error
    assert np.isnan(rho["effective_distinct_concepts"]["n_concepts"])
    # at fixed k the rivals still move with diversity on this family: the spread-out
    # subsets cover C_test better but are less typical of it (the plan must print this)
    for measure in ("effective_distinct_concepts", "mean_pairwise_hellinger"):
        assert rho[measure]["eval_coverage_distance"] == pytest.approx(-0.9)
        assert rho[measure]["train_typicality_distance"] == pytest.approx(1.0)
    nested = [
        {**ground_truth_diversity(FAMILY, range(k), geometry=geometry), "x": float(k)}
        for k in (2, 4, 8, 16)
    ]
    along_k = design_correlations(nested, rivals=("n_concepts", "x"))
    assert along_k["effective_distinct_concepts"]["n_concepts"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="eval_coverage_distance"):
        design_correlations(nested)
