"""The SFT instruction pool: every response checked against the Bayes answer recomputed row
by row from the oracle, exact wrong and duplicate counts, the ``second`` wrong kind, the
formats covered, determinism, and the settings it refuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from divlab.data.ginc.family import DELIMITER, ConceptFamily
from divlab.data.ginc.oracle import forward, next_token_distribution
from divlab.errors import ConfigError
from divlab.experiments.kinds.sft.pool import COLUMNS, build_pool

FAMILY = ConceptFamily(vocab_size=30, n_values=6, n_slots=6, seed=3)
CONCEPTS = [0, 1, 2, 5]


def posterior_of(row: pd.Series, tokens: np.ndarray) -> np.ndarray:
    """P(next | tokens) under the row's concept, started uniformly over values in the
    row's start slot: one document at a time, independent of the pool's batching."""
    spec = FAMILY.spec
    arrays = FAMILY.concepts([int(row["concept"])])
    start = np.zeros((1, FAMILY.n_states))
    start[0, np.arange(spec.n_values) * spec.n_slots + int(row["start_slot"])] = 1 / spec.n_values
    _, alpha = forward(FAMILY, arrays, np.array([0]), tokens[None], start=start)
    return next_token_distribution(FAMILY, arrays, np.array([0]), alpha)[0]


def recomputed(row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(Bayes response, posterior of its first token) from the prompt's test example."""
    prompt = np.asarray(row["prompt"], dtype=np.int64)
    tokens = prompt[len(prompt) - (int(row["example_length"]) - 1) :]
    first = posterior_of(row, tokens)
    out = []
    posterior = first
    for _ in range(int(row["response_length"])):
        out.append(int(np.argmax(posterior)))
        tokens = np.append(tokens, out[-1])
        posterior = posterior_of(row, tokens)
    return np.array(out), first


def test_ground_truth_is_exact():
    pool = build_pool(
        FAMILY,
        CONCEPTS,
        120,
        seed=7,
        n_examples=(0, 2, 3),
        example_lengths=(3, 4),
        response_lengths=(1, 2, 3),
        wrong_share=0.3,
        duplicate_share=0.1,
    )
    assert list(pool.columns) == list(COLUMNS)
    assert pool["example_id"].tolist() == list(range(120))
    for _, row in pool.iterrows():
        bayes, first = recomputed(row)
        response = np.asarray(row["response"])
        n, length = int(row["n_examples"]), int(row["example_length"])
        assert len(row["prompt"]) == n * (length + 1) + length - 1
        assert row["prompt"][length :: length + 1].tolist() == [DELIMITER] * n
        assert len(response) == int(row["response_length"])
        assert np.array_equal(row["bayes_response"], bayes)
        assert row["label_prob"] == pytest.approx(first.max())
        assert row["response_prob"] == pytest.approx(first[response[0]])
        assert row["correct"] == np.array_equal(response, bayes)
        if row["correct"]:
            assert row["wrong_kind"] == ""
        else:
            assert row["wrong_kind"] == "random"
            assert response[0] != bayes[0]
            assert 0 <= response[0] < FAMILY.spec.vocab_size
            assert np.array_equal(response[1:], bayes[1:])  # later tokens stay Bayes
    assert (~pool["correct"]).sum() == 36
    assert set(pool["concept"]) == set(CONCEPTS)


@pytest.mark.parametrize(("n", "share"), [(50, 0.25), (51, 0.1), (7, 0.5), (40, 0.0)])
def test_wrong_count_is_exact(n, share):
    pool = build_pool(FAMILY, CONCEPTS, n, seed=1, wrong_share=share, duplicate_share=0.2)
    assert (~pool["correct"]).sum() == round(share * n)
    assert (pool["duplicate_of"] >= 0).sum() == round(0.2 * n)


def test_second_is_the_posteriors_second_choice():
    pool = build_pool(FAMILY, CONCEPTS, 60, seed=2, wrong_share=0.5, wrong_kind="second")
    wrong = pool[~pool["correct"]]
    assert len(wrong) == 30 and set(wrong["wrong_kind"]) == {"second"}
    for _, row in wrong.iterrows():
        _, first = recomputed(row)
        order = np.argsort(-first, kind="stable")
        assert row["response"][0] == order[1]
        assert row["response_prob"] == pytest.approx(first[order[1]])
        assert row["response_prob"] <= row["label_prob"]


