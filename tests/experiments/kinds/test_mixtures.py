"""Mixture sweeps (``kind: mixtures``): the regressions on planted data, the mixing law,
spec errors, mixture weights honoured in the built data, and a tiny end-to-end sweep."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from divlab.errors import ConfigError
from divlab.experiments import domains as dom
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.mixtures import regress as mix
from divlab.experiments.kinds.mixtures import run as mix_run
from divlab.io import read_json
from tests.experiments.tiny import InProcess, assert_plan_matches, tiny_kind_spec

DOMAINS = [
    {"name": "a", "concepts": [0]},
    {"name": "b", "concepts": [1, 2]},
    {"name": "c", "concepts": [3]},
]


def mixtures_spec(**section) -> dict:
    spec = tiny_kind_spec("mixtures", name="tiny-mixtures", seeds=[0])
    spec["token_budget"] = 4096
    spec["training_data"] = {"n_tokens": 4096, "doc_length": 127, "seed": 2}
    spec["eval"] = {"n_concepts": 4, "n_docs": 4, "doc_length": 64, "seed": 1}
    spec["evaluation"] = {"limit": 12, "prefix": 16, "length": 4, "icl": False}
    spec["mixtures"] = {"domains": DOMAINS, "n_mixtures": 4, "n_candidates": 50, **section}
    return spec


def load(spec: dict):
    return kinds.spec_from_dict(spec, source="test spec")


def test_linear_regression_recovers_planted_coefficients_and_vertex():
    rng = np.random.default_rng(0)
    X = rng.dirichlet([1.0, 1.0, 1.0], size=12)
    planted = np.array([3.0, 1.25, 2.0])  # the loss at each vertex; domain 1 is best
    fit = mix.cross_validate("linear", X, X @ planted)
    np.testing.assert_allclose(fit["model"].coef_, planted, atol=1e-8)
    assert fit["cv_rmse"] < 1e-8 and fit["r2"] == pytest.approx(1.0)
    candidates = mix.candidate_mixtures(200, 1.0, 3, rng)
    weights, loss = mix.best_mixture(fit["model"], candidates)
    np.testing.assert_array_equal(weights, [0.0, 1.0, 0.0])
    assert loss == pytest.approx(1.25, abs=1e-8)
    # interpolation only: the best candidate within the proxies' weight ranges
    inside = mix.candidate_mixtures(200, 1.0, 3, rng, within=X)
    assert np.all((inside >= X.min(axis=0)) & (inside <= X.max(axis=0)))
    weights, loss = mix.best_mixture(fit["model"], inside)
    assert loss == pytest.approx(np.min(inside @ planted)) and loss > 1.25


def test_the_mean_baseline_is_the_leave_one_out_mean_and_loses_to_a_planted_law():
    rng = np.random.default_rng(2)
    X = rng.dirichlet([1.0, 1.0, 1.0], size=8)
    y = X @ np.array([3.0, 1.25, 2.0])
    baseline = mix.cross_validate("mean", X, y)
    loo_means = (y.sum() - y) / (len(y) - 1)  # each point predicted by the others' mean
    np.testing.assert_allclose(baseline["cv_predictions"], loo_means, rtol=1e-12)
    assert mix.cross_validate("linear", X, y)["cv_rmse"] < 1e-6 < baseline["cv_rmse"]


def test_mixing_law_recovers_planted_parameters():
    rng = np.random.default_rng(1)
    X = rng.dirichlet([1.0, 1.0, 1.0], size=10)
    c, k, t = 1.5, 0.8, np.array([-1.2, 0.5, 0.7])  # gauge: t sums to 0
    law = mix.MixingLaw().fit(X, mix.MixingLaw.law(X, c, k, t))
    assert law.c_ == pytest.approx(c, abs=1e-6)
    assert law.k_ == pytest.approx(k, abs=1e-6)
    np.testing.assert_allclose(law.t_, t, atol=1e-6)
    # L(uniform) = c + k under the gauge
    assert law.predict(np.full((1, 3), 1 / 3))[0] == pytest.approx(c + k, abs=1e-9)


@pytest.mark.parametrize("alpha", [0, -1.0, [1.0, 0.0, 1.0]])
def test_non_positive_concentration_is_a_config_error(alpha):
    with pytest.raises(ConfigError, match="concentration must be > 0"):
        load(mixtures_spec(concentration=alpha))
    with pytest.raises(ConfigError, match="concentration must be > 0"):
        mix.sample_mixtures(3, alpha, 3, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        ([{"name": "a", "concepts": [0, 1]}, {"name": "b", "concepts": [1]}], "share concept 1"),
        (
            [{"name": "a", "concepts": [0]}, {"name": "b", "concepts": [9]}],
            r"unknown concept\(s\) \[9\]",
        ),
        (
            [{"name": "a", "concepts": [0]}, {"name": "a", "concepts": [1]}],
            "names must be distinct",
        ),
        ([{"name": "a", "concepts": [0]}], "at least 2 domains"),
    ],
)
def test_bad_domains_are_config_errors(domains, message):
    with pytest.raises(ConfigError, match=message):
        load(mixtures_spec(domains=domains))


def test_unknown_target_and_wrong_concentration_length():
    with pytest.raises(ConfigError, match="target 'z' is not a domain"):
        load(mixtures_spec(target="z"))
    with pytest.raises(ConfigError, match="one per domain"):
        load(mixtures_spec(concentration=[1.0, 2.0]))


def test_document_counts_round_to_the_nearest_documents():
    counts = dom.document_counts([0.5, 0.3, 0.2], 7)
    assert counts.sum() == 7 and np.all(np.abs(counts - np.array([3.5, 2.1, 1.4])) < 1)
    with pytest.raises(ConfigError, match="sum to 1"):
        dom.document_counts([0.5, 0.6], 10)


def test_mixture_weights_are_honoured_in_the_built_data_set(tmp_path):
    spec = load(mixtures_spec())
    domains = spec.mixtures.domains
    n_docs = 40
    pools = {
        k: dom.open_dataset(p) for k, p in dom.domain_pools(spec, tmp_path, domains, n_docs).items()
    }
    weights = np.array([0.55, 0.3, 0.15])
    rng = np.random.default_rng(0)
    table = dom.mixture_documents(pools, weights, n_docs, rng)
    path = dom.write_training_set(
        tmp_path / "mix", pools["a"], table, dom.shuffled_order(n_docs, rng)
    )
    built = dom.open_dataset(path).table("train")
    lengths = pc.list_value_length(built.column("tokens")).to_numpy()
    total = lengths.sum()
    doc_length = spec.training_data.doc_length
    for name, w in zip(["a", "b", "c"], weights, strict=True):
        mask = built.column("domain").to_numpy(zero_copy_only=False) == name
        assert abs(lengths[mask].sum() - w * total) <= doc_length
        concepts = set(built.column("concept").to_numpy()[mask].tolist())
        assert concepts <= set(next(d.concepts for d in domains if d.name == name))
    # no document drawn twice from a pool
    keys = list(
        zip(built.column("domain").to_pylist(), built.column("doc_id").to_pylist(), strict=True)
    )
    assert len(set(keys)) == len(keys)


def test_tiny_sweep_runs_writes_tables_and_report_and_resumes(tmp_path):
    import pandas as pd

    spec = load(mixtures_spec(target="b"))
    executor = InProcess()
    out = tmp_path / "sweep"
    result = mix_run.run(spec, out, executor=executor, progress=False)
    assert result["trained"] == (4 + 2) * len(spec.seeds)
    assert_plan_matches(spec, out)
    table = pd.read_parquet(out / "mixtures.parquet")
    assert sorted(table.role.unique()) == ["predicted", "proxy", "uniform"]
    assert len(table) == 6
    # realised shares are the mixture weights to within one document
    n_docs = dom.n_documents(spec)
    for name in ("a", "b", "c"):
        assert np.all(np.abs(table[f"share_{name}"] - table[f"w_{name}"]) <= 1 / n_docs)
    # the target is domain b's loss, a token-weighted mean of its concepts' losses
    assert np.allclose(table["target"], table["loss_b"])
    fits = read_json(out / "mixtures.json")
    assert set(fits["regressions"]) == {"linear", "trees"}  # 4 points: too few for the law
    assert sum(fits["chosen"]["weights"].values()) == pytest.approx(1.0)
    summary = read_json(out / "report" / "summary.json")
    assert summary["kind"] == "mixtures"
    predicted = table[table.role == "predicted"]["target"].mean()
    assert summary["realised_loss"] == pytest.approx(predicted)
    assert summary["predicted_loss"] == pytest.approx(fits["chosen"]["predicted_loss"])
    html = (out / "report" / "index.html").read_text()
    assert "id='realised-loss'" in html and "figure-mixtures-cv" in html

    again = mix_run.run(spec, out, executor=executor, progress=False, report=False)
    assert again["trained"] == 0
    assert pd.read_parquet(out / "mixtures.parquet").equals(table)
