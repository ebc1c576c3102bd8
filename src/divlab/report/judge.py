"""Judging a diversity measure: does it track performance better than its rivals?

Statistics over *conditions* (data sets), computed from a runs table with one row per
(condition, seed): a ``condition`` column, performance metrics (one value per seed) and
per-condition measures (the same value on every row of a condition; the mean is used).

* :func:`decision_accuracy`: DataDecide's pairwise decision accuracy (Magnusson et al.,
  AI2 2025), with pairs inside the seed noise left out, a bootstrap CI over conditions and
  a permutation p-value against chance.
* :func:`spearman_ci`, :func:`partial_spearman`: rank correlation over conditions, plain and
  controlling for rival explanations (number of concepts, eval overlap, tokens).
* :func:`two_clusters`: does a correlation rest on two groups of conditions?
* :func:`measures_table` puts them side by side (one tidy table); :func:`verdict` reads it
  into plain sentences that never claim an effect whose CI includes chance.

Pure functions like :mod:`divlab.report.stats`: a statistic that cannot be computed is NaN
with a ``reason``; only malformed input (a missing column) raises :class:`DataError`.
Bootstrap and permutation draws come from :func:`divlab.seeds.rng` keyed by the function's
name, so two measures judged with the same ``seed`` see the same resamples of conditions
(a paired comparison).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from divlab.errors import DataError
from divlab.report.stats import _percentile_ci, _rowwise_pearson, correlation
from divlab.seeds import rng

NAN = float("nan")
CHANCE = 0.5
NOISE_Z = 1.96  # a pair counts when its gap exceeds 1.96 standard errors (two-sided 95 %)
EXACT_PERMUTATION_MAX_CONDITIONS = 8  # 8! = 40,320 orderings: exact p-value in well under 1 s
SILHOUETTE_MIN = 0.7  # Kaufman & Rousseeuw: above 0.7 "a strong structure has been found"
WITHIN_RHO_MAX = 0.3  # a within-cluster |Spearman| below this is "weak"
MIN_CLUSTER_SIZE = 2  # a one-point "cluster" is an outlier, not a group
SIGNIFICANCE = 0.05  # the level of the verdict's permutation test and two_clusters' test

TABLE_COLUMNS = [
    "measure",
    "statistic",
    "target",
    "control",
    "higher_is_better",
    "value",
    "ci_low",
    "ci_high",
    "p",
    "n",
    "pairs",
    "pairs_total",
    "excluded_in_noise",
    "noise",
    "two_clusters",
    "reason",
]


# ---------------------------------------------------------------- decision accuracy


def decision_accuracy(
    runs: pd.DataFrame,
    measure: str,
    metric: str,
    higher_is_better: bool,
    seed: int = 0,
    n_boot: int = 2000,
    z: float = NOISE_Z,
) -> dict:
    """Pairwise decision accuracy of ``measure`` for ``metric`` (DataDecide, AI2 2025).

    Direction: the accuracy is that of the rule "the condition with the HIGHER measure
    performs BETTER" (larger ``metric`` when ``higher_is_better``, smaller otherwise). The
    reversed rule ("higher measure => worse") scores exactly ``1 - accuracy``, with CI
    ``[1 - ci_high, 1 - ci_low]``; chance is 0.5 either way.

    * Per condition: the measure (mean of its rows), the mean of the metric over its seeds
      and its standard error se = sd (ddof=1) / sqrt(n_seeds).
    * A pair (a, b) is *counted* when the performance gap is larger than the seed noise:
      ``|mean_a - mean_b| > z * sqrt(se_a^2 + se_b^2)`` (z = 1.96 by default). When any
      condition has fewer than 2 seeds the noise is unknown (``noise="unknown"``): every
      pair whose means differ is counted.
    * A counted pair scores 1 when the measure orders it as performance does, 0 when it
      orders it the other way, 0.5 when the measures tie; ``accuracy`` is the mean score.
      With all pairs counted and no ties it is (1 + Kendall's tau) / 2.
    * CI: percentile bootstrap over *conditions* (the unit the claim is about: a measure
      should order data sets it has not seen). Each resample draws the conditions with
      replacement; a condition drawn twice pairs with every other drawn condition once per
      copy, copies of one condition are no pair. Seeds stay as observed: seed noise enters
      through the noise filter, and resampling 2-3 seeds would make se = 0 in many
      resamples. Resamples without a counted pair are skipped.
    * ``p_chance``: two-sided permutation p-value of the accuracy against chance, shuffling
      the measure over conditions (exact over all n! orderings for n <= 8, else ``n_boot``
      random shuffles). The percentile CI alone is over-confident with few conditions: a
      perfect ordering of 3 conditions has CI [1, 1] but p = 1/3.

    Returns ``{"accuracy", "ci": [low, high], "p_chance", "pairs" (counted),
    "pairs_total", "excluded_in_noise", "chance": 0.5, "noise": "seed_se" | "unknown",
    "z", "conditions", "n_boot_used", "reason"}``.
    """
    _require_columns(runs, ["condition", measure, metric], "decision_accuracy")
    frame = pd.DataFrame(
        {
            "condition": runs["condition"],
            "measure": _numeric(runs[measure]),
            "metric": _numeric(runs[metric]),
        }
    )
    frame = frame[np.isfinite(frame["metric"])]
    grouped = frame.groupby("condition", sort=True)
    per_condition = pd.DataFrame(
        {
            "measure": grouped["measure"].mean(),
            "mean": grouped["metric"].mean(),
            "sd": grouped["metric"].std(ddof=1),
            "seeds": grouped["metric"].count(),
        }
    )
    per_condition = per_condition[np.isfinite(per_condition["measure"])]
    n = len(per_condition)
    noise_known = n > 0 and bool((per_condition["seeds"] >= 2).all())
    out = {
        "accuracy": NAN,
        "ci": [NAN, NAN],
        "p_chance": NAN,
        "pairs": 0,
        "pairs_total": n * (n - 1) // 2,
        "excluded_in_noise": 0,
        "chance": CHANCE,
        "noise": "seed_se" if noise_known else "unknown",
        "z": float(z),
        "conditions": n,
        "n_boot_used": 0,
        "reason": None,
    }
    if n < 2:
        out["reason"] = f"only {n} condition(s) with a finite {measure} and {metric}; need 2"
        return out

    goodness = per_condition["mean"].to_numpy(float) * (1.0 if higher_is_better else -1.0)
    measure_values = per_condition["measure"].to_numpy(float)
    gap = goodness[:, None] - goodness[None, :]
    if noise_known:
        se = per_condition["sd"].to_numpy(float) / np.sqrt(per_condition["seeds"].to_numpy(float))
        threshold = z * np.sqrt(se[:, None] ** 2 + se[None, :] ** 2)
    else:
        threshold = np.zeros_like(gap)
    counted = np.abs(gap) > threshold
    np.fill_diagonal(counted, False)
    upper = np.triu(np.ones((n, n), bool), k=1)
    out["pairs"] = int((counted & upper).sum())
    out["excluded_in_noise"] = out["pairs_total"] - out["pairs"]
    if out["pairs"] == 0:
        out["reason"] = (
            "no pair of conditions differs in performance by more than the seed noise"
            if noise_known
            else "every condition has the same mean performance"
        )
        return out

    # score[i, j] for a counted pair: 1 concordant, 0 discordant, 0.5 tied measures
    performance_order = np.sign(gap)
    score = (1 + performance_order * np.sign(measure_values[:, None] - measure_values[None, :])) / 2
    weight = counted.astype(float)
    out["accuracy"] = float((score * weight)[upper].sum() / weight[upper].sum())

    pair_i, pair_j = np.nonzero(counted & upper)
    out["p_chance"] = _permutation_p(
        measure_values, pair_i, pair_j, performance_order[pair_i, pair_j], out["accuracy"],
        n_boot, seed,
    )  # fmt: skip
    if n_boot > 0:
        draws = rng(seed, "decision_accuracy").multinomial(n, np.full(n, 1.0 / n), size=n_boot)
        draws = draws.astype(float)
        # a pair of distinct conditions drawn w_i and w_j times counts w_i * w_j times; the
        # zero diagonal of ``weight`` drops copies of one condition paired with each other
        numerator = ((draws @ (score * weight)) * draws).sum(axis=1)
        denominator = ((draws @ weight) * draws).sum(axis=1)
        valid = denominator > 0
        out["n_boot_used"] = int(valid.sum())
        if valid.any():
            out["ci"] = list(_percentile_ci(numerator[valid] / denominator[valid]))
    return out


def _permutation_p(measure_values, pair_i, pair_j, performance_sign, accuracy, n_boot, seed):
    """Two-sided p-value of ``accuracy`` under random assignment of the measure's values to
    conditions: P(|acc_perm - 0.5| >= |acc - 0.5|)."""
    n = len(measure_values)
    if n <= EXACT_PERMUTATION_MAX_CONDITIONS:
        orders = np.array(list(itertools.permutations(range(n))))
        exact = True
    elif n_boot > 0:
        base = np.tile(np.arange(n), (n_boot, 1))
        orders = rng(seed, "decision_accuracy", "permutation").permuted(base, axis=1)
        exact = False
    else:
        return NAN
    extreme = 0
    block = max(1, 2_000_000 // max(1, len(pair_i)))  # bound the memory of one block
    for start in range(0, len(orders), block):
        shuffled = measure_values[orders[start : start + block]]
        agree = performance_sign * np.sign(shuffled[:, pair_i] - shuffled[:, pair_j])
        accuracies = ((1 + agree) / 2).mean(axis=1)
        extreme += int((np.abs(accuracies - CHANCE) >= abs(accuracy - CHANCE) - 1e-12).sum())
    if exact:
        return extreme / len(orders)
    return (extreme + 1) / (len(orders) + 1)


# ---------------------------------------------------------------- correlations


def spearman_ci(x, y, n_boot: int = 2000, seed: int = 0) -> dict:
    """Spearman rho of paired values over conditions with a percentile bootstrap CI over
    conditions: :func:`divlab.report.stats.correlation`'s Spearman half, same conventions
    (non-finite pairs dropped, constant resamples skipped, exact p-value for n <= 8).

    Returns ``{"rho", "ci": [low, high], "p", "n", "n_boot_used", "reason"}``.
    """
    c = correlation(x, y, n_boot=n_boot, seed=seed)
    return {
        "rho": c["spearman_rho"],
        "ci": [c["spearman_ci_low"], c["spearman_ci_high"]],
        "p": c["spearman_p"],
        "n": c["n"],
        "n_boot_used": c["n_boot_used"],
        "reason": c["reason"],
    }


def partial_spearman(x, y, controls, n_boot: int = 2000, seed: int = 0) -> dict:
    """Spearman partial correlation of x and y controlling for ``controls``.

    Rank-transform x, y and every control (average ranks for ties); regress the ranks of x
    and of y on the controls' ranks by least squares with an intercept; rho is the Pearson
    correlation of the two residuals. With one control z it equals
    (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)) on Spearman rhos.

    * p: two-sided, t = rho sqrt(dof / (1 - rho^2)) with dof = n - 2 - n_controls.
    * CI: percentile bootstrap over conditions; each resample is ranked afresh; resamples
      with a constant column or a residual that vanishes are skipped.

    ``controls`` is a list of arrays as long as x (an empty list gives plain Spearman).
    Rows with a non-finite value anywhere are dropped. NaN with a ``reason`` when
    n <= n_controls + 2, a column is constant, or x or y is fully determined by the
    controls (e.g. x is itself a control).

    Returns ``{"rho", "ci": [low, high], "p", "n", "n_controls", "n_boot_used", "reason"}``.
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    control_columns = [np.asarray(c, float).ravel() for c in controls]
    for column in [y, *control_columns]:
        if column.shape != x.shape:
            raise DataError(
                f"partial_spearman: every column must have one value per condition "
                f"(x has {len(x)}, another has {len(column)})"
            )
    data = np.column_stack([x, y, *control_columns])  # n x (2 + k)
    data = data[np.isfinite(data).all(axis=1)]
    n, k = len(data), len(control_columns)
    out = {
        "rho": NAN,
        "ci": [NAN, NAN],
        "p": NAN,
        "n": n,
        "n_controls": k,
        "n_boot_used": 0,
        "reason": None,
    }
    if n <= k + 2:
        out["reason"] = (
            f"only {n} condition(s) for {k} control(s); a partial correlation needs more "
            f"than {k + 2}"
        )
        return out
    if (np.ptp(data, axis=0) == 0).any():
        out["reason"] = "a column (x, y or a control) is constant"
        return out

    rho = _partial_rank_correlation(data[None])[0]
    if not np.isfinite(rho):
        out["reason"] = "x or y is fully determined by the controls' ranks"
        return out
    dof = n - 2 - k
    out["rho"] = float(rho)
    if abs(rho) >= 1:
        out["p"] = 0.0
    else:
        t = rho * math.sqrt(dof / (1 - rho * rho))
        out["p"] = float(2 * sps.t.sf(abs(t), dof))
    if n_boot <= 0:
        return out
    index = rng(seed, "partial_spearman").integers(0, n, size=(n_boot, n))
    resamples = data[index]  # n_boot x n x (2 + k)
    resamples = resamples[(np.ptp(resamples, axis=1) > 0).all(axis=1)]
    boot = _partial_rank_correlation(resamples) if len(resamples) else np.array([])
    boot = boot[np.isfinite(boot)]
    out["n_boot_used"] = len(boot)
    if len(boot):
        out["ci"] = list(_percentile_ci(boot))
    return out


