"""SFT selectors on planted pools: each does what it claims (longest, quality precision on
planted wrong responses, k-center and Vendi-greedy cover planted clusters first, the
Deita-like filter and its fill), exact and near dedup remove the planted copies only,
seeding, and one clear error per bad request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from divlab.data.ginc.family import ConceptFamily
from divlab.errors import ConfigError, DataError
from divlab.experiments.kinds.sft.pool import build_pool
from divlab.experiments.kinds.sft.selectors import (
    REASON_COLUMNS,
    REMOVED_COLUMNS,
    SELECTORS,
    dedup,
    near_dedup,
    select,
)
from divlab.measure.baselines import vendi_score

FAMILY = ConceptFamily(vocab_size=30, n_values=6, n_slots=6, seed=3)


def planted_pool(lengths) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "example_id": np.arange(len(lengths)) + 100,
            "prompt": [np.array([i, i + 1]) for i in range(len(lengths))],
            "response": [np.arange(length) for length in lengths],
        }
    )


def clusters(n_clusters: int, per_cluster: int, dims: int = 12, seed: int = 0):
    """Points near ``n_clusters`` orthogonal directions (within-cluster cosine > 0.99,
    across < 0.1), shuffled; returns (embeddings, cluster of each row)."""
    rng = np.random.default_rng(seed)
    label = rng.permutation(np.repeat(np.arange(n_clusters), per_cluster))
    points = np.eye(dims)[label] * 3.0 + rng.normal(scale=0.02, size=(len(label), dims))
    return points, label


def test_longest_picks_the_longest_with_seeded_ties():
    lengths = [3, 9, 1, 7, 9, 2, 7, 5]
    pool = planted_pool(lengths)
    chosen = select("longest", pool, 4, seed=1)
    assert sorted(chosen.indices[:2].tolist()) == [1, 4]
    assert sorted(chosen.indices[2:].tolist()) == [3, 6]
    assert chosen.reasons["score"].tolist() == [9, 9, 7, 7]
    assert list(chosen.reasons.columns) == list(REASON_COLUMNS)
    assert chosen.reasons["example_id"].tolist() == (chosen.indices + 100).tolist()
    assert chosen.reasons["rank"].tolist() == [0, 1, 2, 3]
    orders = {tuple(select("longest", pool, 4, seed=s).indices) for s in range(12)}
    assert len(orders) > 1  # ties are broken by the seed ...
    again = select("longest", pool, 4, seed=1).indices
    assert np.array_equal(again, chosen.indices)  # ... stably


@pytest.mark.parametrize("wrong_kind", ["random", "second"])
def test_quality_removes_planted_wrong_responses_first(wrong_kind):
    pool = build_pool(FAMILY, [0, 1, 2, 5], 300, seed=0, wrong_share=0.3, wrong_kind=wrong_kind)
    # a well-trained proxy: the oracle's log-probability of the response's first token
    oracle = np.log(pool["response_prob"].to_numpy() + 1e-12)
    correct = pool["correct"].to_numpy()
    chosen = select("quality", pool, 150, quality=oracle)
    assert correct[chosen.indices].mean() >= 0.9
    assert np.all(np.diff(chosen.reasons["score"]) <= 0)  # best first
    # a planted noisy score: still removes wrong responses first
    noisy = correct + np.random.default_rng(1).normal(scale=0.4, size=len(pool))
    chosen = select("quality", pool, 150, quality=noisy)
    precision = correct[chosen.indices].mean()
    assert precision >= 0.9
    assert precision > correct[select("random", pool, 150).indices].mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_covers_every_cluster_before_a_second_point(seed):
    embeddings, label = clusters(6, 15, seed=seed)
    pool = planted_pool([2] * len(label))
    chosen = select("k-center", pool, 12, embeddings=embeddings, seed=seed)
    assert sorted(label[chosen.indices[:6]]) == list(range(6))
    distance = chosen.reasons["distance"].to_numpy()
    assert distance[0] == np.inf and (distance[1:6] > 1.3).all() and (distance[6:] < 0.1).all()
    assert len(set(chosen.indices)) == 12


def test_vendi_greedy_covers_clusters_and_reports_the_vendi_score():
    embeddings, label = clusters(5, 8, dims=4 + 5, seed=3)
    pool = planted_pool([2] * len(label))
    # 12 > dims: both the kernel form and the Gram form are used
    chosen = select("vendi-greedy", pool, 12, embeddings=embeddings, vendi_candidates=100)
    assert sorted(label[chosen.indices[:5]]) == list(range(5))
    for k in (1, 3, 5, 9, 12):
        expected = vendi_score(embeddings[chosen.indices[:k]])
        assert chosen.reasons["score"].iloc[k - 1] == pytest.approx(expected, rel=1e-6)


def test_quality_diversity_takes_the_best_per_cluster_then_fills():
    embeddings, label = clusters(4, 10, seed=5)
    quality = np.random.default_rng(2).random(len(label))
    pool = planted_pool([2] * len(label))
    chosen = select("quality-diversity", pool, 7, quality=quality, embeddings=embeddings)
    best = [int(np.flatnonzero(label == c)[np.argmax(quality[label == c])]) for c in range(4)]
    first = chosen.indices[:4]
    assert sorted(first.tolist()) == sorted(best)
    assert np.all(np.diff(quality[first]) <= 0)
    rest = np.setdiff1d(np.arange(len(label)), first)
    fill = rest[np.argsort(-quality[rest])][:3]
    assert chosen.indices[4:].tolist() == fill.tolist()
    assert chosen.reasons["reason"].str.startswith("filled").tolist() == [False] * 4 + [True] * 3
    assert "only 4 passed" in chosen.reasons["reason"].iloc[-1]
    # tau 0 admits anything not identical: pure quality order
    pure = select("quality-diversity", pool, 7, quality=quality, embeddings=embeddings, tau=0.0)
    assert pure.indices.tolist() == np.argsort(-quality)[:7].tolist()


def test_dedup_removes_the_planted_copies_and_only_them():
    pool = build_pool(FAMILY, [0, 1, 2], 60, seed=3, duplicate_share=0.25, response_lengths=(1, 2))
    kept, removed = dedup(pool)
    copies = pool.index[pool["duplicate_of"] >= 0].to_numpy()
    assert list(removed.columns) == list(REMOVED_COLUMNS)
    assert sorted(removed["position"]) == copies.tolist()
    assert kept.tolist() == np.setdiff1d(np.arange(60), copies).tolist()
    originals = pool.loc[removed["position"], "duplicate_of"].to_numpy()
    assert removed["kept_example_id"].tolist() == originals.tolist()
    chosen = select("random", pool, 45, dedup_first=True, seed=4)
    assert not set(chosen.indices) & set(copies) and len(chosen.removed) == 15
    with pytest.raises(ConfigError, match="45 of the pool's 60 are left after dedup"):
        select("random", pool, 46, dedup_first=True)


def test_near_dedup_keeps_the_longer_response():
    base = np.eye(6)
    twins = base + np.random.default_rng(0).normal(scale=0.01, size=(6, 6))
    embeddings = np.concatenate([base, twins[:3]])  # rows 6..8 near-copy rows 0..2
    lengths = [2, 5, 3, 3, 3, 3, 4, 1, 3]
    pool = planted_pool(lengths)
    kept, removed = near_dedup(embeddings, pool, threshold=0.95)
    # pair (0, 6): 6 is longer; (1, 7): 1 is longer; (2, 8): equal, the earlier stays
    assert kept.tolist() == [1, 2, 3, 4, 5, 6]
    assert dict(zip(removed["position"], removed["kept_position"], strict=True)) == {
        0: 6,
        7: 1,
        8: 2,
    }
    assert (removed["similarity"] > 0.95).all() and set(removed["kind"]) == {"near"}
    chosen = select(
        "longest", pool, 6, embeddings=embeddings, near_threshold=0.95, dedup_first=True
    )
    assert sorted(chosen.indices.tolist()) == [1, 2, 3, 4, 5, 6]
    assert sorted(chosen.removed["position"]) == [0, 7, 8]


def test_random_is_seeded():
    pool = planted_pool([1] * 50)
    a = select("random", pool, 20, seed=3).indices
    assert np.array_equal(a, select("random", pool, 20, seed=3).indices)
    assert not np.array_equal(a, select("random", pool, 20, seed=4).indices)
    assert len(set(a)) == 20 and a.min() >= 0 and a.max() < 50


def test_every_selector_returns_n_distinct_rows():
    embeddings, _ = clusters(3, 10, seed=1)
    quality = np.arange(30.0)
    pool = planted_pool(np.arange(30) % 7 + 1)
    for name in SELECTORS:
        chosen = select(name, pool, 10, quality=quality, embeddings=embeddings, seed=2)
        assert len(set(chosen.indices.tolist())) == 10, name
        assert len(chosen.reasons) == 10 and chosen.reasons["reason"].str.len().min() > 0


def test_identical_embeddings_still_give_distinct_rows():
    embeddings = np.ones((8, 3))
    pool = planted_pool([1] * 8)
    for name in ("k-center", "vendi-greedy", "quality-diversity"):
        chosen = select(name, pool, 8, quality=np.arange(8.0), embeddings=embeddings)
        assert sorted(chosen.indices.tolist()) == list(range(8)), name
    deita = select("quality-diversity", pool, 3, quality=np.arange(8.0), embeddings=embeddings)
    assert deita.indices.tolist() == [7, 6, 5]  # one passes tau, two filled by quality


def test_bad_requests_are_one_clear_error():
    pool = planted_pool([1, 2, 3])
    with pytest.raises(ConfigError, match="cannot select 4 examples from a pool of 3"):
        select("random", pool, 4)
    with pytest.raises(ConfigError, match="n >= 1"):
        select("random", pool, 0)
    with pytest.raises(ConfigError, match="the pool has no responses"):
        select("random", pool.iloc[:0], 1)
    with pytest.raises(ConfigError, match="the pool has no responses"):
        select("longest", pool.drop(columns="response"), 1)
    with pytest.raises(ConfigError, match="every response is empty"):
        select("random", planted_pool([0, 0]), 1)
    with pytest.raises(ConfigError, match=r"did you mean 'k-center'.*valid selectors: \['random'"):
        select("kcenter", pool, 1)
    with pytest.raises(ConfigError, match="needs a quality score"):
        select("quality", pool, 1)
    with pytest.raises(ConfigError, match="quality has 2 values for a pool of 3"):
        select("quality", pool, 1, quality=[1.0, 2.0])
    with pytest.raises(ConfigError, match="needs embeddings"):
        select("k-center", pool, 1)
    with pytest.raises(ConfigError, match="with 3 rows"):
        select("k-center", pool, 1, embeddings=np.ones((2, 4)))
    with pytest.raises(DataError, match="all zeros"):
        select("k-center", pool, 1, embeddings=np.zeros((3, 4)))
