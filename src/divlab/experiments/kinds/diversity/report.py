"""The diversity experiment's report: summary in words, key numbers, correlations,
effect sizes, plots A-E, spec and provenance; ``stats.parquet`` (the correlation table)
beside the page. Every piece of text that comes from data (condition names, spec values,
versions) goes through ``html.escape``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

from divlab.experiments.kinds.diversity import judging
from divlab.experiments.kinds.diversity.analysis import Analysis, analyse
from divlab.experiments.kinds.diversity.judging import judge_measures
from divlab.experiments.kinds.diversity.load import has_values, metric, read_experiment
from divlab.experiments.kinds.diversity.plots import make_figures
from divlab.experiments.kinds.diversity.summary import (
    METRIC_HEADER,
    Paragraph,
    metric_rows,
    summary_json,
    summary_paragraphs,
)
from divlab.io import write_table
from divlab.report import stats
from divlab.report.formatting import fixed, interval, number, p_value, with_ci
from divlab.report.page import Number, dump, note, table, value_text
from divlab.report.page import figures as figures_html


def sections(folder: Path, report_dir: Path) -> tuple[list[tuple[str, str, str]], dict]:
    """The report's sections (title, html, id) and headline numbers; figures go to
    ``report_dir/figures`` and the correlation table to ``report_dir/stats.parquet``."""
    analysis = analyse(read_experiment(folder))
    figures = make_figures(analysis, report_dir / "figures")
    write_table(analysis.correlations, report_dir / "stats.parquet")
    judgement = judge_measures(analysis.results, analysis.metrics)
    answer = []
    if judgement is not None:
        write_table(judgement.table, report_dir / "measures.parquet")
        shown = judging.figures(judgement, analysis.results, report_dir / "figures")
        answer = [("Which measure tracks performance", _answer(judgement, shown), "answer")]
    return [
        *answer,
        ("Summary", _summary(analysis), "summary"),
        ("Key numbers", _key_numbers(analysis), "key-numbers"),
        ("Correlations", _correlations(analysis), "correlations"),
        ("Effect sizes", _effects(analysis), "effect-sizes"),
        ("Figures", figures_html(figures), "figures"),
        ("Spec", _spec(analysis), "spec"),
        ("Provenance", _provenance(analysis), "provenance"),
    ], summary_json(analysis)


def _answer(judgement, shown) -> str:
    """The verdict in words, the decision-accuracy figure, the measures table."""
    verdict = "".join(f"<li>{escape(line)}</li>" for line in judging.short_verdict(judgement))
    every = "".join(f"<li>{escape(line)}</li>" for line in judgement.verdict)
    details = f"<details><summary>Every measure, in words</summary><ul>{every}</ul></details>"
    header, rows = judging.summary_rows(judgement)
    caption = note(
        "Decision accuracy: the share of pairs of conditions, among those whose mean "
        "performance differs by more than the seed noise (1.96 standard errors), that the "
        "measure orders as performance does; a measure is read as 'more diverse => better' "
        "(compression ratio and Self-BLEU, where higher is less diverse, inverted), a rival "
        "as 'higher => better'; 0.5 is chance, 1 - it the opposite rule; 95% bootstrap CIs "
        "over conditions. Spearman over conditions (raw sign) with bootstrap CIs. Every "
        "statistic, unflipped: measures.parquet beside this page."
    )
    return (
        f"<ul class='verdict' id='verdict'>{verdict}</ul>"
        + figures_html(shown[:1])
        + table(header, rows, "measures-table")
        + caption
        + details
        + figures_html(shown[1:])
    )


def _paragraph(parts: Paragraph) -> str:
    inner = "".join(p.html() if isinstance(p, Number) else escape(p) for p in parts)
    return f"<p>{inner}</p>"


def _summary(analysis: Analysis) -> str:
    first, *rest = summary_paragraphs(analysis)
    rows = metric_rows(analysis)
    body = _paragraph(first)
    if rows:
        body += table(METRIC_HEADER, rows, "metric-table") + note(
            "Task2Vec diversity against each metric. Spearman and Pearson over runs with "
            "bootstrap CIs; the effect is from the lowest- to the highest-diversity "
            "condition, Hedges' g with Welch's test only with at least 3 seeds per arm."
        )
    body += "".join(_paragraph(p) for p in rest)
    notes = analysis.skipped + analysis.tables.notes
    if notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        body += f"<p>Left out:</p><ul class='note' id='skipped'>{items}</ul>"
    return f"<div class='summary'>{body}</div>"


def _key_numbers(analysis: Analysis) -> str:
    conditions, results = analysis.conditions, analysis.results
    measures = [m for m in ["diversity", "alignment"] if has_values(conditions, m)]
    header = ["condition", "plan", "concepts", "seeds"]
    header += [f"{metric(m).short} [95% CI]" for m in measures]
    header += [f"{metric(m).short} mean [95% CI over seeds]" for m in analysis.metrics]
    rows = []
    for row in conditions.itertuples(index=False):
        cells = [
            str(row.condition),
            str(getattr(row, "plan", "")),
            number(getattr(row, "n_concepts", np.nan)),
            str(row.n_seeds),
        ]
        for m in measures:
            low, high = getattr(row, f"{m}_ci_low", np.nan), getattr(row, f"{m}_ci_high", np.nan)
            cells.append(with_ci(getattr(row, m), low, high))
        for m in analysis.metrics:
            values = results.loc[results.condition == row.condition, m].to_numpy(float)
            s = stats.mean_ci(values)
            cells.append(with_ci(s["mean"], s["ci_low"], s["ci_high"]))
        rows.append(cells)
    caption = note(
        "Diversity and alignment CIs are the Task2Vec estimator's own; metric CIs are "
        "t-intervals over seeds (none with one seed)."
    )
    return table(header, rows, "key-numbers-table") + caption


def _correlations(analysis: Analysis) -> str:
    header = [
        "plot",
        "x",
        "y",
        "points",
        "n",
        "Pearson r",
        "95% CI",
        "p",
        "Spearman rho",
        "95% CI",
        "p",
        "note",
    ]
    rows = [
        [
            r.plot,
            r.x,
            r.y,
            r.level,
            str(r.n),
            fixed(r.pearson_r),
            interval(r.pearson_ci_low, r.pearson_ci_high),
            p_value(r.pearson_p),
            fixed(r.spearman_rho),
            interval(r.spearman_ci_low, r.spearman_ci_high),
            p_value(r.spearman_p),
            r.reason or "",
        ]
        for r in analysis.correlations.itertuples(index=False)
    ]
    if not rows:
        return note("No correlation could be computed.")
    caption = note(
        "Points: 'runs' = one per training run (seeds share their condition's x, so p is "
        "optimistic); 'conditions' = one per condition mean. CIs: percentile bootstrap over "
        "points (2,000 resamples). For plot D, y is the change of the metric from the base "
        "condition."
    )
    return table(header, rows, "correlation-table") + caption


def _effects(analysis: Analysis) -> str:
    if analysis.effects.empty:
        return note("No effect size: fewer than two conditions with a diversity value.")
    header = [
        "metric",
        "from (lowest x)",
        "to (highest x)",
        "mean from",
        "mean to",
        "difference",
        "Hedges' g",
        "Welch p",
        "seeds",
    ]
    rows = [
        [
            r.metric,
            f"{r.low_condition} ({r.x} {number(r.low_x)})",
            f"{r.high_condition} ({r.x} {number(r.high_x)})",
            number(r.low_mean),
            number(r.high_mean),
            number(r.difference),
            fixed(r.hedges_g) if np.isfinite(r.hedges_g) else (r.reason or "n/a"),
            p_value(r.welch_p),
            f"{r.n_a} vs {r.n_b}",
        ]
        for r in analysis.effects.itertuples(index=False)
    ]
    caption = note(
        "Difference = mean(to) - mean(from). Hedges' g: the difference in pooled standard "
        "deviations with the small-sample correction, shown only with at least 3 seeds "
        "per arm (with fewer the spread, and so g, is not estimable)."
    )
    return table(header, rows, "effect-table") + caption


def _spec(analysis: Analysis) -> str:
    info = analysis.tables.info
    if not info.get("spec"):
        return note("No spec recorded.")
    body = f"<pre id='spec-dump'>{escape(dump(info['spec']))}</pre>"
    if info.get("probe"):
        body += f"<h3>Probe</h3><pre id='probe-dump'>{escape(dump(info['probe']))}</pre>"
    return body


def _provenance(analysis: Analysis) -> str:
    provenance = dict(analysis.tables.info.get("provenance") or {})
    results = analysis.results
    rows = [[key, value_text(value)] for key, value in provenance.items()]
    for column in [
        "model",
        "parameters",
        "tokens",
        "flops",
        "device",
        "divlab_version",
        "torch_version",
        "transformers_version",
    ]:
        if column in results.columns:
            values = results[column].dropna().unique()
            rows.append([f"runs: {column}", ", ".join(value_text(v) for v in values[:10])])
    for column in ["train_seconds", "wall_seconds"]:
        if has_values(results, column):
            seconds = results[column].astype(float)
            rows.append(
                [
                    f"runs: {column}",
                    f"total {number(seconds.sum())} s, "
                    f"per run {number(seconds.min())}-{number(seconds.max())} s",
                ]
            )
    if not rows:
        return note("No provenance recorded.")
    return table(["field", "value"], rows, "provenance-table")
