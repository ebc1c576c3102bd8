"""`divlab evaluate` end to end on a trained checkpoint, and its refusals."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from divlab.cli import app
from divlab.data.store import open_dataset
from divlab.errors import DataError
from divlab.evaluate.checkpoint import evaluate_checkpoint
from divlab.train import TrainSpec, train

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(five_concepts, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    spec = TrainSpec.from_dict(
        {"data": str(five_concepts), "token_budget": 4096, "seq_len": 64, "batch_tokens": 1024,
         "optimizer": {"lr": 1e-2}, "eval_docs": 4}
    )  # fmt: skip
    train(spec, out)
    return out / "model"


def test_evaluate_reports_every_metric(checkpoint, five_concepts, tmp_path):
    result = evaluate_checkpoint(checkpoint, five_concepts, limit=8, prefix=16, length=8)
    loss = result["loss"]
    assert loss["gap"] == pytest.approx(loss["loss"] - loss["oracle_loss"])
    assert loss["gap"] > 0 and set(loss["per_concept"]) <= {"0", "1", "2", "3", "4"}
    assert len(loss["per_concept"]) >= 3
    assert set(result["continuation"]) >= {"vs_truth", "vs_oracle", "oracle_vs_truth"}
    assert {(r["kind"], r["n_examples"], r["example_length"]) for r in result["icl"]} == {
        (k, n, length) for k in ("id", "ood") for n in (0, 4) for length in (3, 5)
    }
    out = tmp_path / "eval.json"
    cli = runner.invoke(
        app, ["evaluate", str(checkpoint), "--data", str(five_concepts), "--limit", "8",
              "--out", str(out)],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert json.loads(out.read_text())["loss"]["loss"] == pytest.approx(loss["loss"])
    total = open_dataset(five_concepts).summary["splits"]["eval"]["n_docs"]
    assert "(eval, 8 docs of " + str(total) + ")" in " ".join(cli.output.split())
    # without --limit every document of the split is scored, and the output says how many
    every = runner.invoke(
        app, ["evaluate", str(checkpoint), "--data", str(five_concepts), "--no-icl"]
    )
    assert every.exit_code == 0, every.output
    assert f"(eval, {total} docs)" in " ".join(every.output.split())
    # documents shorter than prefix + length (held-out sentences): the loss, and the
    # continuations said to be skipped, not an error after the loss was computed
    short = evaluate_checkpoint(
        checkpoint, five_concepts, limit=8, prefix=4000, length=16, icl=False
    )
    assert short["loss"]["loss"] == pytest.approx(loss["loss"])
    assert short["continuation"]["docs"] == 0 and "4016 tokens" in short["continuation"]["skipped"]


def test_a_different_vocabulary_is_refused(checkpoint, tmp_path):
    from divlab.data.ginc import generate

    from ..conftest import ginc_spec

    other = generate(ginc_spec(family={"vocab_size": 30}), tmp_path / "v30")
    with pytest.raises(DataError, match="vocabulary"):
        evaluate_checkpoint(checkpoint, other)
    bad = tmp_path / "not-a-checkpoint"
    shutil.copytree(other, bad)
    with pytest.raises(DataError, match="not a model checkpoint"):
        evaluate_checkpoint(bad, other)
