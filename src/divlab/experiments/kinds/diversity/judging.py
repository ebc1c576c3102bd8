"""Which measure tracks performance: every diversity measure of the experiment beside the
rival explanations, judged on the runs (``divlab.report.judge``), with a verdict in words
and the figures that show it.

Rows are the measures (``measures.MEASURE_COLUMNS``) and the rivals
(``measures.RIVAL_COLUMNS``: number of concepts, eval overlap, size, ground-truth coverage
and typicality) that vary across the conditions; columns per performance metric: decision
accuracy (share of condition pairs, outside the seed noise, the measure orders as
performance does, with a bootstrap CI and a permutation p against chance), Spearman over
conditions with a CI, partial Spearman controlling for k and for eval overlap, and
Spearman with each ground-truth measure (GINC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from divlab.experiments.kinds.diversity.load import METRICS, has_values
from divlab.experiments.kinds.diversity.measures import MEASURE_COLUMNS, RIVAL_COLUMNS
from divlab.report import judge
from divlab.report.figures import FigureFile, save_figure

GROUND_TRUTH = {
    "gt_effective_distinct": "effective distinct concepts (GT)",
    "gt_mean_hellinger": "mean pairwise Hellinger (GT)",
}
# partial Spearman controls, where they vary: each alone, and all together
CONTROLS = ("k", "overlap_jaccard2", "coverage_distance", "typicality_distance")


@dataclass
class Judgement:
    table: pd.DataFrame  # judge.measures_table's long table
    verdict: list[str]
    measures: list[str]  # measure columns judged
    rivals: list[str]  # rival columns judged
    metrics: list[str]
    ground_truth: list[str]
    all_controls: str = ""  # the control label of the row controlling for every rival
    costs: dict = field(default_factory=dict)  # measure column -> median seconds per condition

    def label(self, column: str) -> str:
        return _label(column)


def _varies(results: pd.DataFrame, column: str) -> bool:
    if not has_values(results, column):
        return False
    return results.groupby("condition")[column].first().dropna().nunique() >= 2


def judge_measures(
    results: pd.DataFrame, metrics: list[str], seed: int = 0, n_boot: int = 1000
) -> Judgement | None:
    """The measures table of an experiment's runs; None with fewer than 3 conditions (no
    ordering of pairs to judge) or no measure and metric with values."""
    if results["condition"].nunique() < 3:
        return None
    measures = [c for c in MEASURE_COLUMNS if _varies(results, c)]
    rivals = [c for c in RIVAL_COLUMNS if _varies(results, c)]
    directions = {
        m: not METRICS[m].lower_is_better
        for m in metrics
        if m in METRICS and METRICS[m].lower_is_better is not None and has_values(results, m)
    }
    for column in results.columns:  # lm-evaluation-harness scores, where their sense is known
        higher = harness_direction(column)
        if higher is not None and has_values(results, column):
            directions[column] = higher
    ground_truth = [c for c in GROUND_TRUTH if _varies(results, c)]
    if not (measures and directions):
        return None
    controls = tuple(c for c in CONTROLS if c in rivals)
    table = judge.measures_table(
        results,
        measures + rivals,
        directions,
        controls=controls,
        ground_truth=tuple(ground_truth),
        seed=seed,
        n_boot=n_boot,
    )
    # the verdict speaks of measures and metrics by name; the table keeps the columns
    table.insert(1, "column", table["measure"])
    table["measure"] = [_label(c) for c in table["column"]]
    table["role"] = ["rival" if c in rivals else "measure" for c in table["column"]]
    named = table.assign(target=[metric_label(t) for t in table.target])
    verdict = judge.verdict(named, [_label(c) for c in rivals])
    per_condition = results.groupby("condition").first()
    costs = {
        m: float(per_condition[f"{m}_seconds"].median())
        for m in measures
        if f"{m}_seconds" in per_condition and per_condition[f"{m}_seconds"].notna().any()
    }
    return Judgement(
        table,
        verdict,
        measures,
        rivals,
        list(directions),
        ground_truth,
        "+".join(controls),
        costs,
    )


LOWER_IS_BETTER = ("perplexity", "bits_per_byte", "loss", "stderr")
HIGHER_IS_BETTER = ("acc", "exact_match", "f1", "bleu", "mcc")


def harness_direction(column: str) -> bool | None:
    """Whether a higher lm-eval score (``lm_eval_<task>_<metric>``) is better; None for a
    column that is not one or a metric of unknown sense (standard errors are left out)."""
    if not column.startswith("lm_eval_") or column.endswith("stderr"):
        return None
    if any(word in column for word in LOWER_IS_BETTER):
        return False
    if any(word in column for word in HIGHER_IS_BETTER):
        return True
    return None


def metric_label(metric: str) -> str:
    return METRICS[metric].short if metric in METRICS else metric


def _label(column: str) -> str:
    if column in MEASURE_COLUMNS:
        return MEASURE_COLUMNS[column][0]
    return RIVAL_COLUMNS.get(column) or GROUND_TRUTH.get(column) or column


def short_verdict(judgement: Judgement) -> list[str]:
    """Per metric: the best rival, then the measures that beat it, or that none does."""
    return [
        line
        for line in judgement.verdict
        if "the best rival is" in line
        or "no measure beats" in line
        or (" beats the rivals" in line and "does not beat" not in line)
    ]


def summary_rows(judgement: Judgement) -> tuple[list[str], list[list[str]]]:
    """The report's table: one row per measure and rival, per metric its decision
    accuracy [CI] (pairs counted) and Spearman [CI], then partial Spearman given k."""
    t = judgement.table
    header = ["measure", "role", "cost (s per condition)"]
    for m in judgement.metrics:
        short = metric_label(m)
        header += [f"{short}: decision accuracy [95% CI] (pairs)", f"{short}: Spearman [95% CI]"]
        if "k" in judgement.rivals:
            header.append(f"{short}: partial Spearman given k")
        if "+" in judgement.all_controls:
            header.append(f"{short}: partial Spearman given every rival")
    rows = []
    for column in judgement.measures + judgement.rivals:
        role = "rival" if column in judgement.rivals else "measure"
        cells = [judgement.label(column), role, _cost(judgement, column)]
        for m in judgement.metrics:
            accuracy = _diverse_way(column, _one(t, column, "decision_accuracy", m))
            rho = _one(t, column, "spearman", m)
            pairs = "" if accuracy is None else f" ({_int(accuracy['pairs'])})"
            cells += [_ci(accuracy) + pairs, _ci(rho)]
            if "k" in judgement.rivals:
                cells.append(_ci(_one(t, column, "partial_spearman", m, control="k")))
            if "+" in judgement.all_controls:
                given = judgement.all_controls
                cells.append(_ci(_one(t, column, "partial_spearman", m, control=given)))
        rows.append(cells)
    return header, rows


def _one(table, column, statistic, target, control="") -> dict | None:
    rows = table[
        (table["column"] == column)
        & (table["statistic"] == statistic)
        & (table["target"] == target)
        & (table["control"] == control)
    ]
    return None if rows.empty else rows.iloc[0].to_dict()


def _diverse_way(column: str, row: dict | None) -> dict | None:
    """Decision accuracy read as "more diverse => better": for a measure where a higher
    value means LESS diverse (compression ratio, Self-BLEU), 1 - the accuracy of "higher
    => better", the CI mirrored. Rivals stay "higher => better"."""
    if row is None or column not in MEASURE_COLUMNS or MEASURE_COLUMNS[column][1]:
        return row
    return {
        **row,
        "value": 1 - row["value"],
        "ci_low": 1 - row["ci_high"],
        "ci_high": 1 - row["ci_low"],
    }


