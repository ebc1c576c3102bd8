"""The report of a curriculum experiment (``kind: curriculum``).

Does the order speed up learning? For each ordering, overall and per domain: the area
under the eval-loss curve (mean loss over training) and the tokens to reach the
threshold (oracle + gap), as means with t-based 95% CIs over seeds
(``stats.mean_ci``), and the paired difference to the shuffle arm (same seed, same init)
with its CI. Tokens to threshold is averaged over the seeds that reached it (the count is
shown). Figures: learning curves per ordering, one panel per domain.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from divlab.errors import DataError
from divlab.io import read_json
from divlab.report import page, stats
from divlab.report.figures import STYLE, save_figure
from divlab.report.formatting import interval, number

METRICS = {"auc": "AUC (mean loss)", "tokens_to_threshold": "tokens to threshold"}
SUMMARY_FIELDS = (
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "difference",
    "difference_low",
    "difference_high",
)


def comparison(speed: pd.DataFrame, reference: str) -> pd.DataFrame:
    """One row per (ordering, level, series, metric): mean and CI over seeds, seeds that
    have a value, and the paired difference (ordering - reference, by seed) with its CI."""
    rows = []
    for (ordering, level, series), group in speed.groupby(
        ["ordering", "level", "series"], sort=False
    ):
        ref = speed[
            (speed.ordering == reference) & (speed.level == level) & (speed.series == series)
        ]
        for metric in METRICS:
            own = group.set_index("seed")[metric].astype(float)
            paired = own - ref.set_index("seed")[metric].astype(float).reindex(own.index)
            summary = stats.mean_ci(own.to_numpy())
            difference = stats.mean_ci(paired.to_numpy())
            rows.append(
                {
                    "ordering": ordering,
                    "level": level,
                    "series": series,
                    "metric": metric,
                    **summary,
                    "seeds": len(own),
                    "difference": difference["mean"],
                    "difference_low": difference["ci_low"],
                    "difference_high": difference["ci_high"],
                    "difference_n": difference["n"],
                }
            )
    return pd.DataFrame(rows)


def sections(folder: Path, report_dir: Path) -> tuple[list[tuple[str, str, str]], dict]:
    figures_dir = report_dir / "figures"
    folder = Path(folder)
    if not (folder / "curriculum.parquet").exists():
        raise DataError(f"{folder} has no curriculum.parquet yet; run the experiment first")
    speed = pd.read_parquet(folder / "curriculum.parquet")
    curves = pd.read_parquet(folder / "curriculum_curves.parquet")
    info = read_json(folder / "curriculum.json")
    reference = info["reference"]
    table = comparison(speed, reference)
    figures_dir.mkdir(parents=True, exist_ok=True)

    summary = {"reference": reference, "threshold_gap": info["threshold_gap"], "orderings": {}}
    for ordering in info["orderings"]:
        entry = {}
        for level, series in [("all", "all")] + [("domain", d) for d in info["domains"]]:
            rows = table[
                (table.ordering == ordering) & (table.level == level) & (table.series == series)
            ]
            entry[series] = {
                r["metric"]: {k: _finite(r[k]) for k in SUMMARY_FIELDS} for _, r in rows.iterrows()
            }
        summary["orderings"][ordering] = entry

    def cell(ordering: str, series: str, metric: str, suffix: str) -> list[str]:
        row = table[
            (table.ordering == ordering)
            & (table.series == series)
            & (table.metric == metric)
            & table.level.isin(["all", "domain"])
        ].iloc[0]
        digits = 4 if metric == "auc" else 3
        fmt = lambda v: number(v, digits)  # noqa: E731
        reached = f" ({int(row['n'])}/{int(row['seeds'])})" if metric != "auc" else ""
        return [
            f"<span id='{suffix}'>{fmt(row['mean'])}</span>{reached}",
            interval(row["ci_low"], row["ci_high"], fmt),
            "" if ordering == reference else fmt(row["difference"]),
            ""
            if ordering == reference
            else interval(row["difference_low"], row["difference_high"], fmt),
        ]

    headline_rows = []
    for ordering in info["orderings"]:
        for series in ["all", *info["domains"]]:
            for metric, label in METRICS.items():
                values = cell(ordering, series, metric, f"{metric}-{ordering}-{series}")
                headline_rows.append([ordering, series, label, *values])
    header = ["ordering", "eval", "metric", "mean", "95% CI", f"vs {reference}", "95% CI"]
    body = _table_html(header, headline_rows, "curriculum-table")
    overall = page.note(
        f"Threshold: oracle loss + {info['threshold_gap']}; tokens to threshold averages the "
        "seeds that reached it (reached/seeds). Differences are paired by seed "
        f"(ordering - {reference}); negative = faster or lower."
    )
    concept_rows = [
        [
            r["ordering"],
            r["series"],
            METRICS[r["metric"]],
            number(r["mean"], 4),
            interval(r["ci_low"], r["ci_high"], lambda v: number(v, 4)),
        ]
        for _, r in table[table.level == "concept"].iterrows()
    ]
    concepts = page.table(
        ["ordering", "concept", "metric", "mean", "95% CI"], concept_rows, "concept-table"
    )
    figure = _curves_figure(curves, info, figures_dir)
    return [
        ("Speed of learning by ordering", body + overall, "speed"),
        ("Learning curves", page.figures([figure]), "curves"),
        ("Per concept", concepts, "per-concept"),
    ], summary


def _table_html(header: list[str], rows: list[list[str]], id_: str) -> str:
    """Like ``page.table``, but the first value cell holds an id'd span (already HTML)."""

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = ""
    for row in rows:
        cells = [page.cell(v) for v in row[:3]] + [f"<td class='n'>{row[3]}</td>"]
        cells += [page.cell(v) for v in row[4:]]
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table id='{id_}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _finite(value):
    value = float(value)
    return value if np.isfinite(value) else None


def _curves_figure(curves: pd.DataFrame, info: dict, folder: Path):
    panels = ["all", *info["domains"]]
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(3.0 * len(panels), 3.0), layout="constrained")
        axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, series in zip(axes, panels, strict=True):
            rows = curves[(curves.series == series) & curves.level.isin(["all", "domain"])]
            for ordering in info["orderings"]:
                mean = rows[rows.ordering == ordering].groupby("tokens")["loss"].mean()
                ax.plot(mean.index, mean.to_numpy(), label=ordering, lw=1.2)
            ax.set_title("every domain" if series == "all" else f"domain {series}")
            ax.set_xlabel("training tokens")
        axes[0].set_ylabel("eval loss (mean over seeds)")
        axes[0].legend(fontsize=7)
    return save_figure(
        figure,
        folder,
        "curriculum-curves",
        "Learning curves per ordering",
        "Eval loss during training, overall and per domain, averaged over seeds.",
        wide=True,
    )
