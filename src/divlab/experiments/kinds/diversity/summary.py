"""The report's words: a plain-language summary of the statistics, and summary.json.

The summary says what the numbers support and what they do not: the sample is small, the
per-run p-values are optimistic, several properties of the data move together, and the
diversity coefficient may not rise above its noise floor.
"""

from __future__ import annotations

import math

import numpy as np

from divlab.experiments.kinds.diversity.analysis import Analysis
from divlab.experiments.kinds.diversity.load import has_values, metric
from divlab.report import stats
from divlab.report.formatting import fixed, number, p_value, pearson_text, spearman_text
from divlab.report.page import Number

Paragraph = list  # of str and Number


def headline_id(name: str) -> str:
    return f"headline-spearman-{name}"


def summary_paragraphs(analysis: Analysis) -> list[Paragraph]:
    """The design, then (after the per-metric table, :func:`metric_rows`) the alignment,
    confounds, noise floor, gains and caveats."""
    paragraphs = [_design(analysis)]
    extra = [_alignment(analysis), _confounds(analysis), _noise_floor(analysis), _gains(analysis)]
    for paragraph in extra:
        if paragraph:
            paragraphs.append(paragraph)
    paragraphs.append(_caveats(analysis))
    return paragraphs


def _plural(n, word: str) -> str:
    return word if str(n) == "1" else f"{word}s"


def _differences(analysis: Analysis) -> list[str]:
    """Recorded properties other than data that differ between runs (should be none)."""
    results = analysis.results
    columns = ["model", "parameters", "tokens"]
    return [c for c in columns if c in results.columns and results[c].nunique(dropna=True) > 1]


def _design(analysis: Analysis) -> Paragraph:
    results = analysis.results
    n_conditions, n_runs = len(analysis.conditions), len(results)
    seeds = results.groupby("condition").seed.nunique()
    seeds_text = str(seeds.iloc[0]) if seeds.nunique() == 1 else f"{seeds.min()}-{seeds.max()}"
    parts: Paragraph = [
        f"{analysis.tables.name}: ",
        Number(str(n_conditions), "n-conditions"),
        f" {_plural(n_conditions, 'condition')} x ",
        Number(seeds_text, "n-seeds"),
        f" {_plural(seeds_text, 'seed')} (",
        Number(str(n_runs), "n-runs"),
        f" training {_plural(n_runs, 'run')}).",
    ]
    tokens = results["tokens"].dropna().unique() if "tokens" in results.columns else []
    if len(tokens) == 1:
        parts.append(f" Every run trained on the same budget of {int(tokens[0]):,} tokens.")
    differences = _differences(analysis)
    if differences:
        parts.append(
            f" Runs differ in {', '.join(differences)}, not only in their data: differences "
            "between conditions mix data with compute or architecture."
        )
    return parts


def _direction(name: str, rho: float) -> str:
    """E.g. "higher diversity went with lower eval loss (better)"."""
    info = metric(name)
    higher = rho > 0
    verdict = ""
    if info.lower_is_better is not None:
        better = higher != info.lower_is_better
        verdict = " (better)" if better else " (worse)"
    return f"higher diversity went with {'higher' if higher else 'lower'} {info.short}{verdict}"


METRIC_HEADER = [
    "metric",
    "direction over runs",
    "Spearman over runs [95% CI]",
    "sign established",
    "Pearson r [95% CI]",
    "Spearman over condition means",
    "lowest -> highest condition",
    "mean metric",
    "Hedges' g",
    "Welch p (or why no effect size)",
]


def metric_rows(analysis: Analysis) -> list[list]:
    """One row per performance metric: Task2Vec diversity's correlation with it over runs
    (the headline, under element id ``headline-spearman-<metric>``) and over condition
    means, and the effect from the lowest- to the highest-diversity condition (Hedges' g
    only with the seeds to support it; the reason when withheld)."""
    rows = []
    for name in analysis.metrics:
        runs = analysis.correlation("A", name, "runs")
        if runs is None:
            continue
        short = metric(name).short
        if runs["reason"]:
            rows.append([short, f"no correlation: {runs['reason']}", *[""] * 8])
            continue
        low, high = runs["spearman_ci_low"], runs["spearman_ci_high"]
        unsettled = math.isfinite(low) and low <= 0 <= high
        conditions = analysis.correlation("A", name, "conditions")
        by_condition = (
            spearman_text(conditions)
            if conditions is not None and not conditions["reason"] and conditions["n"] < runs["n"]
            else ""
        )
        row = [
            short,
            f"{_direction(name, runs['spearman_rho'])} ({runs['n']} runs)",
            Number(spearman_text(runs), headline_id(name)),
            "no: the CI includes 0" if unsettled else "yes",
            pearson_text(runs),
            by_condition,
        ]
        rows.append(row + _effect_cells(analysis, name))
    return rows