def _partial_rank_correlation(samples: np.ndarray) -> np.ndarray:
    """Partial Spearman rho of column 0 and column 1 given columns 2.. for each sample of a
    stack (samples x n x columns); NaN where a residual vanishes."""
    ranks = sps.rankdata(samples, axis=1)
    design = np.concatenate([np.ones_like(ranks[:, :, :1]), ranks[:, :, 2:]], axis=2)
    targets = ranks[:, :, :2]
    fitted = design @ (np.linalg.pinv(design) @ targets)
    residual = targets - fitted
    centred = targets - targets.mean(axis=1, keepdims=True)
    residual_ss = (residual**2).sum(axis=1)  # samples x 2
    vanished = (residual_ss <= 1e-10 * (centred**2).sum(axis=1)).any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a vanished residual: 0 / 0
        rho = _rowwise_pearson(residual[:, :, 0], residual[:, :, 1])
    return np.where(vanished, NAN, rho)


# ---------------------------------------------------------------- two clusters


def two_clusters(
    x,
    y,
    silhouette_min: float = SILHOUETTE_MIN,
    within_rho_max: float = WITHIN_RHO_MAX,
) -> dict:
    """Does the correlation of x and y rest on two groups of conditions?

    Rule (all three must hold for ``two_clusters`` = True):

    1. x splits into two groups: the best split of the sorted x into a low and a high group
       (exact 1-D k-means with k = 2: the cut that minimises the within-group sum of
       squares) has a mean silhouette >= ``silhouette_min`` (0.7, Kaufman & Rousseeuw's
       "strong structure"; evenly spaced x scores at most about 0.62).
    2. Each group has at least 2 conditions (a lone point is an outlier, not a group).
    3. Inside the groups x and y are weakly or inconsistently related: the within-group
       Spearman rho (the partial Spearman of x and y controlling for group membership, i.e.
       the pooled within-group rank correlation) is NaN (y constant within the groups, or
       too few points), or |rho_within| < ``within_rho_max`` (0.3), or its p-value is
       >= 0.05, or its sign is opposite to the overall rho's. The p-value clause matters
       with few conditions: from noise alone |rho_within| exceeds 0.3 in about a third of
       draws of 2 x 8 points; with it, two blobs without a relation inside are flagged in
       about 97 % of draws. So a within-group relation clears the correlation of the
       suspicion only when it is moderately strong, significant and of the same sign.

    Clusters are sought on x (the measure) alone: the case to catch is a measure that takes
    two levels of values (two values of k, two corpora families) whose overall correlation
    is one contrast between two groups. True says nothing about the size of the overall
    correlation: the report should mention it next to a correlation it shows.

    Returns ``{"two_clusters", "silhouette", "sizes": [low, high], "cut" (the midpoint
    between the groups), "between_share" (share of x's variance between the groups),
    "rho_overall", "rho_within", "p_within", "reason"}``.
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.shape != y.shape:
        raise DataError(f"two_clusters: x and y differ in length ({len(x)} vs {len(y)})")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out = {
        "two_clusters": False,
        "silhouette": NAN,
        "sizes": [0, 0],
        "cut": NAN,
        "between_share": NAN,
        "rho_overall": NAN,
        "rho_within": NAN,
        "p_within": NAN,
        "reason": None,
    }
    if len(x) < 2 * MIN_CLUSTER_SIZE or np.ptp(x) == 0:
        out["reason"] = "too few points or a constant x: no two groups to find"
        return out
    order = np.sort(x - x.mean())  # centred: the cumulative sums below then do not cancel
    n = len(order)
    # within-group sum of squares for every cut between distinct sorted values
    cumulative, cumulative_sq = np.cumsum(order), np.cumsum(order**2)
    sizes_low = np.arange(1, n)
    ss_low = cumulative_sq[:-1] - cumulative[:-1] ** 2 / sizes_low
    sum_high = cumulative[-1] - cumulative[:-1]
    ss_high = (cumulative_sq[-1] - cumulative_sq[:-1]) - sum_high**2 / (n - sizes_low)
    within_ss = np.where(order[1:] > order[:-1], ss_low + ss_high, np.inf)
    best = int(np.argmin(within_ss))
    cut = x.mean() + (order[best] + order[best + 1]) / 2
    high = x > cut
    total_ss = float(((x - x.mean()) ** 2).sum())
    out["cut"] = float(cut)
    out["sizes"] = [int((~high).sum()), int(high.sum())]
    out["between_share"] = float(1 - within_ss[best] / total_ss)
    out["silhouette"] = _silhouette_1d(x, high)
    overall = correlation(x, y, n_boot=0)["spearman_rho"]
    out["rho_overall"] = float(overall)
    within = partial_spearman(x, y, [high.astype(float)], n_boot=0)
    out["rho_within"], out["p_within"] = float(within["rho"]), float(within["p"])

    if out["silhouette"] < silhouette_min:
        out["reason"] = f"x does not split into two groups (silhouette {out['silhouette']:.2f})"
    elif min(out["sizes"]) < MIN_CLUSTER_SIZE:
        out["reason"] = "one group is a single point (an outlier, not a group)"
    elif not np.isfinite(overall):
        out["reason"] = "y is constant: there is no correlation to rest on anything"
    else:
        within_rho = out["rho_within"]
        weak = (
            not np.isfinite(within_rho)
            or abs(within_rho) < within_rho_max
            or out["p_within"] >= SIGNIFICANCE
            or np.sign(within_rho) != np.sign(overall)
        )
        out["two_clusters"] = bool(weak)
        if not weak:
            out["reason"] = (
                f"x and y are related inside the groups too (within-group rho {within_rho:.2f})"
            )
    return out


def _silhouette_1d(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (b - a) / max(a, b) of 1-D points in two groups; a point alone in
    its group scores 0 (Rousseeuw 1987, scikit-learn's convention)."""
    distance = np.abs(x[:, None] - x[None, :])
    same = labels[:, None] == labels[None, :]
    same_count = same.sum(axis=1) - 1
    a = np.where(same_count > 0, (distance * same).sum(axis=1) / np.maximum(same_count, 1), 0.0)
    b = (distance * ~same).sum(axis=1) / (~same).sum(axis=1)
    largest = np.maximum(a, b)
    s = np.where((same_count > 0) & (largest > 0), (b - a) / np.where(largest > 0, largest, 1), 0)
    return float(s.mean())