def _cost(judgement: Judgement, column: str) -> str:
    """Median seconds the measure took per condition (measures only)."""
    seconds = judgement.costs.get(column)
    return "" if seconds is None or not np.isfinite(seconds) else f"{seconds:.2f}"


def _int(value) -> str:
    return "-" if value is None or not np.isfinite(value) else str(int(value))


def _ci(row: dict | None) -> str:
    if row is None or not np.isfinite(row["value"]):
        return "n/a"
    low, high = row["ci_low"], row["ci_high"]
    interval = "" if not np.isfinite(low) else f" [{low:.2f}, {high:.2f}]"
    return f"{row['value']:.2f}{interval}"


def figures(judgement: Judgement, results: pd.DataFrame, folder: Path) -> list[FigureFile]:
    """Decision accuracy with CIs; each measure against ground truth; each measure
    against the first metric."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [
        save_figure(
            _accuracy_figure(judgement),
            folder,
            "M_decision_accuracy",
            "Which measure orders the conditions as performance does",
            "Decision accuracy over condition pairs outside the seed noise, 95% "
            "bootstrap CIs over conditions; 0.5 is chance. Rivals in grey.",
            True,
        )
    ]
    conditions = results.groupby("condition").first()
    if judgement.ground_truth:
        out.append(
            save_figure(
                _grid(judgement, conditions, judgement.ground_truth[0]),
                folder,
                "M_measures_vs_ground_truth",
                "Measures against ground-truth diversity",
                "One point per condition.",
                True,
            )
        )
    metric = judgement.metrics[0]
    means = results.groupby("condition")[metric].mean()
    conditions = conditions.assign(**{metric: means})
    out.append(
        save_figure(
            _grid(judgement, conditions, metric),
            folder,
            "M_measures_vs_performance",
            f"Measures against {metric_label(metric)}",
            "One point per condition (mean over seeds).",
            True,
        )
    )
    return out


def _accuracy_figure(judgement: Judgement) -> Figure:
    rows = judgement.measures + judgement.rivals
    figure = Figure(
        figsize=(3.2 * len(judgement.metrics) + 1.5, 0.3 * len(rows) + 1.2), layout="constrained"
    )
    axes = figure.subplots(1, len(judgement.metrics), squeeze=False, sharey=True)[0]
    y = np.arange(len(rows))[::-1]
    for ax, metric in zip(axes, judgement.metrics, strict=True):
        for position, column in zip(y, rows, strict=True):
            row = _diverse_way(column, _one(judgement.table, column, "decision_accuracy", metric))
            if row is None or not np.isfinite(row["value"]):
                continue
            colour = "grey" if column in judgement.rivals else "tab:blue"
            low, high = row["ci_low"], row["ci_high"]
            err = None
            if np.isfinite(low):
                err = [[row["value"] - low], [high - row["value"]]]
            ax.errorbar(row["value"], position, xerr=err, fmt="o", color=colour, capsize=2)
        ax.axvline(0.5, color="black", lw=0.8, ls="--")
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(metric_label(metric))
        ax.set_xlabel("decision accuracy")
    axes[0].set_yticks(y, [judgement.label(c) for c in rows])
    return figure


def _grid(judgement: Judgement, conditions: pd.DataFrame, y: str) -> Figure:
    columns = judgement.measures
    n = len(columns)
    width = min(n, 4)
    height = int(np.ceil(n / width))
    figure = Figure(figsize=(2.6 * width, 2.3 * height), layout="constrained")
    axes = figure.subplots(height, width, squeeze=False).ravel()
    label = GROUND_TRUTH.get(y) or (METRICS[y].label if y in METRICS else y)
    for ax, column in zip(axes, columns, strict=False):
        ax.scatter(conditions[column], conditions[y], s=14)
        ax.set_xlabel(judgement.label(column), fontsize=7)
        ax.set_ylabel(label, fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure
