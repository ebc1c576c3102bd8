"""Scaling fits: planted laws recovered, bootstrap coverage, held-out prediction, bad
input, and a tiny end-to-end scaling experiment with its tables and report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from divlab.errors import ConfigError, DataError
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.scaling import laws
from divlab.experiments.kinds.scaling.spec import ScalingExperimentSpec as SPEC
from tests.experiments.tiny import InProcess, assert_plan_matches, tiny_kind_spec

PLANTED_DATA = {"E": 1.5, "B": 20.0, "beta": 0.4}
PLANTED_JOINT = {"E": 1.2, "A": 300.0, "alpha": 0.35, "B": 400.0, "beta": 0.3}
D_GRID = np.geomspace(1e3, 1e7, 8)
N_GRID = np.geomspace(1e4, 1e7, 4)


def joint_grid():
    N, D = (a.ravel() for a in np.meshgrid(N_GRID, D_GRID))
    return N, D


def test_data_law_recovers_planted_parameters():
    fit = laws.fit_data_law(D_GRID, laws.data_law(D_GRID, **PLANTED_DATA))
    for name, value in PLANTED_DATA.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-6)
    assert fit.predict(1e8) == pytest.approx(laws.data_law(1e8, **PLANTED_DATA), rel=1e-9)


def test_joint_law_recovers_planted_parameters():
    N, D = joint_grid()
    fit = laws.fit_joint_law(N, D, laws.joint_law(N, D, **PLANTED_JOINT))
    for name, value in PLANTED_JOINT.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-6)


def test_bootstrap_intervals_cover_planted_values_under_small_noise():
    rng = np.random.default_rng(0)
    loss = laws.data_law(D_GRID, **PLANTED_DATA) * np.exp(rng.normal(0, 0.003, len(D_GRID)))
    fit = laws.fit_data_law(D_GRID, loss)
    boot = laws.bootstrap(fit, D_GRID, loss, n_boot=200, seed=1)
    for name, value in PLANTED_DATA.items():
        low, high = boot["params"][name]
        assert low <= value <= high, name
        assert low <= fit.params[name] <= high
    N, D = joint_grid()
    loss = laws.joint_law(N, D, **PLANTED_JOINT) * np.exp(rng.normal(0, 0.003, len(D)))
    fit = laws.fit_joint_law(N, D, loss)
    boot = laws.bootstrap(fit, D, loss, N, n_boot=100, seed=1)
    for name, value in PLANTED_JOINT.items():
        low, high = boot["params"][name]
        assert low <= value <= high, name
    # Same seed, same resamples: the intervals are reproducible.
    again = laws.bootstrap(fit, D, loss, N, n_boot=100, seed=1)
    assert again["params"] == boot["params"]


def test_holdout_prediction_on_noiseless_points_has_no_error():
    tokens = np.repeat(D_GRID[:5], 2)  # two "seeds" per budget
    loss = laws.data_law(tokens, **PLANTED_DATA)
    held = laws.holdout_prediction("data", tokens, loss, tokens == tokens.max(), n_boot=50)
    assert held["fit"].n_points == 8
    assert held["realised"] == pytest.approx(laws.data_law(D_GRID[4], **PLANTED_DATA))
    assert abs(held["relative_error"]) < 1e-9
    assert held["ci_low"] == pytest.approx(held["predicted"], rel=1e-7)
    assert held["ci_high"] == pytest.approx(held["predicted"], rel=1e-7)
    sizes, tokens = joint_grid()
    loss = laws.joint_law(sizes, tokens, **PLANTED_JOINT)
    mask = (sizes == sizes.max()) & (tokens == tokens.max())
    held = laws.holdout_prediction("joint", tokens, loss, mask, sizes, n_boot=20)
    assert abs(held["relative_error"]) < 1e-9


def test_bad_input_raises_clear_errors():
    with pytest.raises(DataError, match="3 parameters but only 2 points"):
        laws.fit_data_law([1e3, 1e4], [3.0, 2.5])
    with pytest.raises(DataError, match="5 parameters but only 4 points"):
        laws.fit_joint_law([1, 2, 3, 4], [1e3, 1e4, 1e5, 1e6], [3.0, 2.5, 2.2, 2.0])
    with pytest.raises(DataError, match="D \\(tokens\\) must be finite and positive"):
        laws.fit_data_law([0, 1e3, 1e4, 1e5], [3.0, 2.8, 2.5, 2.2])
    with pytest.raises(DataError, match="N \\(parameters\\) must be finite and positive"):
        N, D = joint_grid()
        laws.fit_joint_law(-N, D, np.ones_like(D))
    with pytest.raises(DataError, match="3 distinct token counts"):
        laws.fit_data_law([1e3, 1e3, 1e4, 1e4], [3.0, 3.1, 2.5, 2.4])
    with pytest.raises(DataError, match="one configuration"):
        laws.holdout_prediction("data", D_GRID, np.ones(8), D_GRID > 1e6)


def scaling_spec(**section) -> dict:
    spec = tiny_kind_spec(
        "scaling",
        name="tiny-scaling",
        scaling={"token_budgets": [1024, 2048, 4096, 8192], "bootstrap": 50, **section},
        seeds=[0],
        eval_every_tokens=None,
        evaluation={"limit": 8, "prefix": 16, "length": 8, "icl": False},
    )
    spec["training_data"] = {"n_tokens": 4000, "doc_length": 256, "seed": 2}
    return spec


def test_spec_validation():
    spec = kinds.spec_from_dict(scaling_spec(), "test")
    assert isinstance(spec, SPEC) and spec.presets() == ["tiny"]
    assert any("4 runs" in line for line in kinds.get("scaling").describe(spec))
    with pytest.raises(ConfigError, match="list at least 4 token_budgets"):
        kinds.spec_from_dict(scaling_spec(token_budgets=[1024, 2048, 4096]), "test")
    with pytest.raises(ConfigError, match="same number of"):
        kinds.spec_from_dict(scaling_spec(token_budgets=[1024, 1500, 2048, 4096]), "test")
    with pytest.raises(ConfigError, match="unknown preset"):
        kinds.spec_from_dict(scaling_spec(model_presets=["tiny", "huge"]), "test")
    with pytest.raises(ConfigError, match="kind"):  # kind is required: no silent default
        SPEC.from_dict({k: v for k, v in scaling_spec().items() if k != "kind"})


def test_tiny_scaling_experiment_end_to_end(tmp_path):
    spec = kinds.spec_from_dict(scaling_spec(), "test")
    module = kinds.get("scaling")
    executor = InProcess()
    result = module.run(spec, tmp_path / "exp", executor=executor, progress=False)
    folder = tmp_path / "exp"
    assert_plan_matches(spec, folder)
    runs = pd.read_parquet(folder / "scaling.parquet")
    assert sorted(runs["D"]) == [1024, 2048, 4096, 8192]
    assert (runs["N"] > 0).all() and runs["N"].nunique() == 1
    assert runs["held_out"].tolist() == (runs["D"] == 8192).tolist()
    fits = pd.read_parquet(folder / "scaling_fits.parquet")
    assert set(fits["parameter"]) == {"E", "B", "beta"}
    assert set(fits["fitted_on"]) == {"all", "holdout"}
    holdout = pd.read_parquet(folder / "scaling_holdout.parquet")
    row = holdout.iloc[0]
    assert row["fitted_on"] == 3 and row["D"] == 8192
    assert row["realised"] == pytest.approx(runs.loc[runs["held_out"], "loss"].mean())
    # The prediction is the holdout fit's law at the held-out D.
    params = fits[fits["fitted_on"] == "holdout"].set_index("parameter")["value"].to_dict()
    assert row["predicted"] == pytest.approx(float(laws.predict(params, 8192)))
    summary = json.loads((folder / "report" / "summary.json").read_text())
    assert summary["kind"] == "scaling" and summary["runs"] == 4
    assert summary["holdout_relative_error"] == pytest.approx(
        (row["predicted"] - row["realised"]) / row["realised"]
    )
    html = (folder / "report" / "index.html").read_text()
    assert "id='holdout-relative-error'" in html and "figure-scaling_data" in html
    # A relaunch trains nothing again and gives the same tables.
    again = module.run(spec, folder, executor=executor, progress=False, report=False)
    assert again["runs"] == 4
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "scaling_holdout.parquet"), holdout)
    assert result["report"].endswith("index.html")


def test_fit_tables_and_report_on_a_planted_joint_law(tmp_path):
    """Three model sizes x four budgets x two seeds of a noiseless joint law: every law is
    recovered (a model's data law has E' = E + A / N^alpha), every held-out prediction is
    exact, and the report reads it back."""
    from divlab.experiments.kinds.scaling.report import sections
    from divlab.experiments.kinds.scaling.run import fit_tables, runs_table
    from divlab.experiments.kinds.scaling.spec import TABLES, ScalingSection

    sizes = {"tiny": 2e4, "mini": 1e5, "small": 8e5}
    budgets = [2**12, 2**14, 2**16, 2**18]
    records, configs = [], []
    for model, n in sizes.items():
        for budget in budgets:
            for seed in (0, 1):
                loss = float(laws.joint_law(n, budget, **PLANTED_JOINT))
                records.append(
                    {"run_id": f"{model}-{budget}-{seed}", "parameters_non_embedding": n,
                     "parameters": n + 1000, "tokens": budget, "seed": seed, "loss": loss,
                     "oracle_loss": 1.0, "perplexity": np.exp(loss), "flops": 6 * n * budget}
                )  # fmt: skip
                configs.append({"model": model, "budget": budget})
    runs = runs_table(records, configs, "largest")
    assert runs["held_out"].sum() == 6 and runs["held_out_joint"].sum() == 2
    section = ScalingSection(token_budgets=budgets, bootstrap=50)
    fits, holdout = fit_tables(runs, section)
    assert sorted(holdout["law"]) == ["data", "data", "data", "joint"]
    assert np.abs(holdout["relative_error"]).max() < 1e-8
    joint = fits[(fits["law"] == "joint") & (fits["fitted_on"] == "all")]
    for name, value in PLANTED_JOINT.items():
        assert joint.set_index("parameter").loc[name, "value"] == pytest.approx(value, rel=1e-5)
    mini = fits[(fits["model"] == "mini") & (fits["fitted_on"] == "all")].set_index("parameter")
    floor = PLANTED_JOINT["E"] + PLANTED_JOINT["A"] / sizes["mini"] ** PLANTED_JOINT["alpha"]
    assert mini.loc["E", "value"] == pytest.approx(floor, rel=1e-5)
    assert mini.loc["beta", "value"] == pytest.approx(PLANTED_JOINT["beta"], rel=1e-5)

    for name, table in zip(TABLES, (runs, fits, holdout), strict=True):
        table.to_parquet(tmp_path / name, index=False)
    body, summary = sections(tmp_path, tmp_path)  # figures go to tmp_path / "figures"
    assert [element_id for *_, element_id in body][:2] == ["scaling-holdout", "scaling-fits"]
    assert summary["holdout"]["law"] == "joint"
    assert abs(summary["holdout_relative_error"]) < 1e-8
    assert summary["fits"]["joint"]["all"]["alpha"]["value"] == pytest.approx(0.35, rel=1e-5)
    assert {p.name for p in (tmp_path / "figures").glob("*.png")} == {
        "scaling_data.png",
        "scaling_joint.png",
    }