# ---------------------------------------------------------------- the table and the verdict


def measures_table(
    runs: pd.DataFrame,
    measures: list[str],
    metrics: dict[str, bool],
    controls=("k",),
    ground_truth=(),
    seed: int = 0,
    n_boot: int = 2000,
    z: float = NOISE_Z,
) -> pd.DataFrame:
    """Every measure against every metric, side by side, in one tidy table.

    ``metrics`` maps a metric column to ``higher_is_better`` (False for loss and gap, True
    for accuracy). Rival explanations (``k``, ``eval_overlap_jaccard2``, ``tokens``) are
    simply more measures. Correlations are over conditions, on per-condition means.

    One row per (measure, statistic, target, control); ``statistic`` is one of

    * ``"spearman"``: :func:`spearman_ci` of the measure and the metric's condition means
      (the sign is the raw one: negative for a measure that lowers a loss);
    * ``"partial_spearman"``: :func:`partial_spearman` controlling for ``control`` (one
      control, or all of them joined by ``"+"`` when there are several);
    * ``"decision_accuracy"``: :func:`decision_accuracy` ("higher measure => better");
    * ``"ground_truth_spearman"``: :func:`spearman_ci` of the measure and the ground-truth
      column ``target`` (no metric involved).

    Columns: ``measure, statistic, target`` (metric or ground-truth column), ``control``
    ("" when none), ``higher_is_better`` (the metric's; <NA> for ground truth), ``value``
    (rho or accuracy), ``ci_low, ci_high`` (95 % percentile bootstrap), ``p`` (the
    statistic's p-value; for decision accuracy the permutation p against chance), ``n``
    (conditions used), ``pairs, pairs_total, excluded_in_noise, noise`` (decision accuracy
    only, else <NA>), ``two_clusters`` (:func:`two_clusters` on spearman rows, else <NA>),
    ``reason`` (why a value is NaN, else None). Pivot with e.g.
    ``table.pivot_table(index="measure", columns=["statistic", "target", "control"],
    values="value")``. Every statistic uses ``seed`` as given, so the values equal the
    functions called directly with the same seed.
    """
    controls, ground_truth = list(controls), list(ground_truth)
    needed = ["condition", *measures, *metrics, *controls, *ground_truth]
    _require_columns(runs, needed, "measures_table")
    columns = list(dict.fromkeys([*measures, *metrics, *controls, *ground_truth]))
    numeric = runs[columns].apply(_numeric)
    per_condition = numeric.groupby(runs["condition"], sort=True).mean()

    rows = []
    for measure in measures:
        x = per_condition[measure].to_numpy(float)
        for metric, higher_is_better in metrics.items():
            y = per_condition[metric].to_numpy(float)
            base = {"measure": measure, "target": metric, "higher_is_better": higher_is_better}
            s = spearman_ci(x, y, n_boot=n_boot, seed=seed)
            rows.append(
                {**base, **_correlation_row("spearman", s, "")}
                | {"two_clusters": two_clusters(x, y)["two_clusters"]}
            )
            control_sets = [[c] for c in controls] + ([controls] if len(controls) > 1 else [])
            for control_set in control_sets:
                columns_z = [per_condition[c].to_numpy(float) for c in control_set]
                partial = partial_spearman(x, y, columns_z, n_boot=n_boot, seed=seed)
                if measure in control_set:  # a measure controlled for itself has no residual
                    partial.update(rho=NAN, ci=[NAN, NAN], p=NAN)
                    partial["reason"] = "the measure is itself a control"
                rows.append(
                    {**base, **_correlation_row("partial_spearman", partial, "+".join(control_set))}
                )
            d = decision_accuracy(runs, measure, metric, higher_is_better, seed, n_boot, z)
            rows.append(
                {
                    **base,
                    "statistic": "decision_accuracy",
                    "control": "",
                    "value": d["accuracy"],
                    "ci_low": d["ci"][0],
                    "ci_high": d["ci"][1],
                    "p": d["p_chance"],
                    "n": d["conditions"],
                    "pairs": d["pairs"],
                    "pairs_total": d["pairs_total"],
                    "excluded_in_noise": d["excluded_in_noise"],
                    "noise": d["noise"],
                    "reason": d["reason"],
                }
            )
        for truth in ground_truth:
            s = spearman_ci(x, per_condition[truth].to_numpy(float), n_boot=n_boot, seed=seed)
            rows.append(
                {"measure": measure, "target": truth, "higher_is_better": None}
                | _correlation_row("ground_truth_spearman", s, "")
            )
    table = pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)
    for column in ["pairs", "pairs_total", "excluded_in_noise", "n"]:
        table[column] = table[column].astype("Int64")
    for column in ["higher_is_better", "two_clusters"]:
        table[column] = table[column].astype("boolean")
    for column in ["value", "ci_low", "ci_high", "p"]:
        table[column] = table[column].astype(float)
    return table