def _effect_cells(analysis: Analysis, name: str) -> list:
    effect = analysis.effects[analysis.effects.metric == name]
    if effect.empty:
        return ["", "", "", ""]
    e = effect.iloc[0]
    means = f"{number(e.low_mean)} -> {number(e.high_mean)} (difference {number(e.difference)})"
    span = f"{e.low_condition} -> {e.high_condition}"
    if e.x != "diversity":
        span += " (fewest -> most concepts)"
    if e.reason:
        return [span, means, "withheld", str(e.reason)]
    g = Number(fixed(e.hedges_g), f"effect-g-{name}")
    return [span, means, g, f"{p_value(e.welch_p)} ({e.n_a} vs {e.n_b} seeds)"]


def _conditions_rho(analysis: Analysis, x: str, y: str) -> float:
    table = analysis.conditions
    if not (has_values(table, x) and has_values(table, y)):
        return float("nan")
    return stats.correlation(table[x], table[y], n_boot=0)["spearman_rho"]


def _confounds(analysis: Analysis) -> Paragraph | None:
    if not (analysis.correlations["plot"] == "A").any() or len(analysis.conditions) < 3:
        return None
    if _differences(analysis):
        text = (
            "Because the runs differ in more than their data, a correlation here cannot be "
            "read as an effect of the data alone. "
        )
    else:
        text = (
            "The conditions differ only in their training data (the runner requires the same "
            "architecture, optimiser, schedule and token budget unless the spec allows "
            "otherwise), so a correlation here is consistent with a causal effect of the "
            "data. "
        )
    together = []
    rho_concepts = _conditions_rho(analysis, "diversity", "n_concepts")
    if math.isfinite(rho_concepts) and abs(rho_concepts) >= 0.7:
        together.append(f"the number of concepts (Spearman rho = {fixed(rho_concepts)})")
    rho_alignment = _conditions_rho(analysis, "diversity", "alignment")
    if math.isfinite(rho_alignment) and abs(rho_alignment) >= 0.7:
        together.append(f"alignment with the eval set (plot C, rho = {fixed(rho_alignment)})")
    if together:
        text += (
            "But across conditions the diversity coefficient moves together with "
            + " and with ".join(together)
            + ", so this design cannot say which of these properties of the data is "
            "responsible: the statistics support 'these data sets trained better models', "
            "not 'diversity caused it'."
        )
    else:
        text += (
            "Diversity is not strongly tied to the number of concepts or to alignment here, "
            "but other properties of the data sets may still move with it."
        )
    return [text]


def noise_floor_status(analysis: Analysis) -> dict:
    """Which conditions' diversity CIs reach the noise floor, and whether the lowest- and
    highest-diversity conditions' CIs overlap."""
    table, results = analysis.conditions, analysis.results
    floor = (
        float(results.noise_floor.dropna().iloc[0]) if has_values(results, "noise_floor") else None
    )
    status = {"noise_floor": floor, "at_noise_floor": [], "extremes_overlap": None}
    if not has_values(table, "diversity"):
        return status
    ranked = table.dropna(subset=["diversity"]).sort_values("diversity", kind="stable")
    low = ranked.get("diversity_ci_low", ranked.diversity).fillna(ranked.diversity)
    high = ranked.get("diversity_ci_high", ranked.diversity).fillna(ranked.diversity)
    if floor is not None:
        status["at_noise_floor"] = [str(c) for c in ranked.condition[low.to_numpy() <= floor]]
    if len(ranked) > 1:
        status["extremes_overlap"] = bool(low.iloc[-1] <= high.iloc[0])
    return status


