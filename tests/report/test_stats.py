"""The report's statistics against closed forms and scipy/numpy."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from divlab.report.stats import condition_means, correlation, effect_size, fit_line, mean_ci


def test_perfect_linear_relation_has_correlation_one_and_a_tight_ci():
    x = np.arange(10.0)
    c = correlation(x, 2 * x + 1)
    assert c["n"] == 10 and c["reason"] is None
    assert c["pearson_r"] == pytest.approx(1.0)
    assert c["spearman_rho"] == pytest.approx(1.0)
    assert c["pearson_ci_low"] == pytest.approx(1.0) and c["pearson_ci_high"] == pytest.approx(1.0)
    assert c["spearman_ci_low"] == pytest.approx(1.0)


def test_bootstrap_skips_constant_resamples():
    # 3 points: a resample repeats one point with probability 3 / 27
    c = correlation([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], n_boot=2000)
    assert 2000 * 0.85 < c["n_boot_used"] < 2000 * 0.95
    assert -1 <= c["spearman_ci_low"] <= c["spearman_ci_high"] <= 1


def test_monotone_non_linear_relation_is_rank_perfect_but_not_linear():
    x = np.arange(12.0)
    c = correlation(x, np.exp(x))
    assert c["spearman_rho"] == pytest.approx(1.0)
    assert c["pearson_r"] < 0.9
    assert c["pearson_ci_low"] < c["pearson_r"] < c["pearson_ci_high"]


def test_pearson_and_spearman_match_numpy_and_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    y = 0.5 * x + rng.normal(size=30)
    c = correlation(x, y)
    assert c["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert c["pearson_p"] == pytest.approx(sps.pearsonr(x, y).pvalue, rel=1e-9)
    assert c["spearman_rho"] == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert c["spearman_p"] == pytest.approx(sps.spearmanr(x, y).pvalue, rel=1e-9)
    assert c["pearson_ci_low"] < c["pearson_r"] < c["pearson_ci_high"]
    assert c == correlation(x, y)  # the bootstrap is seeded


def test_small_samples_use_the_exact_spearman_p_value():
    # a perfect ranking of 6 points: 2 of the 720 pairings are as extreme (rho = +-1)
    x = np.arange(6.0)
    assert correlation(x, x**3)["spearman_p"] == pytest.approx(2 / 720)


def test_degenerate_input_gives_nans_and_a_reason_never_an_error():
    for x, y in [([1.0, 2.0], [3.0, 4.0]), ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]), ([], [])]:
        c = correlation(x, y)
        assert math.isnan(c["pearson_r"]) and math.isnan(c["spearman_ci_low"])
        assert c["reason"]
    c = correlation([1.0, np.nan, 2.0, 3.0, np.inf], [1.0, 5.0, 2.0, 4.0, 0.0])
    assert c["n"] == 3 and c["pearson_r"] == pytest.approx(sps.pearsonr([1, 2, 3], [1, 2, 4])[0])


def test_hedges_g_matches_a_hand_computation():
    a, b = [1.0, 2.0, 3.0], [4.0, 6.0, 8.0]
    e = effect_size(a, b)
    # means 2 and 6; variances 1 and 4; pooled SD sqrt((2*1 + 2*4) / 4); J = 1 - 3/(4*4 - 1)
    d = 4 / math.sqrt(2.5)
    assert e["difference"] == pytest.approx(4.0)
    assert e["hedges_g"] == pytest.approx(0.8 * d)
    # Welch: t = 4 / sqrt(1/3 + 4/3), Welch-Satterthwaite dof
    t = 4 / math.sqrt(5 / 3)
    dof = (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)
    assert e["welch_p"] == pytest.approx(2 * sps.t.sf(t, dof))
    assert (e["n_a"], e["n_b"], e["reason"]) == (3, 3, None)


def test_effect_size_needs_two_seeds_a_side():
    e = effect_size([1.0], [2.0, 3.0])
    assert e["difference"] == pytest.approx(1.5)
    assert math.isnan(e["hedges_g"]) and math.isnan(e["welch_p"]) and e["reason"]


def test_condition_ci_matches_scipy_t_interval():
    df = pd.DataFrame(
        {
            "condition": ["a", "a", "a", "b", "b", "c"],
            "diversity": [0.1, 0.1, 0.1, 0.3, 0.3, 0.2],
            "loss": [3.0, 3.5, 2.9, 2.0, 2.2, 2.5],
        }
    )
    table = condition_means(df, "diversity", "loss")
    assert list(table.condition) == ["a", "c", "b"]  # sorted by x
    for condition in ["a", "b"]:
        values = df.loc[df.condition == condition, "loss"].to_numpy()
        row = table[table.condition == condition].iloc[0]
        low, high = sps.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values))
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high))
        assert row["mean"] == pytest.approx(values.mean())
        assert row["std"] == pytest.approx(values.std(ddof=1))
        assert row.n == len(values)
    single = table[table.condition == "c"].iloc[0]
    assert single.n == 1 and math.isnan(single.ci_low) and math.isnan(single["std"])
    assert mean_ci([])["n"] == 0


def test_fit_line_recovers_an_exact_line():
    x = np.array([0.0, 1.0, 2.0, 5.0])
    assert fit_line(x, 3 * x - 2) == pytest.approx({"slope": 3.0, "intercept": -2.0})
    assert math.isnan(fit_line([1.0, 1.0], [2.0, 3.0])["slope"])
