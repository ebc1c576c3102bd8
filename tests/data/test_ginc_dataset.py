"""GINC data sets on disk: ground truth of the knobs, determinism, loading."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from divlab.data.ginc import GincDataset, GincSpec, generate
from divlab.data.ginc.oracle import oracle_nll
from divlab.data.ginc.sampler import composed_substitution_rate
from divlab.errors import ConfigError, DataError


def small_spec(**train) -> GincSpec:
    split = {"n_docs": 300, "doc_length": 64, **train}
    return GincSpec.from_dict(
        {
            "family": {"vocab_size": 20, "n_values": 4, "n_slots": 5, "seed": 1},
            "concepts": {"plan": "eval", "n_eval": 4},
            "seed": 7,
            "splits": {"train": split, "eval": {"n_docs": 40, "doc_length": 32}},
            "prompts": {"n_prompts": 10, "n_examples": [0, 2], "example_lengths": [3, 5]},
        }
    )


@pytest.fixture(scope="module")
def knobs(tmp_path_factory):
    """The same documents generated clean and with noise + near duplicates."""
    root = tmp_path_factory.mktemp("ginc")
    clean = generate(small_spec(), root / "clean")
    noisy = generate(
        small_spec(
            noise={"fraction": 0.3, "rate": 0.2}, duplicates={"fraction": 0.2, "edit_rate": 0.05}
        ),
        root / "noisy",
    )
    return GincDataset(clean), GincDataset(noisy)


def test_noise_and_duplicate_ground_truth_is_exact(knobs):
    clean, noisy = (d.table("train").to_pandas() for d in knobs)
    clean_tokens = np.stack(clean["tokens"].to_numpy())
    tokens = np.stack(noisy["tokens"].to_numpy())
    originals = noisy["duplicate_of"].to_numpy() < 0
    flagged = noisy["noise"].to_numpy()
    # originals: clean documents are untouched; noisy ones differ in exactly n_noise_tokens
    differences = (tokens != clean_tokens).sum(1)
    assert (differences[originals & ~flagged] == 0).all()
    np.testing.assert_array_equal(
        differences[originals & flagged], noisy["n_noise_tokens"].to_numpy()[originals & flagged]
    )
    assert (noisy["n_noise_tokens"].to_numpy()[originals & ~flagged] == 0).all()
    # duplicates: differ from their source in exactly n_duplicate_edits positions
    duplicates = np.flatnonzero(~originals)
    assert len(duplicates) > 30
    sources = noisy["duplicate_of"].to_numpy()[duplicates]
    assert (noisy["duplicate_of"].to_numpy()[sources] == -1).all()  # copies of originals
    edits = (tokens[duplicates] != tokens[sources]).sum(1)
    np.testing.assert_array_equal(edits, noisy["n_duplicate_edits"].to_numpy()[duplicates])
    assert edits.sum() > 0
    np.testing.assert_array_equal(
        noisy["concept"].to_numpy()[duplicates], noisy["concept"].to_numpy()[sources]
    )
    # flags agree with the summary
    summary = knobs[1].summary["splits"]["train"]
    assert summary["duplicates"]["docs"] == len(duplicates)
    assert summary["noise"]["docs"] == int(flagged.sum())
    # the fractions are what was asked, within binomial error
    assert stats.binomtest(len(duplicates), 300, 0.2).pvalue > 1e-3
    assert (
        stats.binomtest(int((originals & flagged).sum()), int(originals.sum()), 0.3).pvalue > 1e-3
    )


def test_exact_duplicates_are_byte_identical(tmp_path):
    data = GincDataset(generate(small_spec(duplicates={"fraction": 0.5}), tmp_path / "d"))
    table = data.table("train").to_pandas()
    for i, source in enumerate(table["duplicate_of"]):
        if source >= 0:
            assert list(table["tokens"][i]) == list(table["tokens"][source])
            assert table["n_duplicate_edits"][i] == 0


def test_oracle_column_is_the_true_concept_likelihood(knobs):
    data = knobs[1]
    table = data.table("train").to_pandas()
    family = data.family
    arrays = family.concepts(data.concept_ids)
    rows = np.searchsorted(arrays.indices, table["concept"].to_numpy())
    tokens = np.stack(table["tokens"].to_numpy())
    rate = np.where(table["noise"], 0.2, 0.0)
    duplicate = table["duplicate_of"].to_numpy() >= 0
    rate[duplicate] = composed_substitution_rate(rate[duplicate], 0.05, 20)
    np.testing.assert_allclose(
        table["oracle_nll"], oracle_nll(family, arrays, rows, tokens, rate), rtol=1e-12
    )
    assert np.isfinite(table["oracle_nll"]).all()
    summary = data.summary["splits"]["eval"]
    assert summary["bayes_mixture"]["bayes_mixture_nll"] >= summary["bayes_mixture"]["oracle_nll"]


def test_same_seed_same_bytes_and_splits_are_independent(tmp_path, knobs):
    again = GincDataset(generate(small_spec(), tmp_path / "again"))
    for name in ("train.parquet", "eval.parquet", "prompts.parquet"):
        assert (again.path / name).read_bytes() == (knobs[0].path / name).read_bytes()
    # train and eval come from different streams: no shared prefix of documents
    train = np.stack(knobs[0].table("train")["tokens"].to_numpy(zero_copy_only=False))
    eval_ = np.stack(knobs[0].table("eval")["tokens"].to_numpy(zero_copy_only=False))
    assert not (train[:40, :32] == eval_).all(1).any()
    other = GincDataset(generate(small_spec().model_copy(update={"seed": 8}), tmp_path / "s8"))
    assert (other.path / "train.parquet").read_bytes() != (
        knobs[0].path / "train.parquet"
    ).read_bytes()


def test_zipf_imbalance_follows_the_weights(tmp_path):
    data = GincDataset(
        generate(small_spec(n_docs=2000, weighting="zipf", zipf_exponent=1.5), tmp_path / "z")
    )
    split = data.summary["splits"]["train"]
    weights = np.array(split["weights"])
    np.testing.assert_allclose(weights, np.arange(1, 5) ** -1.5 / (np.arange(1, 5) ** -1.5).sum())
    counts = np.array(split["concept_counts"])
    assert stats.chisquare(counts, weights * counts.sum()).pvalue > 1e-3
    truth = split["ground_truth_diversity"]
    assert truth["effective_concepts"] < 4
    np.testing.assert_allclose(truth["weight_entropy"], -(weights * np.log(weights)).sum())


def test_loading_round_trips(knobs):
    data = knobs[0]
    hf = data.to_hf("train")
    assert len(hf) == 300 and hf[0]["tokens"] == data.table("train")["tokens"][0].as_py()
    tokenizer = data.tokenizer()
    assert tokenizer.pad_token_id == 20 and tokenizer.eos_token_id == 22
    ids = hf[0]["tokens"][:20]
    text = tokenizer.decode(ids)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == ids
    # token blocks: documents joined by <eos>, cut into equal blocks, nothing lost
    blocks = list(data.iter_token_blocks("train", 100, batch_docs=7))
    joined = np.concatenate([np.append(doc, 22) for doc in hf["tokens"]])
    assert all(len(b) == 100 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), joined[: len(blocks) * 100])
    assert len(joined) - len(blocks) * 100 < 100


def test_prompts_are_written(knobs):
    prompts = knobs[0].prompts().to_pandas()
    assert set(prompts["kind"]) == {"id", "ood"}
    assert len(prompts) == 2 * 2 * 2 * 10
    ood = prompts[prompts["kind"] == "ood"]
    assert not set(ood["concept"]) & set(knobs[0].concept_ids)
    for _, row in prompts.iterrows():
        n, length = row["n_examples"], row["example_length"]
        assert len(row["tokens"]) == n * (length + 1) + length - 1


@pytest.mark.parametrize(
    "tree",
    [
        {"splits": {"train": {"n_docs": -5}}},
        {"splits": {"train": {"n_docs": 5, "n_tokens": 100}}},
        {"family": {"vocab_size": 1}},
        {"concepts": {"plan": "nested", "n_eval": 5, "k": 6}},
        {"concepts": {"plan": "nested"}},
        {"family": {"vocab_sise": 50}},
        {"splits": {"train": {"n_docs": 5, "noise": {"rate": 2}}}},
        {"prompts": {"example_lengths": [1]}},
        [1, 2],
    ],
)
def test_bad_specs_raise_one_config_error_and_write_nothing(tmp_path, tree):
    with pytest.raises(ConfigError):
        spec = GincSpec.from_dict(tree)
        generate(spec, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_failed_generation_leaves_no_partial_folder(tmp_path, monkeypatch):
    import divlab.data.ginc.dataset as dataset

    def explode(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(dataset, "_generate_prompts", explode)
    with pytest.raises(RuntimeError):
        generate(small_spec(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_unfinished_or_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError):
        GincDataset(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "half" / "train.parquet")
    with pytest.raises(DataError):
        GincDataset(tmp_path / "half")