def _correlation_row(statistic: str, result: dict, control: str) -> dict:
    return {
        "statistic": statistic,
        "control": control,
        "value": result["rho"],
        "ci_low": result["ci"][0],
        "ci_high": result["ci"][1],
        "p": result["p"],
        "n": result["n"],
        "reason": result["reason"],
    }


def verdict(table: pd.DataFrame, rivals: list[str]) -> list[str]:
    """Plain sentences saying, per metric, which measures beat the rivals on decision
    accuracy and which do not.

    Every measure is read in its stronger direction: "higher measure => better" scores
    the table's accuracy ``a`` with CI [lo, hi]; "lower measure => better" scores 1 - a
    with CI [1 - hi, 1 - lo]; the sentence names the direction. A measure *beats the
    rivals* when, in its direction, the CI's lower end lies above chance (0.5) AND above
    the best rival's point estimate (a rival also read in its stronger direction), and its
    permutation p-value against chance is below 0.05 (the percentile CI alone is
    over-confident with few conditions). A CI that reaches chance is reported as "not
    distinguishable from chance", never as an effect. When no measure beats the rivals
    the metric's sentences end with "no measure beats the rivals".
    """
    _require_columns(
        table, ["measure", "statistic", "target", "value", "ci_low", "ci_high"], "verdict"
    )
    rivals = list(rivals)
    accuracy = table[table["statistic"] == "decision_accuracy"]
    sentences: list[str] = []
    for metric in dict.fromkeys(accuracy["target"]):
        rows = accuracy[accuracy["target"] == metric]
        rival_rows = rows[rows["measure"].isin(rivals) & np.isfinite(rows["value"].astype(float))]
        best_rival, bar = None, NAN
        if len(rival_rows):
            strength = np.maximum(rival_rows["value"], 1 - rival_rows["value"]).astype(float)
            position = int(np.argmax(strength.to_numpy()))
            best_rival = rival_rows["measure"].iloc[position]
            bar = float(strength.iloc[position])
            sentences.append(
                f"On {metric}, the best rival is {best_rival}: "
                f"{_direction(rival_rows.iloc[position], metric)} orders {bar:.2f} of pairs "
                f"as performance does."
            )
        winners = []
        for _, row in rows[~rows["measure"].isin(rivals)].iterrows():
            sentence, beats = _judge_one(row, metric, best_rival, bar, table)
            sentences.append(sentence)
            if beats:
                winners.append(row["measure"])
        if not winners:
            against = "the rivals" if best_rival is not None else "chance"
            sentences.append(f"On {metric}, no measure beats {against}.")
    return sentences


