"""One self-contained HTML file: inline CSS, figures as base64 PNG data URIs, no scripts.

Every piece of text that comes from data (condition names, spec values, versions) goes
through ``html.escape``.
"""

from __future__ import annotations

import base64
import json
import re
from html import escape

import numpy as np
import yaml

from divlab.report import stats
from divlab.report.analysis import Analysis
from divlab.report.formatting import fixed, interval, number, p_value
from divlab.report.load import has_values, metric
from divlab.report.plots import FigureFile
from divlab.report.summary import Number, Paragraph, summary_paragraphs

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; }
th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.num { font-weight: 600; } .note { color: #666; font-size: .9em; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr));
           gap: 1em; }
figure { margin: 0; } figure.wide { grid-column: 1 / -1; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .8em; }
.summary p { max-width: 60em; }
"""


def render(analysis: Analysis, figures: list[FigureFile]) -> str:
    name = analysis.tables.name
    sections = [
        f"<h1>divlab report: {escape(name)}</h1>",
        _section("Summary", _summary(analysis), "summary"),
        _section("Key numbers", _key_numbers(analysis), "key-numbers"),
        _section("Correlations", _correlations(analysis), "correlations"),
        _section("Effect sizes", _effects(analysis), "effect-sizes"),
        _section("Figures", _figures(figures), "figures"),
        _section("Spec", _spec(analysis), "spec"),
        _section("Provenance", _provenance(analysis), "provenance"),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>divlab report: {escape(name)}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def _section(title: str, body: str, id_: str) -> str:
    return f"<section id='{id_}'>\n<h2>{escape(title)}</h2>\n{body}\n</section>"


def _note(text: str) -> str:
    return f"<p class='note'>{escape(text)}</p>"


def _paragraph(parts: Paragraph) -> str:
    inner = "".join(
        f"<span class='num' id='{escape(p.id)}'>{escape(p.text)}</span>"
        if isinstance(p, Number)
        else escape(p)
        for p in parts
    )
    return f"<p>{inner}</p>"


def _summary(analysis: Analysis) -> str:
    body = "".join(_paragraph(p) for p in summary_paragraphs(analysis))
    notes = analysis.skipped + analysis.tables.notes
    if notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        body += f"<p>Left out:</p><ul class='note' id='skipped'>{items}</ul>"
    return f"<div class='summary'>{body}</div>"


def _table(header: list[str], rows: list[list[str]], id_: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table id='{id_}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value) -> str:
    """A table cell; numbers (and intervals) align right, words left."""
    text = str(value)
    numeric = re.match(r"^(-?[\d.]|\[|n/a$)", text) is not None
    return f"<td class='n'>{escape(text)}</td>" if numeric else f"<td>{escape(text)}</td>"


def _with_ci(value, low, high) -> str:
    ci = interval(low, high, number)
    return f"{number(value)} {ci}".strip()


def _key_numbers(analysis: Analysis) -> str:
    table, results = analysis.conditions, analysis.results
    measures = [m for m in ["diversity", "alignment"] if has_values(table, m)]
    header = ["condition", "plan", "concepts", "seeds"]
    header += [f"{metric(m).short} [95% CI]" for m in measures]
    header += [f"{metric(m).short} mean [95% CI over seeds]" for m in analysis.metrics]
    rows = []
    for row in table.itertuples(index=False):
        cells = [
            str(row.condition),
            str(getattr(row, "plan", "")),
            number(getattr(row, "n_concepts", np.nan)),
            str(row.n_seeds),
        ]
        for m in measures:
            low, high = getattr(row, f"{m}_ci_low", np.nan), getattr(row, f"{m}_ci_high", np.nan)
            cells.append(_with_ci(getattr(row, m), low, high))
        for m in analysis.metrics:
            values = results.loc[results.condition == row.condition, m].to_numpy(float)
            s = stats.mean_ci(values)
            cells.append(_with_ci(s["mean"], s["ci_low"], s["ci_high"]))
        rows.append(cells)
    note = _note(
        "Diversity and alignment CIs are the Task2Vec estimator's own; metric CIs are "
        "t-intervals over seeds (none with one seed)."
    )
    return _table(header, rows, "key-numbers-table") + note


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
        return _note("No correlation could be computed.")
    note = _note(
        "Points: 'runs' = one per training run (seeds share their condition's x, so p is "
        "optimistic); 'conditions' = one per condition mean. CIs: percentile bootstrap over "
        "points (2,000 resamples). For plot D, y is the change of the metric from the base "
        "condition."
    )
    return _table(header, rows, "correlation-table") + note


def _effects(analysis: Analysis) -> str:
    if analysis.effects.empty:
        return _note("No effect size: fewer than two conditions with a diversity value.")
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
            fixed(r.hedges_g),
            p_value(r.welch_p),
            f"{r.n_a} vs {r.n_b}",
        ]
        for r in analysis.effects.itertuples(index=False)
    ]
    note = _note(
        "Difference = mean(to) - mean(from). Hedges' g: the difference in pooled standard "
        "deviations with the small-sample correction; with few seeds it is very noisy."
    )
    return _table(header, rows, "effect-table") + note


def _figures(figures: list[FigureFile]) -> str:
    if not figures:
        return _note("No figures: the experiment has nothing to plot.")
    return "<div class='figures'>" + "".join(_figure(f) for f in figures) + "</div>"


def _figure(figure: FigureFile) -> str:
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    wide = " class='wide'" if figure.wide else ""
    return (
        f"<figure id='figure-{escape(figure.stem)}'{wide}><h3>{escape(figure.title)}</h3>"
        f"<img src='data:image/png;base64,{data}' alt='{escape(figure.title)}'>"
        f"<figcaption>{escape(figure.caption)} (vector copy: figures/"
        f"{escape(figure.svg.name)})</figcaption></figure>"
    )


def _dump(obj) -> str:
    try:
        return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return json.dumps(obj, indent=2, default=str)


def _spec(analysis: Analysis) -> str:
    info = analysis.tables.info
    if not info.get("spec"):
        return _note("No spec recorded.")
    body = f"<pre id='spec-dump'>{escape(_dump(info['spec']))}</pre>"
    if info.get("probe"):
        body += f"<h3>Probe</h3><pre id='probe-dump'>{escape(_dump(info['probe']))}</pre>"
    return body


def _provenance(analysis: Analysis) -> str:
    provenance = dict(analysis.tables.info.get("provenance") or {})
    results = analysis.results
    rows = [[key, _value(value)] for key, value in provenance.items()]
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
            rows.append([f"runs: {column}", ", ".join(_value(v) for v in values[:10])])
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
        return _note("No provenance recorded.")
    return _table(["field", "value"], rows, "provenance-table")


def _value(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, float | np.floating):
        return number(value, 4)
    return str(value)