def _noise_floor(analysis: Analysis) -> Paragraph | None:
    if not has_values(analysis.results, "diversity"):
        return None
    status = noise_floor_status(analysis)
    n = len(analysis.conditions)
    parts = []
    if status["noise_floor"] is None:
        parts.append(
            "No noise floor was recorded, so it is unknown whether the differences in "
            "diversity exceed the estimator's own noise."
        )
    else:
        floor = number(status["noise_floor"])
        at_floor = status["at_noise_floor"]
        if at_floor:
            parts.append(
                f"{len(at_floor)} of {n} conditions ({', '.join(at_floor)}) have a Task2Vec "
                f"diversity whose 95% CI reaches the noise floor ({floor}, the coefficient of "
                "a 1-concept set under the same settings): for those the coefficient did "
                "not separate the data from a single concept."
            )
        else:
            parts.append(
                f"Every condition's Task2Vec diversity CI lies above the noise floor ({floor}, "
                "the coefficient of a 1-concept set under the same settings)."
            )
    if status["extremes_overlap"]:
        parts.append(
            " The diversity CIs of the lowest- and highest-diversity conditions overlap: "
            "the coefficient did not separate even the extremes."
        )
    return ["".join(parts)]


def _per_metric(analysis: Analysis, plot: str) -> str:
    sentences = []
    for name in analysis.metrics:
        corr = analysis.correlation(plot, name, "runs")
        if corr is not None and not corr["reason"]:
            sentences.append(f"{metric(name).short}: Spearman {spearman_text(corr)}")
    return "; ".join(sentences)


def _alignment(analysis: Analysis) -> Paragraph | None:
    text = _per_metric(analysis, "B")
    return [f"Alignment with the eval set (plot B), over runs: {text}."] if text else None


def _gains(analysis: Analysis) -> Paragraph | None:
    text, energy = _per_metric(analysis, "D"), _per_metric(analysis, "G")
    if not text and not energy:
        return None
    parts = "Concepts added from outside the eval set, against the change from the base "
    parts += "condition, over runs: "
    if text:
        parts += f"gained align1 (plot D): {text}. "
    if energy:
        parts += (
            f"Gained energy distance to D_eval (plot G, not scored lower for the added "
            f"set's own spread): {energy}."
        )
    return [parts.strip()]


def _caveats(analysis: Analysis) -> Paragraph:
    n_conditions = len(analysis.conditions)
    n_tests = int(analysis.correlations["spearman_rho"].notna().sum())
    text = (
        f"With {n_conditions} {_plural(n_conditions, 'condition')} the intervals are wide; "
        "read the CIs rather than the p-values."
    )
    if analysis.results.groupby("condition").seed.nunique().max() > 1:
        text += (
            " Seeds of one condition share its diversity and alignment, so the per-run "
            "p-values treat repeated x values as independent points and are optimistic; the "
            "across-condition numbers are the conservative check."
        )
    if n_tests:
        text += (
            " The bootstrap CIs resample points and are themselves rough at this n. "
            f"{n_tests} {_plural(n_tests, 'correlation')} are reported without correction "
            "for multiple comparisons."
        )
    return [text]


# ---- summary.json --------------------------------------------------------------------------


def summary_json(analysis: Analysis) -> dict:
    """Headline numbers: for each metric, diversity vs metric over runs (Spearman and
    Pearson with CIs), the same over condition means, and the effect size."""
    results = analysis.results
    metrics = {}
    for name in analysis.metrics:
        runs = analysis.correlation("A", name, "runs")
        if runs is None:
            continue
        conditions = analysis.correlation("A", name, "conditions") or {}
        effect = analysis.effects[analysis.effects.metric == name]
        metrics[name] = {
            "x": "diversity",
            "level": "runs",
            "n": runs["n"],
            "spearman_rho": runs["spearman_rho"],
            "spearman_p": runs["spearman_p"],
            "spearman_ci": [runs["spearman_ci_low"], runs["spearman_ci_high"]],
            "pearson_r": runs["pearson_r"],
            "pearson_p": runs["pearson_p"],
            "pearson_ci": [runs["pearson_ci_low"], runs["pearson_ci_high"]],
            "headline": spearman_text(runs),
            "reason": runs["reason"],
            "across_conditions": {
                k: conditions.get(k) for k in ["n", "spearman_rho", "spearman_p", "reason"]
            },
            "effect_size": effect.iloc[0].to_dict() if not effect.empty else None,
        }
    return _json_safe(
        {
            "experiment": analysis.tables.name,
            "n_conditions": len(analysis.conditions),
            "n_seeds": int(results.seed.nunique()),
            "n_runs": len(results),
            **noise_floor_status(analysis),
            "metrics": metrics,
            "skipped": analysis.skipped + analysis.tables.notes,
        }
    )


def _json_safe(obj):
    """NaN and infinities become null (JSON has no NaN); numpy scalars become Python."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