def test_random_wrong_symbols_cover_every_other_symbol():
    pool = build_pool(FAMILY, CONCEPTS, 600, seed=4, wrong_share=0.9)
    wrong = pool[~pool["correct"]]
    firsts = np.array([r[0] for r in wrong["response"]])
    labels = np.array([r[0] for r in wrong["bayes_response"]])
    assert (firsts != labels).all()
    # uniform over the 29 other symbols, the delimiter included: ~540 draws hit them all
    assert set(firsts) == set(range(FAMILY.spec.vocab_size))


def test_duplicates_are_exact_copies_of_earlier_rows():
    pool = build_pool(
        FAMILY, CONCEPTS, 80, seed=5, response_lengths=(1, 3), wrong_share=0.2, duplicate_share=0.3
    )
    copies = pool[pool["duplicate_of"] >= 0]
    assert len(copies) == 24
    for _, row in copies.iterrows():
        original = pool.loc[row["duplicate_of"]]
        assert original["duplicate_of"] == -1 and original["example_id"] < row["example_id"]
        for column in COLUMNS:
            if column in ("example_id", "duplicate_of"):
                continue
            a, b = row[column], original[column]
            assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b, column
        assert row["prompt"] is not original["prompt"]  # a copy, not a shared array
    # originals are distinct prompts: only the planted copies repeat
    keys = [r.tobytes() for r in pool["prompt"]]
    assert len(set(keys)) == 80 - 24


def test_formats_cover_the_given_choices():
    pool = build_pool(
        FAMILY,
        CONCEPTS,
        200,
        seed=6,
        n_examples=(1, 3),
        example_lengths=(2, 5),
        response_lengths=(1, 4),
    )
    cells = set(
        zip(pool["n_examples"], pool["example_length"], pool["response_length"], strict=True)
    )
    assert cells == {(a, b, c) for a in (1, 3) for b in (2, 5) for c in (1, 4)}
    assert pool["correct"].all() and (pool["wrong_kind"] == "").all()
    assert (pool["duplicate_of"] == -1).all()


def test_same_seed_same_pool_other_seed_other_pool():
    def tokens(frame: pd.DataFrame) -> list:
        return [r.tolist() for r in frame["prompt"]] + [r.tolist() for r in frame["response"]]

    kwargs = {"wrong_share": 0.2, "duplicate_share": 0.1, "response_lengths": (1, 2)}
    a = build_pool(FAMILY, CONCEPTS, 40, seed=9, **kwargs)
    b = build_pool(FAMILY, CONCEPTS, 40, seed=9, **kwargs)
    c = build_pool(FAMILY, CONCEPTS, 40, seed=10, **kwargs)
    assert tokens(a) == tokens(b)
    scalar = [col for col in COLUMNS if col not in ("prompt", "response", "bayes_response")]
    pd.testing.assert_frame_equal(a[scalar], b[scalar])
    assert tokens(a) != tokens(c)
    assert a["correct"].tolist() != c["correct"].tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n >= 1"),
        ({"concept_ids": []}, "at least one concept"),
        ({"wrong_share": 1.0}, "wrong_share must be in [0, 1)"),
        ({"wrong_share": -0.1}, "wrong_share must be in [0, 1)"),
        ({"duplicate_share": 1.0}, "duplicate_share must be in [0, 1)"),
        ({"duplicate_share": 0.9, "n": 4}, "too few originals"),
        ({"wrong_kind": "flip"}, "unknown wrong_kind 'flip'"),
        ({"response_lengths": (0, 1)}, "response_lengths value must be >= 1"),
        ({"response_lengths": ()}, "response_lengths needs at least one value"),
        ({"example_lengths": (1,)}, "example_lengths value must be >= 2"),
        ({"n_examples": (-1,)}, "n_examples value must be >= 0"),
    ],
)
def test_bad_settings_are_one_config_error(kwargs, message):
    settings = {"concept_ids": CONCEPTS, "n": 10, **kwargs}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        build_pool(FAMILY, settings.pop("concept_ids"), settings.pop("n"), 0, **settings)
