"""Judging a measure: decision accuracy, partial Spearman, two clusters, the table, the verdict."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import silhouette_score

from divlab.errors import DataError
from divlab.report.judge import (
    TABLE_COLUMNS,
    decision_accuracy,
    measures_table,
    partial_spearman,
    spearman_ci,
    two_clusters,
    verdict,
)
from divlab.report.stats import correlation


def make_runs(performance, seeds=3, noise=0.01, seed=0, **measures) -> pd.DataFrame:
    """One row per (condition, seed): ``loss`` = the condition's performance + Gaussian
    noise, ``accuracy`` = -loss, and each per-condition measure repeated on its rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for c, value in enumerate(performance):
        for s in range(seeds):
            loss = value + rng.normal(0, noise)
            row = {"condition": f"c{c:03d}", "seed": s, "loss": loss, "accuracy": -loss}
            rows.append(row | {name: values[c] for name, values in measures.items()})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- decision accuracy


def test_a_planted_perfect_predictor_scores_one_and_its_reverse_zero():
    diversity = np.arange(8.0)
    runs = make_runs(10 - diversity, diversity=diversity, reverse=-diversity)
    for metric, higher_is_better in [("loss", False), ("accuracy", True)]:
        perfect = decision_accuracy(runs, "diversity", metric, higher_is_better)
        assert perfect["accuracy"] == 1.0 and perfect["ci"] == [1.0, 1.0]
        assert perfect["pairs"] == perfect["pairs_total"] == 28
        assert perfect["noise"] == "seed_se" and perfect["chance"] == 0.5
        # exact over 8! orderings: only the identity and its reverse are as extreme
        assert perfect["p_chance"] == pytest.approx(2 / math.factorial(8))
        assert decision_accuracy(runs, "reverse", metric, higher_is_better)["accuracy"] == 0.0
    # the wrong direction for the metric flips the score
    assert decision_accuracy(runs, "diversity", "loss", True)["accuracy"] == 0.0


def test_with_every_pair_counted_it_is_one_plus_kendalls_tau_over_two():
    rng = np.random.default_rng(3)
    performance, measure = rng.normal(size=30), rng.normal(size=30)
    runs = make_runs(performance, seeds=1, measure=measure)
    result = decision_accuracy(runs, "measure", "loss", higher_is_better=False, n_boot=200)
    assert result["noise"] == "unknown"  # one seed: the noise cannot be estimated
    assert result["pairs"] == result["pairs_total"] == 435 and result["excluded_in_noise"] == 0
    means = runs.groupby("condition")["loss"].mean().to_numpy()
    tau = sps.kendalltau(measure, -means).statistic  # -loss: larger is better
    assert result["accuracy"] == pytest.approx((1 + tau) / 2, abs=1e-12)
    assert result["ci"][0] <= result["accuracy"] <= result["ci"][1]


def test_a_random_predictor_is_at_chance_over_many_conditions():
    n = 200
    random_measure = np.random.default_rng(11).normal(size=n)
    runs = make_runs(np.arange(n, dtype=float), seeds=2, noise=0.01, random=random_measure)
    result = decision_accuracy(runs, "random", "loss", higher_is_better=False)
    assert result["pairs"] == n * (n - 1) // 2  # conditions 1 apart, seed noise 0.01
    # accuracy = (1 + tau) / 2 and pairs share conditions, so the 99 % band comes from
    # Kendall's null variance 2 (2n + 5) / (9 n (n - 1)), not from a binomial over pairs
    half_width = 2.576 * math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) / 2
    assert abs(result["accuracy"] - 0.5) < half_width
    assert result["ci"][0] < 0.5 < result["ci"][1]
    assert result["p_chance"] > 0.01


def test_pairs_inside_the_seed_noise_are_not_counted():
    # a and b overlap (means 1.00 and 1.05, se 0.115 each); c is far from both
    runs = pd.DataFrame(
        {
            "condition": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "seed": [0, 1, 2] * 3,
            "loss": [1.0, 1.2, 0.8, 1.05, 1.25, 0.85, 3.0, 3.1, 2.9],
            # orders a-b the wrong way (b above a, but a has the lower loss), a-c, b-c right
            "diversity": [2.0] * 3 + [3.0] * 3 + [1.0] * 3,
        }
    )
    result = decision_accuracy(runs, "diversity", "loss", higher_is_better=False)
    assert result["pairs_total"] == 3 and result["pairs"] == 2
    assert result["excluded_in_noise"] == 1
    assert result["accuracy"] == 1.0
    # without the noise filter the a-b pair counts, and it is discordant
    unfiltered = decision_accuracy(runs, "diversity", "loss", higher_is_better=False, z=0)
    assert unfiltered["pairs"] == 3 and unfiltered["accuracy"] == pytest.approx(2 / 3)