def _judge_one(row, metric: str, best_rival, bar: float, table: pd.DataFrame):
    """One measure's sentence on one metric, and whether it beats the rivals."""
    measure = row["measure"]
    value, low, high = float(row["value"]), float(row["ci_low"]), float(row["ci_high"])
    if not np.isfinite(value):
        return f"On {metric}, {measure} cannot be judged: {row.get('reason')}.", False
    if value < CHANCE:  # read in its stronger direction
        value, low, high = 1 - value, 1 - high, 1 - low
    p = float(row["p"]) if "p" in row and pd.notna(row["p"]) else NAN
    pairs = row["pairs"] if "pairs" in row and pd.notna(row["pairs"]) else "?"
    p_text = f", p = {p:.3g}" if np.isfinite(p) else ""
    evidence = (
        f"{_direction(row, metric)} orders {value:.2f} of pairs as performance does "
        f"(95% CI {low:.2f}-{high:.2f}, {pairs} pairs{p_text})"
    )
    clusters = _rests_on_two_clusters(table, measure, metric)
    above_chance = np.isfinite(low) and low > CHANCE and not (np.isfinite(p) and p >= SIGNIFICANCE)
    if not above_chance:  # in its stronger direction, as everywhere, with the reason
        why = (
            "its CI reaches chance (0.5)"
            if not (np.isfinite(low) and low > CHANCE)
            else f"p = {p:.3g} against chance is not below {SIGNIFICANCE}"
        )
        return (
            f"On {metric}, {measure} does not beat the rivals: {evidence}, which is not "
            f"distinguishable from chance: {why}.{clusters}",
            False,
        )
    if best_rival is None:
        return f"On {metric}, {measure} beats chance: {evidence}.{clusters}", True
    if low > bar:
        return (
            f"On {metric}, {measure} beats the rivals: {evidence}, above the best rival "
            f"({best_rival}, {bar:.2f}) and chance (0.5).{clusters}",
            True,
        )
    return (
        f"On {metric}, {measure} does not beat the rivals: {evidence}, better than "
        f"chance, but the CI reaches below the best rival ({best_rival}, {bar:.2f}).{clusters}",
        False,
    )


def _direction(row, metric: str) -> str:
    word = "higher" if float(row["value"]) >= CHANCE else "lower"
    return f'the rule "{word} {row["measure"]} => better {metric}"'


def _rests_on_two_clusters(table: pd.DataFrame, measure: str, metric: str) -> str:
    if "two_clusters" not in table:
        return ""
    flag = table.loc[
        (table["measure"] == measure)
        & (table["statistic"] == "spearman")
        & (table["target"] == metric),
        "two_clusters",
    ]
    if len(flag) and bool(flag.fillna(False).iloc[0]):
        return f" Its correlation with {metric} rests on two clusters of conditions."
    return ""


# ---------------------------------------------------------------- input checks


def _require_columns(frame: pd.DataFrame, columns, where: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: the table has no column(s) {missing}; it has {list(frame.columns)} "
            "(pass the names of existing columns, or controls=() when there is no 'k')"
        )


def _numeric(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column, errors="coerce").astype(float)
