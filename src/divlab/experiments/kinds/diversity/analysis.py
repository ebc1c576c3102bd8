"""The numbers behind plots A-E: per-condition tables, correlations and effect sizes.

Two levels of correlation are reported for plots A, B and D:

* ``runs``: one point per training run (condition x seed). This is what the plots show and
  what the headline quotes, but the seeds of one condition share its diversity and
  alignment, so its p-value treats repeated x values as independent and is optimistic.
* ``conditions``: one point per condition (the mean over its seeds): fewer points, the
  conservative check.

Plots C and E relate two properties of the data, which do not vary over seeds, so they are
computed over conditions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from divlab.experiments.kinds.diversity.load import ExperimentTables, has_values, metric
from divlab.report import stats

CONDITION_COLUMNS = [
    "plan",
    "k",
    "k_added",
    "n_concepts",
    "base_condition",
    "diversity",
    "diversity_ci_low",
    "diversity_ci_high",
    "alignment",
    "alignment_ci_low",
    "alignment_ci_high",
    "energy_distance",
    "energy_distance_ci_low",
    "energy_distance_ci_high",
    "gt_n_concepts",
    "gt_effective_concepts",
    "gt_hellinger",
    "noise_floor",
]


@dataclass
class Analysis:
    tables: ExperimentTables
    metrics: list[str]  # the requested metrics that have values
    conditions: pd.DataFrame  # one row per condition, in display order
    correlations: pd.DataFrame
    effects: pd.DataFrame
    gains: dict[tuple[str, str], pd.DataFrame]  # plot D / G points per (plot, metric)
    skipped: list[str] = field(default_factory=list)  # plain-words notes

    @property
    def results(self) -> pd.DataFrame:
        return self.tables.results

    def correlation(self, plot: str, y: str, level: str) -> dict | None:
        rows = self.correlations[
            (self.correlations["plot"] == plot)
            & (self.correlations["y"] == y)
            & (self.correlations["level"] == level)
        ]
        return None if rows.empty else rows.iloc[0].to_dict()


def analyse(tables: ExperimentTables, n_boot: int = 2000) -> Analysis:
    results = tables.results
    skipped = []
    metrics = []
    for name in tables.metrics:
        if has_values(results, name):
            metrics.append(name)
        else:
            skipped.append(
                f"{metric(name).short} ({name}) has no values in this experiment, "
                "so its plots and statistics are left out."
            )
    conditions = condition_table(results)
    rows: list[dict] = []
    has_diversity = has_values(results, "diversity")
    has_alignment = has_values(results, "alignment")
    if not has_diversity:
        skipped.append("No Task2Vec diversity was measured: plots A, C and E are left out.")
    if not has_alignment:
        skipped.append("No alignment was measured: plots B, C and D are left out.")
    for name in metrics:
        for plot, x in [("A", "diversity"), ("B", "alignment"), ("F", "energy_distance")]:
            if has_values(results, x):
                rows += _two_levels(results, plot, x, name, n_boot)
    if has_diversity and has_alignment:
        rows.append(
            _row(
                "C",
                "diversity",
                "alignment",
                "conditions",
                conditions.diversity,
                conditions.alignment,
                n_boot,
            )
        )
    gains = {}
    for plot, measure in GAINED.items():
        if not has_values(results, measure):
            continue
        for name in metrics:
            points = gained(results, name, measure)
            if not points.empty:
                gains[(plot, name)] = points
                column = f"gained_{measure}"
                rows += _two_levels(points, plot, column, "gained_metric", n_boot, name)
        if plot == "D" and metrics and not gains:
            skipped.append(
                "Plots D and G are left out: no runs of plan 'added' with a base condition "
                "in the table."
            )
    if has_diversity:
        rows += _ground_truth_rows(conditions, n_boot, skipped)
    return Analysis(
        tables=tables,
        metrics=metrics,
        conditions=conditions,
        correlations=_none_for_nan(
            _by_plot(pd.DataFrame(rows, columns=CORRELATION_COLUMNS)), "reason"
        ),
        effects=_none_for_nan(effect_table(results, conditions, metrics), "reason"),
        gains=gains,
        skipped=skipped,
    )


def _by_plot(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("plot", kind="stable").reset_index(drop=True)


def _none_for_nan(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Text columns hold None, not NaN, where empty (NaN is truthy)."""
    table[column] = table[column].astype(object).where(table[column].notna(), None)
    return table