def test_ties_in_the_measure_count_one_half_and_degenerate_input_gives_a_reason():
    runs = make_runs([1.0, 2.0, 3.0], seeds=2, measure=[5.0, 5.0, 6.0])
    # pairs (0,1): tie -> 0.5; (0,2) and (1,2): condition 2 has the higher measure and the
    # worse loss -> 0
    assert decision_accuracy(runs, "measure", "loss", False)["accuracy"] == pytest.approx(1 / 6)
    one = decision_accuracy(make_runs([1.0], measure=[1.0]), "measure", "loss", False)
    assert math.isnan(one["accuracy"]) and "condition" in one["reason"]
    same = decision_accuracy(
        make_runs([1.0, 1.0], noise=0.5, measure=[1.0, 2.0]), "measure", "loss", False
    )
    assert same["pairs"] == 0 and math.isnan(same["accuracy"]) and same["reason"]
    with pytest.raises(DataError, match="no column"):
        decision_accuracy(runs, "vendi", "loss", False)


# ---------------------------------------------------------------- correlations


def test_spearman_ci_is_the_spearman_half_of_the_stats_correlation():
    rng = np.random.default_rng(5)
    x = rng.normal(size=15)
    y = x + rng.normal(size=15)
    c, s = correlation(x, y, n_boot=500, seed=4), spearman_ci(x, y, n_boot=500, seed=4)
    assert s["rho"] == c["spearman_rho"] and s["p"] == c["spearman_p"] and s["n"] == 15
    assert s["ci"] == [c["spearman_ci_low"], c["spearman_ci_high"]]


