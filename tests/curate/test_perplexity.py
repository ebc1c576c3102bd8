"""The perplexity filter drops the documents a model finds unlikely: on GINC with 20 % of
documents noised (ground truth), the dropped 20 % are mostly the noisy ones."""

from __future__ import annotations

import pandas as pd
import pytest

from divlab.curate.perplexity import perplexity_filter
from divlab.data.ginc import GincSpec, generate
from divlab.data.store import open_dataset
from divlab.errors import ConfigError
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
        str(tmp_path / "out"),
        "--model",
        str(model),
        "--keep-high",
        "0.5",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    assert "kept 100 of 200 documents" in " ".join(result.stdout.split())
