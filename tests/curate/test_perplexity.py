"""The perplexity filter drops the documents a model finds unlikely: on GINC with 20 % of
documents noised (ground truth), the dropped 20 % are mostly the noisy ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from divlab.cli import app
from divlab.curate.perplexity import band, perplexity_filter
from divlab.data.ginc import GincSpec, generate
from divlab.data.store import open_dataset
from divlab.data.text import load_tokenizer
from divlab.errors import ConfigError, DataError
from divlab.train import TrainSpec, train


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppl")
    spec = {
        "family": {"vocab_size": 50, "seed": 0},
        "concepts": {"plan": "eval", "n_eval": 2},
        "seed": 6,
        "splits": {
            "train": {
                "n_docs": 200,
                "doc_length": 256,
                "oracle": False,
                "noise": {"fraction": 0.2, "rate": 0.5},
            },
            "eval": {"n_docs": 8, "doc_length": 256, "oracle": False},
        },
        "prompts": None,
    }
    data = generate(GincSpec.from_dict(spec), root / "data")
    fields = {
        "data": str(data),
        "token_budget": 32768,
        "seq_len": 128,
        "batch_tokens": 2048,
        "optimizer": {"lr": 1e-2},
        "eval_docs": 4,
    }
    train(TrainSpec.from_dict(fields), root / "scorer")
    return data, root / "scorer" / "model"


def test_filter_drops_the_noisy_documents(noisy, tmp_path):
    data, model = noisy
    report = perplexity_filter(data, tmp_path / "out", model, 0.0, 0.8, device="cpu")
    table = open_dataset(data).table("train").to_pandas()
    removed = pd.read_parquet(tmp_path / "out" / "curation" / "removed.parquet")
    assert report["removed"] == len(removed) == pytest.approx(0.2 * len(table), abs=2)
    noisy_ids = set(table.doc_id[table.noise])
    precision = len(set(removed.doc_id) & noisy_ids) / len(removed)
    assert precision >= 0.9, precision  # the high-perplexity tail is the noise
    assert (removed.reason == "above band").all()
    kept = open_dataset(tmp_path / "out").table("train").to_pandas()
    assert len(kept) + len(removed) == len(table)
    assert kept.noise.mean() < table.noise.mean() / 2


def test_bad_bands_are_refused(noisy, tmp_path):
    data, model = noisy
    with pytest.raises(ConfigError, match="keep band"):
        perplexity_filter(data, tmp_path / "x", model, 0.9, 0.1)
    with pytest.raises(ConfigError, match="keep band"):
        perplexity_filter(data, tmp_path / "x", model, 0.0, 1.5)


def test_cli_ppl_filter(noisy, tmp_path):
    from ..test_cli import run_cli

    data, model = noisy
    result = run_cli(
        "curate",
        "ppl-filter",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--model",  # the old spelling of --checkpoint: works, with a deprecation line
        str(model),
        "--keep-high",
        "0.5",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    assert "kept 100 of 200 documents" in " ".join(result.stdout.split())
    assert "--model is deprecated; use --checkpoint" in " ".join(result.stderr.split())


def test_a_raw_corpus_is_scored_with_the_models_own_tokenizer(noisy, tmp_path):
    """The GINC documents written as JSONL text: the raw path tokenizes them with the
    checkpoint's tokenizer and keeps exactly the documents the data-set path keeps."""
    data, model = noisy
    dataset = open_dataset(data)
    tokenizer = load_tokenizer(model)
    texts = [tokenizer.decode(d) for d in dataset.documents("train")]
    assert [list(i) for i in tokenizer(texts[:3], add_special_tokens=False)["input_ids"]] == [
        list(d) for d in dataset.documents("train")[:3]
    ]  # the text round-trips to the same tokens
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    args = ["curate", "ppl-filter", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "raw"),
            "--checkpoint", str(model), "--keep-high", "0.8", "--device", "cpu",
            "--progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    perplexity_filter(data, tmp_path / "set", model, 0.0, 0.8, device="cpu")
    raw = pd.read_parquet(tmp_path / "raw" / "curation" / "removed.parquet")
    by_set = pd.read_parquet(tmp_path / "set" / "curation" / "removed.parquet")
    ids = dataset.table("train").column("doc_id").to_pylist()
    assert [ids[i] for i in raw.doc_index] == by_set.doc_id.tolist()
    assert raw.perplexity.to_numpy() == pytest.approx(by_set.perplexity.to_numpy(), rel=1e-5)


def test_a_document_without_tokens_is_removed_with_its_reason_not_the_whole_band():
    scores = np.array([5.0, 6.0, 7.0, np.nan, 100.0])
    kept, reason, fields = band(scores, 0.0, 0.75, absolute=False)
    assert kept.tolist() == [True, True, True, False, False]
    assert reason[3] == "no tokens" and reason[4] == "above band"
    assert fields["settings"]["band"] == [5.0, pytest.approx(np.quantile([5, 6, 7, 100], 0.75))]
    with pytest.raises(DataError, match="no document has a token"):
        band(np.array([np.nan]), 0.0, 0.9, absolute=False)


def test_a_folder_that_is_not_a_checkpoint_is_one_error(noisy, tmp_path):
    data, _ = noisy
    with pytest.raises(DataError, match="is not a model checkpoint"):
        perplexity_filter(data, tmp_path / "x", data, device="cpu")