def test_partial_spearman_matches_the_closed_forms_on_a_small_example():
    x = np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0])
    y = np.array([2.0, 7.0, 1.0, 8.0, 2.5, 8.5, 1.8, 2.8])
    z = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    w = np.array([4.0, 1.0, 3.0, 1.0, 5.0, 9.0, 2.0, 6.0])  # a tie: average ranks
    # one control: (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)) on Spearman rhos
    r_xy, r_xz, r_yz = (sps.spearmanr(a, b).statistic for a, b in [(x, y), (x, z), (y, z)])
    expected = (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    result = partial_spearman(x, y, [z], n_boot=300, seed=1)
    assert result["rho"] == pytest.approx(expected, abs=1e-12)
    dof = 8 - 2 - 1
    t = expected * math.sqrt(dof / (1 - expected**2))
    assert result["p"] == pytest.approx(2 * sps.t.sf(abs(t), dof), rel=1e-9)
    assert result["ci"][0] <= result["ci"][1] and result["n_boot_used"] > 0
    # two controls: from the inverse of the ranks' correlation matrix (the precision P),
    # rho = -P_xy / sqrt(P_xx P_yy)
    ranks = np.column_stack([sps.rankdata(v) for v in (x, y, z, w)])
    precision = np.linalg.inv(np.corrcoef(ranks, rowvar=False))
    expected_2 = -precision[0, 1] / math.sqrt(precision[0, 0] * precision[1, 1])
    assert partial_spearman(x, y, [z, w], n_boot=0)["rho"] == pytest.approx(expected_2, abs=1e-12)
    # no control: plain Spearman
    assert partial_spearman(x, y, [], n_boot=0)["rho"] == pytest.approx(r_xy, abs=1e-12)


def test_partial_spearman_ignores_an_independent_control_and_removes_a_mediator():
    rng = np.random.default_rng(7)
    n = 500
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    noise_control = rng.normal(size=n)
    plain = sps.spearmanr(x, y).statistic
    independent = partial_spearman(x, y, [noise_control], n_boot=200, seed=0)
    assert independent["rho"] == pytest.approx(plain, abs=0.02)
    # y depends on x only through the control
    control = rng.normal(size=n)
    x_mediated = control + 0.3 * rng.normal(size=n)
    y_mediated = 2 * control + 0.6 * rng.normal(size=n)
    assert sps.spearmanr(x_mediated, y_mediated).statistic > 0.8
    mediated = partial_spearman(x_mediated, y_mediated, [control], n_boot=200, seed=0)
    assert abs(mediated["rho"]) < 0.1
    assert mediated["ci"][0] < 0 < mediated["ci"][1]


def test_partial_spearman_is_nan_with_a_reason_when_it_cannot_be_computed():
    x, y = np.arange(4.0), np.array([1.0, 3.0, 2.0, 4.0])
    too_few = partial_spearman(x, y, [np.array([1.0, 0.0, 1.0, 0.0]), np.arange(4.0) ** 2])
    assert (
        math.isnan(too_few["rho"]) and "only 4 condition(s) for 2 control(s)" in too_few["reason"]
    )
    x, y = np.arange(6.0), np.array([1.0, 3.0, 2.0, 4.0, 6.0, 5.0])
    constant = partial_spearman(x, y, [np.ones(6)])
    assert math.isnan(constant["rho"]) and "constant" in constant["reason"]
    itself = partial_spearman(x, y, [x**3])  # the control has the same ranks as x
    assert math.isnan(itself["rho"]) and "determined by the controls" in itself["reason"]


# ---------------------------------------------------------------- two clusters


def blobs(seed: int, per_group: int = 8):
    """Two groups far apart in x; y differs between the groups, is noise inside them."""
    rng = np.random.default_rng(seed)
    group = np.repeat([0.0, 1.0], per_group)
    x = 1e9 + 1e8 * group + rng.normal(0, 3e6, size=2 * per_group)  # token-like scale
    y = 5 * group + rng.normal(0, 1.0, size=2 * per_group)
    return group, x, y


def test_two_separated_blobs_without_a_relation_inside_are_two_clusters():
    group, x, y = blobs(seed=4)
    result = two_clusters(x, y)
    assert result["two_clusters"] and result["reason"] is None
    assert result["sizes"] == [8, 8] and result["rho_overall"] > 0.7
    assert abs(result["rho_within"]) < 0.3 and result["between_share"] > 0.99
    high = x > result["cut"]
    assert (high == group.astype(bool)).all()
    assert result["silhouette"] == pytest.approx(silhouette_score(x[:, None], high), rel=1e-9)
    # across draws: only a significant within-group relation (chance: 5 %) clears it
    flagged = [two_clusters(*blobs(seed=s)[1:])["two_clusters"] for s in range(100)]
    assert np.mean(flagged) >= 0.9
    # a measure with two levels (two values of k): silhouette 1, y constant inside
    levels = two_clusters(np.repeat([2.0, 8.0], 4), np.repeat([3.0, 1.0], 4))
    assert levels["two_clusters"] and levels["silhouette"] == 1.0


def test_a_clean_monotone_line_is_not_two_clusters_even_with_a_gap():
    x = np.arange(20.0)
    line = two_clusters(x, 3 * x + 1)
    assert not line["two_clusters"] and line["silhouette"] < 0.7
    x_gap = np.concatenate([np.arange(6.0), 20 + np.arange(6.0)])
    gap = two_clusters(x_gap, np.exp(x_gap / 10))
    assert gap["silhouette"] > 0.7 and gap["rho_within"] == pytest.approx(1.0)
    assert not gap["two_clusters"] and "inside the groups" in gap["reason"]
    outlier = two_clusters(np.array([0.0, 0.1, 0.2, 0.3, 50.0]), np.arange(5.0))
    assert not outlier["two_clusters"] and outlier["sizes"] == [4, 1]


# ---------------------------------------------------------------- table and verdict


@pytest.fixture(scope="module")
def judged_runs():
    """10 conditions: ``diversity`` orders them perfectly, ``k`` (two levels) half-way,
    ``random`` not at all; ``truth`` is a ground-truth column."""
    rng = np.random.default_rng(9)
    diversity = np.arange(10.0)
    runs = make_runs(
        5 - 0.3 * diversity,
        seeds=3,
        noise=0.05,
        diversity=diversity,
        k=(diversity >= 5).astype(float),
        random=rng.normal(size=10),
        truth=diversity**2,
        tokens=rng.normal(size=10),
    )
    return runs


def test_measures_table_has_one_row_per_statistic_and_equals_the_functions(judged_runs, tmp_path):
    metrics = {"loss": False, "accuracy": True}
    measures = ["diversity", "random", "k"]
    table = measures_table(
        judged_runs, measures, metrics, controls=("k", "tokens"), ground_truth=("truth",),
        seed=3, n_boot=300,
    )  # fmt: skip
    # per measure and metric: spearman, partial | k, | tokens, | k+tokens, decision accuracy;
    # per measure: one ground-truth Spearman
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == len(measures) * (len(metrics) * 5 + 1)
    per_condition = judged_runs.groupby("condition").mean(numeric_only=True)
    x, y = per_condition["random"], per_condition["loss"]

    def row(measure, statistic, target, control=""):
        match = table[
            (table["measure"] == measure)
            & (table["statistic"] == statistic)
            & (table["target"] == target)
            & (table["control"] == control)
        ]
        assert len(match) == 1
        return match.iloc[0]

    spearman = spearman_ci(x, y, n_boot=300, seed=3)
    got = row("random", "spearman", "loss")
    assert [got["value"], got["ci_low"], got["ci_high"], got["p"]] == [
        spearman["rho"], *spearman["ci"], spearman["p"]
    ]  # fmt: skip
    assert bool(got["two_clusters"]) == two_clusters(x, y)["two_clusters"]
    partial = partial_spearman(
        x, y, [per_condition["k"], per_condition["tokens"]], n_boot=300, seed=3
    )
    got = row("random", "partial_spearman", "loss", "k+tokens")
    assert [got["value"], got["ci_low"], got["ci_high"]] == [partial["rho"], *partial["ci"]]
    accuracy = decision_accuracy(judged_runs, "random", "accuracy", True, seed=3, n_boot=300)
    got = row("random", "decision_accuracy", "accuracy")
    assert [got["value"], got["ci_low"], got["ci_high"], got["p"]] == [
        accuracy["accuracy"], *accuracy["ci"], accuracy["p_chance"]
    ]  # fmt: skip
    assert got["pairs"] == accuracy["pairs"] and got["noise"] == "seed_se"
    truth = spearman_ci(per_condition["diversity"], per_condition["truth"], n_boot=300, seed=3)
    got = row("diversity", "ground_truth_spearman", "truth")
    assert got["value"] == truth["rho"] == pytest.approx(1.0)
    assert pd.isna(got["higher_is_better"])
    # a measure controlled for itself has no partial correlation
    itself = row("k", "partial_spearman", "loss", "k")
    assert math.isnan(itself["value"]) and itself["reason"] == "the measure is itself a control"
    assert row("diversity", "decision_accuracy", "loss")["value"] == 1.0
    # tidy: pivots, and survives a Parquet round trip
    wide = table.pivot_table(index="measure", columns=["statistic", "target"], values="value")
    assert wide.loc["diversity", ("decision_accuracy", "loss")] == 1.0
    table.to_parquet(tmp_path / "table.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "table.parquet"), table)


def test_the_verdict_of_a_real_table_names_the_planted_measure(judged_runs):
    table = measures_table(
        judged_runs, ["diversity", "random", "k"], {"loss": False}, controls=("k",), n_boot=300
    )
    sentences = verdict(table, rivals=["k"])
    assert any(s.startswith("On loss, diversity beats the rivals") for s in sentences)
    random_sentence = next(s for s in sentences if s.startswith("On loss, random"))
    assert "does not beat the rivals" in random_sentence
    assert not any("no measure beats" in s for s in sentences)


def accuracy_table(rows) -> pd.DataFrame:
    """A decision-accuracy table from (measure, value, ci_low, ci_high, p) tuples."""
    return pd.DataFrame(
        [
            {"measure": m, "statistic": "decision_accuracy", "target": "loss", "control": "",
             "value": v, "ci_low": lo, "ci_high": hi, "p": p, "pairs": 45}
            for m, v, lo, hi, p in rows
        ]
    )  # fmt: skip


def test_the_verdict_says_no_measure_beats_the_rivals_when_a_rival_is_best():
    table = accuracy_table(
        [
            ("diversity", 0.75, 0.65, 0.85, 0.001),
            ("vendi_ngram", 0.55, 0.45, 0.65, 0.3),
            ("k", 0.90, 0.80, 0.97, 0.001),
            ("tokens", 0.60, 0.50, 0.70, 0.1),
        ]
    )
    sentences = verdict(table, rivals=["k", "tokens"])
    assert "On loss, no measure beats the rivals." in sentences
    assert not any("beats the rivals:" in s for s in sentences)
    diversity = next(s for s in sentences if s.startswith("On loss, diversity"))
    assert "better than chance" in diversity and "best rival (k, 0.90)" in diversity
    vendi = next(s for s in sentences if s.startswith("On loss, vendi_ngram"))
    assert "not distinguishable from chance" in vendi


def test_the_verdict_never_claims_an_effect_whose_ci_or_p_value_includes_chance():
    table = accuracy_table(
        [
            ("diversity", 0.95, 0.90, 1.00, 0.001),  # beats the rival (0.70)
            ("wide", 0.80, 0.45, 0.95, 0.02),  # CI includes chance
            ("few", 1.00, 1.00, 1.00, 0.33),  # 3 conditions: CI [1, 1] but p = 1/3
            ("reversed", 0.04, 0.00, 0.08, 0.001),  # lower measure => better, strongly
            ("k", 0.30, 0.20, 0.40, 0.01),  # the rival, read in reverse: 0.70
        ]
    )
    sentences = verdict(table, rivals=["k"])
    by_measure = {s.split(",")[1].split()[0]: s for s in sentences if "best rival is" not in s}
    assert "beats the rivals:" in by_measure["diversity"] and "(k, 0.70)" in by_measure["diversity"]
    assert "not distinguishable from chance" in by_measure["wide"]
    assert "not distinguishable from chance" in by_measure["few"]
    assert "beats the rivals:" in by_measure["reversed"]
    assert '"lower reversed => better loss" orders 0.96' in by_measure["reversed"]
    assert not any("no measure beats" in s for s in sentences)
    # without rivals the bar is chance alone
    alone = verdict(accuracy_table([("wide", 0.80, 0.45, 0.95, 0.02)]), rivals=[])
    assert alone[-1] == "On loss, no measure beats chance."
