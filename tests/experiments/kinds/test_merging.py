"""Data-ablation approximation by merging: checkpoint averaging (exact values, loading,
errors), the ``divlab merge`` command, the correlation analysis on planted tables, and a
tiny merging experiment end to end with a relaunch that does nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from divlab.cli import app
from divlab.errors import ConfigError, DataError
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.merging.report import analyse
from divlab.experiments.kinds.merging.run import partitions
from divlab.experiments.kinds.merging.spec import (
    MergingExperimentSpec,
    candidate_mixtures,
    trained_mixtures,
)
from divlab.train.merging import average_checkpoints
from tests.experiments.tiny import assert_plan_matches

from ..tiny import InProcess, tiny_spec

VOCAB = 20


def make_checkpoint(path: Path, seed: int, **model) -> Path:
    """A freshly initialised tiny llama saved as a HF folder, with a stand-in tokenizer
    file and the per-run files a merge must not copy."""
    from transformers.utils import logging

    from divlab.train.models import ModelSpec, build_config, build_model

    logging.disable_progress_bar()
    config = build_config(ModelSpec(preset="tiny", **model), VOCAB, 64, {"eos_token_id": 0})
    build_model(config, seed).save_pretrained(path, safe_serialization=True)
    (path / "tokenizer.json").write_text('{"stand-in": true}')
    (path / "divlab.json").write_text(json.dumps({"seed": seed}))
    (path / "trainer_state.pt").write_bytes(b"not copied")
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return [make_checkpoint(root / f"m{seed}", seed) for seed in (0, 1)]


def _logits(path: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    with torch.no_grad():
        return model(torch.arange(12).reshape(2, 6) % VOCAB).logits


# ---- averaging ------------------------------------------------------------------------


def test_average_of_identical_checkpoints_is_the_checkpoint(checkpoints, tmp_path):
    a = checkpoints[0]
    out = average_checkpoints([a, a, a], tmp_path / "merged")
    original = load_file(str(a / "model.safetensors"))
    merged = load_file(str(out / "model.safetensors"))
    assert merged.keys() == original.keys()
    for name, tensor in original.items():
        assert merged[name].dtype == tensor.dtype
        assert torch.equal(merged[name], tensor), name
    assert torch.equal(_logits(out), _logits(a))
    # the tokenizer and config come along; the per-run sidecar and trainer state do not
    assert (out / "tokenizer.json").read_text() == '{"stand-in": true}'
    assert not (out / "trainer_state.pt").exists()
    sidecar = json.loads((out / "divlab.json").read_text())
    assert sidecar["sources"] == [str(a.resolve())] * 3
    assert sidecar["normalised_weights"] == pytest.approx([1 / 3] * 3)


def test_weighted_average_matches_a_hand_computation(checkpoints, tmp_path):
    a, b = checkpoints
    out = average_checkpoints([a, b], tmp_path / "merged", weights=[3, 1])
    name = "model.layers.0.mlp.up_proj.weight"
    ta, tb = (load_file(str(p / "model.safetensors"))[name] for p in (a, b))
    expected = ((3 * ta.double() + tb.double()) / 4).float()
    merged = load_file(str(out / "model.safetensors"))
    assert torch.equal(merged[name], expected)
    assert not torch.equal(merged[name], ta)
    assert json.loads((out / "divlab.json").read_text())["weights"] == [3.0, 1.0]
    # the uniform average loads and differs from both parents
    uniform = average_checkpoints([a, b], tmp_path / "uniform")
    logits = _logits(uniform)
    assert logits.shape == (2, 6, VOCAB) and not torch.allclose(logits, _logits(a))


def test_tied_embeddings_average_without_an_output_head(tmp_path):
    tied = [make_checkpoint(tmp_path / f"t{s}", s, tie_embeddings=True) for s in (0, 1)]
    out = average_checkpoints(tied, tmp_path / "merged")
    keys = load_file(str(out / "model.safetensors")).keys()
    assert keys == load_file(str(tied[0] / "model.safetensors")).keys()
    assert _logits(out).shape == (2, 6, VOCAB)


def test_mismatched_architectures_and_bad_arguments_are_refused(checkpoints, tmp_path):
    a, b = checkpoints
    wide = make_checkpoint(tmp_path / "wide", 0, hidden_size=64, num_heads=2)
    with pytest.raises(ConfigError, match=r"another architecture.*config field 'head_dim'"):
        average_checkpoints([a, wide], tmp_path / "x")
    # same config, but one tensor reshaped: the tensor is named
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text((a / "config.json").read_text())
    tensors = load_file(str(a / "model.safetensors"))
    tensors["model.norm.weight"] = torch.ones(7)
    save_file(tensors, str(odd / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match=r"tensor 'model\.norm\.weight'"):
        average_checkpoints([a, odd], tmp_path / "x")
    del tensors["model.norm.weight"]
    save_file(tensors, str(odd / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match=r"lacks tensor 'model\.norm\.weight'"):
        average_checkpoints([a, odd], tmp_path / "x")
    # non-float tensors must agree
    counted = {}
    for name, value in (("c1", 1), ("c2", 2)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text((a / "config.json").read_text())
        tensors = load_file(str(a / "model.safetensors"))
        tensors["steps"] = torch.tensor([value], dtype=torch.int64)
        save_file(tensors, str(folder / "model.safetensors"))
        counted[name] = folder
    with pytest.raises(DataError, match="non-float tensor 'steps'"):
        average_checkpoints([counted["c1"], counted["c2"]], tmp_path / "x")
    copied = average_checkpoints([counted["c1"], counted["c1"]], tmp_path / "copied")
    assert load_file(str(copied / "model.safetensors"))["steps"].tolist() == [1]

    with pytest.raises(ConfigError, match="at least one checkpoint"):
        average_checkpoints([], tmp_path / "x")
    with pytest.raises(ConfigError, match="positive"):
        average_checkpoints([a, b], tmp_path / "x", weights=[1, 0])
    with pytest.raises(ConfigError, match="one per checkpoint"):
        average_checkpoints([a, b], tmp_path / "x", weights=[1, 2, 3])
    with pytest.raises(DataError, match=r"has no model\.safetensors"):
        average_checkpoints([a, tmp_path], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_merge_command(checkpoints, tmp_path):
    a, b = checkpoints
    out = tmp_path / "merged"
    result = CliRunner().invoke(
        app, ["merge", str(a), str(b), "--out", str(out), "--weights", "3,1"]
    )
    assert result.exit_code == 0, result.output
    assert "average of 2 checkpoints" in " ".join(result.output.split())
    assert json.loads((out / "divlab.json").read_text())["normalised_weights"] == [0.75, 0.25]
    # user errors: one line, exit code 2 (through the real entry point)
    code = "from divlab.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "merge", str(a), str(b), "--out", str(tmp_path / "y"),
         "--weights", "1,x"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "--weights" in done.stderr
    assert "Traceback" not in done.stderr


# ---- the spec and the plan -------------------------------------------------------------


def merging_spec(**section) -> MergingExperimentSpec:
    tree = tiny_spec(kind="merging", merging=section)
    del tree["plan"], tree["probe"], tree["diversity"]
    return kinds.spec_from_dict(tree, source="test")


def test_partitions_and_mixtures_resolve():
    spec = merging_spec(n_partitions=3)
    assert partitions(spec) == [[0, 1], [2], [3]]
    assert candidate_mixtures(spec.merging) == [(0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert trained_mixtures(spec.merging) == candidate_mixtures(spec.merging)
    spec = merging_spec(partitions=[[0], [1], [2], [3]], max_mixture_size=2, train_mixtures=2)
    assert len(candidate_mixtures(spec.merging)) == 6
    trained = trained_mixtures(spec.merging)
    assert len(trained) == 2 and set(trained) <= set(candidate_mixtures(spec.merging))
    assert trained == trained_mixtures(spec.merging)  # seeded: the same draw every time
    capped = merging_spec(partitions=[[0], [1], [2], [3]], max_mixtures=5)
    assert len(candidate_mixtures(capped.merging)) == 5
    assert kinds.get("merging").describe(spec)


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"n_partitions": 5}, "exceeds the eval set's 4 concepts"),
        ({"partitions": [[0, 1], [1]]}, "distinct concept ids"),
        ({"partitions": [[0, 1]]}, "at least 2 partitions"),
        ({"partitions": [[0], [1]], "n_partitions": 3}, "disagrees"),
        ({"mixtures": [[0, 3]]}, "indices run from 0 to 2"),
        ({"mixtures": [[0]]}, ">= 2 distinct"),
        ({"weights": [1, 2]}, "one per partition"),
        ({"weights": [1, 0, 1]}, "positive"),
        ({"train_mixtures": 9}, "exceeds the 4 candidate"),
        ({"mixtures": [[0, 1]], "train_mixtures": [[1, 2]]}, "not candidate mixtures"),
        ({"partition_tokens": 10}, "below one batch"),
    ],
)
def test_bad_merging_sections_are_refused(section, needle):
    with pytest.raises(ConfigError, match=needle):
        merging_spec(**section)


# ---- the analysis ----------------------------------------------------------------------


def _planted(mixture, merge, eval_set="all", trained=True) -> pd.DataFrame:
    n = len(mixture)
    return pd.DataFrame(
        {
            "seed": 0,
            "mixture": [f"m{i}" for i in range(n)],
            "eval_set": eval_set,
            "trained": trained,
            "mixture_perplexity": mixture,
            "merge_perplexity": merge,
            "component_mean_perplexity": np.asarray(mixture)[::-1],
            "seed_perplexity": 10.0 + np.arange(n) % 2,
        }
    )


def test_analysis_recovers_planted_correlations():
    mixture = np.array([3.0, 4.0, 5.5, 6.0, 8.0, 9.5])
    result = analyse(_planted(mixture, 2 * mixture + 1))  # an exact affine relation
    merge = result["correlations"]["merge"]
    assert merge["pearson_r"] == pytest.approx(1.0)
    assert merge["spearman_rho"] == pytest.approx(1.0)
    assert merge["pearson_ci_low"] == pytest.approx(1.0)
    # the component-mean baseline is planted reversed: rho = -1
    assert result["correlations"]["component_mean"]["spearman_rho"] == pytest.approx(-1.0)
    rank = result["rank_agreement"]
    assert len(rank) == 1 and rank[0]["merge_rho"] == pytest.approx(1.0)
    assert rank[0]["merge_top1"] and not rank[0]["component_mean_top1"]

    # ranks (2, 1, 4, 3, 5) against (1, 2, 3, 4, 5): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    points = pd.concat(
        [
            _planted([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0], "p0"),
            _planted([1.0, 2.0], [7.0, 9.0], "p1", trained=False),  # not trained: ignored
        ]
    )
    result = analyse(points)
    assert result["n_points"] == 5 and result["n_trained"] == 5
    assert result["correlations"]["merge"]["spearman_rho"] == pytest.approx(0.8)
    assert result["correlations"]["merge"]["pearson_r"] == pytest.approx(0.8)
    assert result["rank_agreement"][0]["merge_top1"] is False


# ---- end to end --------------------------------------------------------------------------


def test_tiny_merging_experiment_runs_reports_and_resumes(tmp_path):
    tree = tiny_spec(
        kind="merging",
        name="tiny-merging",
        merging={
            "n_partitions": 3,
            "train_mixtures": [[0, 1], [0, 2], [1, 2]],
            "seed_tokens": 2048,
            "partition_tokens": 1024,
            "lr": 0.005,
        },
        token_budget=2048,
        batch_tokens=512,
        eval_every_tokens=1024,
        seeds=[0],
        evaluation={"limit": 4, "prefix": 8, "length": 4, "icl": False},
        executor={"kind": "local", "workers": 1, "threads_per_worker": 1},
    )
    del tree["plan"], tree["probe"], tree["diversity"]
    tree["eval"]["n_docs"] = 8
    tree["training_data"]["n_tokens"] = 4096
    spec = kinds.spec_from_dict(tree, source="test")
    module = kinds.get("merging")
    out = tmp_path / "exp"
    result = module.run(spec, out, executor=InProcess(), progress=False)
    assert result["ran_now"] == result["runs"] == 1 + 3 + 3
    assert_plan_matches(spec, out)
    assert result["merged_now"] == 4 and result["evaluated_now"] == 1 + 3 + 4 + 3

    table = pd.read_parquet(out / "merging.parquet")
    assert len(table) == 4 * 4  # 4 mixtures x (D_eval + 3 partition eval sets)
    assert set(table.eval_set) == {"all", "p0", "p1", "p2"}
    assert table.groupby("mixture").trained.first().to_dict() == {
        "p0+p1": True, "p0+p2": True, "p1+p2": True, "p0+p1+p2": False,
    }  # fmt: skip
    models = pd.read_parquet(out / "merging_models.parquet")
    assert sorted(models.role.unique()) == ["merge", "mixture", "partition", "seed"]
    # the table's baselines are the models table's numbers
    row = table[(table.mixture == "p0+p2") & (table.eval_set == "p2")].iloc[0]
    part = models[(models.role == "partition") & (models.eval_set == "p2")].set_index("name")
    expected = (part.loc["p0", "perplexity"] + part.loc["p2", "perplexity"]) / 2
    assert row.component_mean_perplexity == pytest.approx(expected)
    seed = models[(models.role == "seed") & (models.eval_set == "p2")].perplexity.iloc[0]
    assert row.seed_perplexity == seed
    assert np.isfinite(table.mixture_perplexity[table.trained]).all()
    # runs record the recipe: continued from the seed at a constant rate, n x the tokens
    for run_dir in (out / "runs").iterdir():
        train = json.loads((run_dir / "spec.json").read_text())
        record = json.loads((run_dir / "result.json").read_text())
        if run_dir.name.startswith("seed"):
            assert train["init_from"] is None and record["tokens"] == 2048
        else:
            assert train["init_from"].endswith("/model")
            assert train["schedule"]["kind"] == "constant" and train["optimizer"]["lr"] == 0.005
            size = 2 if run_dir.name.startswith("mix-") else 1
            assert record["tokens"] == 1024 * size
    merge = next((out / "merges").glob("p0+p1-*"))
    assert len(json.loads((merge / "divlab.json").read_text())["sources"]) == 2

    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["kind"] == "merging" and summary["n_points"] == 3 * 4
    html = (out / "report" / "index.html").read_text()
    for element in ("merge-pearson", "predictor-table", "rank-table", "mixture-table"):
        assert f"id='{element}'" in html
    expected = analyse(table)["correlations"]["merge"]["pearson_r"]
    assert summary["correlations"]["merge"]["pearson_r"] == pytest.approx(expected)

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if "report" not in p.parts}
    again = module.run(spec, out, executor=InProcess(), progress=False, report=False)
    assert again["ran_now"] == again["merged_now"] == again["evaluated_now"] == 0
    changed = [p for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert sorted(changed) == [out / "experiment.json", out / "spec.json"]
    assert pd.read_parquet(out / "merging.parquet").equals(table)