def condition_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per condition: its properties (first row; they repeat over seeds) and
    its number of seeds, sorted by number of concepts, added concepts, then name."""
    columns = [c for c in CONDITION_COLUMNS if c in results.columns]
    grouped = results.groupby("condition", sort=False)
    table = grouped[columns].first() if columns else pd.DataFrame(index=grouped.size().index)
    table["n_seeds"] = grouped["seed"].nunique()
    table = table.reset_index()
    keys = [c for c in ["n_concepts", "k_added"] if c in table.columns] + ["condition"]
    return table.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


GAINED = {"D": "alignment", "G": "energy_distance"}  # plot: the measure whose gain it shows


def gained(results: pd.DataFrame, name: str, measure: str = "alignment") -> pd.DataFrame:
    """Plot D (G) points: for each run of plan "added" whose ``base_condition`` is another
    condition of the table, ``gained_<measure>`` = measure(condition) - measure(base)
    (align1 for D; the energy distance to D_eval for G, where moving closer is negative)
    and gained metric = this run's metric - the mean of the base condition's seeds."""
    gain = f"gained_{measure}"
    columns = ["condition", "seed", "base_condition", gain, "gained_metric"]
    if not {"plan", "base_condition", measure} <= set(results.columns):
        return pd.DataFrame(columns=columns)
    present = set(results.condition)
    added = results[
        (results.plan == "added")
        & results.base_condition.notna()
        & (results.base_condition != results.condition)
        & results.base_condition.isin(present)
    ]
    if added.empty:
        return pd.DataFrame(columns=columns)
    by_condition = results.groupby("condition")
    base_measure = by_condition[measure].mean()
    base_metric = by_condition[name].mean()
    out = pd.DataFrame(
        {
            "condition": added.condition.to_numpy(),
            "seed": added.seed.to_numpy(),
            "base_condition": added.base_condition.to_numpy(),
            gain: (
                added[measure].to_numpy(float)
                - base_measure.loc[added.base_condition].to_numpy(float)
            ),
            "gained_metric": (
                added[name].to_numpy(float) - base_metric.loc[added.base_condition].to_numpy(float)
            ),
        }
    )
    return out.dropna(subset=[gain, "gained_metric"]).reset_index(drop=True)


CORRELATION_COLUMNS = [
    "plot",
    "x",
    "y",
    "level",
    "n",
    "pearson_r",
    "pearson_ci_low",
    "pearson_ci_high",
    "pearson_p",
    "spearman_rho",
    "spearman_ci_low",
    "spearman_ci_high",
    "spearman_p",
    "slope",
    "intercept",
    "reason",
]


def _row(plot: str, x: str, y: str, level: str, xs, ys, n_boot: int) -> dict:
    """One row of the correlation table: ``stats.correlation`` and ``stats.fit_line``."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    corr = stats.correlation(xs, ys, n_boot=n_boot)
    corr.pop("n_boot_used")
    return {"plot": plot, "x": x, "y": y, "level": level, **corr, **stats.fit_line(xs, ys)}


def _two_levels(table, plot, x, y, n_boot, y_name=None) -> list[dict]:
    """The correlation over runs and over condition means."""
    means = table.groupby("condition")[[x, y]].mean(numeric_only=True)
    return [
        _row(plot, x, y_name or y, level, t[x], t[y], n_boot)
        for level, t in [("runs", table), ("conditions", means)]
    ]


def log2_axis(values) -> bool:
    """Plot E's rule: ground-truth diversity goes on a log2 axis if it spans more than 4x."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    return len(v) > 1 and v.max() / v.min() > 4


def _ground_truth_rows(conditions, n_boot, skipped) -> list[dict]:
    rows = []
    for column in ["gt_effective_concepts", "gt_hellinger"]:
        if not has_values(conditions, column):
            skipped.append(f"Plot E: no ground truth {column} (e.g. real text), panel left out.")
            continue
        x, values = column, conditions[column].to_numpy(float)
        if log2_axis(values):
            x, values = f"log2({column})", np.log2(np.where(values > 0, values, np.nan))
        rows.append(_row("E", x, "diversity", "conditions", values, conditions.diversity, n_boot))
    return rows


def effect_table(results: pd.DataFrame, conditions: pd.DataFrame, metrics: list[str]):
    """For each metric, the effect (:func:`stats.effect_size`) of going from the
    lowest-diversity condition to the highest (by number of concepts if no diversity)."""
    x = "diversity" if has_values(conditions, "diversity") else "n_concepts"
    columns = [
        "metric",
        "x",
        "low_condition",
        "high_condition",
        "low_x",
        "high_x",
        "low_mean",
        "high_mean",
        "difference",
        "hedges_g",
        "welch_p",
        "n_a",
        "n_b",
        "reason",
    ]
    if not has_values(conditions, x) or conditions[x].nunique() < 2:
        return pd.DataFrame(columns=columns)
    ranked = conditions.dropna(subset=[x]).sort_values(x, kind="stable")
    low, high = ranked.iloc[0], ranked.iloc[-1]
    rows = []
    for name in metrics:
        a = results.loc[results.condition == low.condition, name].to_numpy(float)
        b = results.loc[results.condition == high.condition, name].to_numpy(float)
        rows.append(
            {
                "metric": name,
                "x": x,
                "low_condition": low.condition,
                "high_condition": high.condition,
                "low_x": float(low[x]),
                "high_x": float(high[x]),
                "low_mean": float(np.nanmean(a)) if np.isfinite(a).any() else np.nan,
                "high_mean": float(np.nanmean(b)) if np.isfinite(b).any() else np.nan,
                **_supported_effect(a, b),
            }
        )
    return pd.DataFrame(rows, columns=columns)


MIN_EFFECT_SEEDS = 3


def _supported_effect(a, b) -> dict:
    """``stats.effect_size``, withheld (NaN, with the reason) below ``MIN_EFFECT_SEEDS``
    seeds per arm: two seeds give a spread of one degree of freedom, and a standardised
    difference over it can be anything (-48 was printed once)."""
    effect = stats.effect_size(a, b)
    n = min(np.isfinite(a).sum(), np.isfinite(b).sum())
    if n < MIN_EFFECT_SEEDS and not effect.get("reason"):
        effect.update(
            hedges_g=np.nan,
            welch_p=np.nan,
            reason=f"withheld: {n} seeds per arm cannot estimate the spread "
            f"(an effect size needs >= {MIN_EFFECT_SEEDS})",
        )
    return effect
