"""Evaluation metrics against closed forms, oracles and chance."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from divlab.data.ginc import GincDataset
from divlab.data.ginc.oracle import forward, greedy_continuation, next_token_distribution
from divlab.evaluate.continuation import compare
from divlab.evaluate.icl import bayes_oracle_predictions, icl_accuracy, predict_icl, wilson_interval
from divlab.evaluate.loss import unigram_loss
from divlab.evaluate.model import greedy_continuation as model_continuation
from divlab.evaluate.speed import (
    area_under_curve,
    prequential_code_length,
    speed_of_learning,
    tokens_to_threshold,
)


def test_bayes_oracle_scores_100_percent_on_id_prompts(five_concepts):
    data = GincDataset(five_concepts)
    prompts = data.prompts().to_pandas()
    table = icl_accuracy(prompts, bayes_oracle_predictions(data, prompts))
    assert (table[table["kind"] == "id"]["accuracy"] == 1.0).all()
    assert set(table["n_examples"]) == {0, 4} and set(table["example_length"]) == {3, 5}
    assert (table["prompts"] == 40).all()


class UniformModel:
    """Every token equally likely; ties broken at random: accuracy should be chance."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        self.vocab, self.rng = vocab, np.random.default_rng(seed)

    def next_token_logprobs(self, sequences):
        noise = self.rng.random((len(sequences), self.vocab)) * 1e-9  # random tie-break
        return np.log(np.full((len(sequences), self.vocab), 1.0 / self.vocab)) + noise


def test_uniform_model_scores_chance(five_concepts):
    data = GincDataset(five_concepts)
    prompts = data.prompts().to_pandas()
    predictions = predict_icl(UniformModel(data.vocab_size), prompts, data.eos_token_id, 50)
    hits = int((predictions == prompts["label"].to_numpy()).sum())
    # chance = 1 / 50 symbols; a two-sided binomial test must not reject it
    assert stats.binomtest(hits, len(prompts), 1 / 50).pvalue > 1e-3
    assert (predictions < 50).all()  # special tokens are never predicted


class OracleModel:
    """The true concept's predictive distribution for sequences of one known concept."""

    def __init__(self, data: GincDataset, concept: int) -> None:
        self.family = data.family
        self.arrays = self.family.concepts([concept])

    def next_token_logprobs(self, sequences):
        tokens = np.stack([s[1:] for s in sequences])  # drop the <eos> prefix
        rows = np.zeros(len(tokens), dtype=int)
        _, alpha = forward(self.family, self.arrays, rows, tokens)
        predictive = next_token_distribution(self.family, self.arrays, rows, alpha)
        with np.errstate(divide="ignore"):
            return np.log(np.pad(predictive, ((0, 0), (0, 4))))


def test_greedy_continuation_of_the_oracle_model_is_the_oracles(one_concept):
    data = GincDataset(one_concept)
    docs = np.stack(data.documents("eval"))[:6, :20]
    model = OracleModel(data, 0)
    inputs = [np.concatenate([[data.eos_token_id], d]) for d in docs]
    predicted = model_continuation(model, inputs, 8, allowed=50)
    oracle = greedy_continuation(data.family, data.family.concepts([0]), np.zeros(6, int), docs, 8)
    np.testing.assert_array_equal(predicted, oracle)
    assert compare(predicted, oracle) == {
        "edit_distance": 0.0,
        "token_match": 1.0,
        "exact_match": 1.0,
    }


def test_compare_closed_forms():
    predicted = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    reference = np.array([[1, 2, 3, 4], [6, 7, 8, 9]])
    result = compare(predicted, reference)
    # row 2 is a shift: 2 edits (delete 5, insert 9) of 4 tokens, no position matches
    assert result == {"edit_distance": (0 + 2 / 4) / 2, "token_match": 0.5, "exact_match": 0.5}


def test_speed_metrics_closed_forms():
    tokens = [0, 100, 200, 400]
    losses = [4.0, 3.0, 2.0, 2.0]
    # trapezoids: 350 + 250 + 400 = 1000 over a span of 400
    assert area_under_curve(tokens, losses) == pytest.approx(2.5)
    assert tokens_to_threshold(tokens, losses, 2.5) == pytest.approx(150.0)
    assert tokens_to_threshold(tokens, losses, 1.0) is None
    assert tokens_to_threshold(tokens, losses, 5.0) == 0.0
    code = prequential_code_length([{"loss": 1.0}, {"loss": 2.0}], predicted_tokens_per_step=10)
    assert code["nats"] == 30.0 and code["bits_per_token"] == pytest.approx(1.5 / math.log(2))
    curve = [
        {"tokens": t, "loss": x, "oracle_loss": 1.9, "per_concept": {"0": x + 1, "1": x},
         "per_concept_oracle": {"0": 2.9, "1": 1.9}}
        for t, x in zip(tokens, losses, strict=True)
    ]  # fmt: skip
    speed = speed_of_learning(curve, gap=0.6)
    assert speed["tokens_to_threshold"] == pytest.approx(150.0)  # threshold 2.5
    assert speed["per_concept"]["0"]["tokens_to_threshold"] == pytest.approx(150.0)
    assert speed["per_concept"]["0"]["auc"] == pytest.approx(3.5)


def test_wilson_interval_and_unigram_loss():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    docs = [np.array([0, 0, 1, 1])]
    assert unigram_loss(docs) == pytest.approx(math.log(2))


def test_icl_accuracy_table_counts():
    prompts = pd.DataFrame(
        {"kind": ["id"] * 4, "n_examples": [0, 0, 1, 1], "example_length": [3] * 4,
         "label": [1, 2, 3, 4]}
    )  # fmt: skip
    table = icl_accuracy(prompts, np.array([1, 0, 3, 4]))
    assert table["accuracy"].tolist() == [0.5, 1.0]
