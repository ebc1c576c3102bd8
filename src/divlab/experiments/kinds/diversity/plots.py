"""The diversity experiment's figures: plots A-E, learning curves and speed of learning,
as PNG and SVG files.

Figures are ``matplotlib.figure.Figure`` objects drawn on their own canvas: no pyplot, so
no global figure state carries over from one figure (or one report) to the next.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from divlab.experiments.kinds.diversity.analysis import GAINED, Analysis, log2_axis
from divlab.experiments.kinds.diversity.load import has_values, metric
from divlab.report import stats
from divlab.report.figures import STYLE, FigureFile, save_figure
from divlab.report.formatting import pearson_text, spearman_text

CMAP = "viridis"
LIGHT = 0.35  # alpha of per-seed points
PLOT_TITLES = {
    "A": "A: diversity vs {metric}",
    "B": "B: alignment vs {metric}",
    "C": "C: diversity vs alignment",
    "D": "D: gained alignment vs gained {metric} (concepts added outside the eval set)",
    "E": "E: Task2Vec diversity vs ground-truth diversity",
    "F": "F: energy distance to D_eval vs {metric} (alignment without the set's own spread)",
    "G": "G: gained energy distance vs gained {metric} (concepts added outside the eval set)",
}
PLOT_X = {"A": "diversity", "B": "alignment", "F": "energy_distance"}


def make_figures(analysis: Analysis, folder: Path) -> list[FigureFile]:
    """Draw every figure the analysis supports into ``folder``; return them in order."""
    folder.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        return [
            save_figure(draw(), folder, stem, title, caption, wide)
            for stem, title, caption, draw, wide in _figure_plan(analysis)
        ]


def _figure_plan(analysis: Analysis) -> list[tuple]:
    """(file stem, title, caption, draw, wide) of each figure, in report order."""
    plan = []
    for plot in ["A", "B", "C", "D", "F", "G"]:
        if plot == "C":
            if analysis.correlation("C", "alignment", "conditions") is not None:
                caption = "One point per condition; bars are the Task2Vec 95% CIs."
                draw = partial(_diversity_vs_alignment, analysis)
                plan.append(("C_diversity_alignment", PLOT_TITLES["C"], caption, draw, False))
            continue
        caption = (
            "Light points: runs (one per seed). Large points: condition means with 95% "
            "t-CIs over seeds"
            + ("" if plot in GAINED else " and the measure's 95% bootstrap CI horizontally")
            + ". Line: least-squares fit over runs."
        )
        for name in analysis.metrics:
            if analysis.correlation(plot, name, "runs") is not None:
                title = PLOT_TITLES[plot].format(metric=metric(name).short)
                draw = partial(_relation_figure, analysis, plot, name)
                plan.append((f"{plot}_{name}", title, caption, draw, False))
    if (analysis.correlations["plot"] == "E").any():
        caption = (
            "Task2Vec diversity (95% CI) against the ground-truth diversity of each "
            "condition's training data; dashed: the coefficient of a 1-concept set."
        )
        plan.append(
            ("E_ground_truth", PLOT_TITLES["E"], caption, partial(_ground_truth, analysis), True)
        )
    if all(has_values(analysis.tables.curves, c) for c in ["tokens", "loss"]):
        caption = "Mean over seeds; the band spans the lowest to the highest seed."
        draw = partial(_learning_curves, analysis)
        plan.append(("learning_curves", "Learning curves", caption, draw, True))
    speed = [c for c in ["speed_auc", "tokens_to_threshold"] if has_values(analysis.results, c)]
    if speed:
        caption = "Per-seed values (light) and condition means with 95% CIs over seeds."
        draw = partial(_speed, analysis, speed)
        plan.append(("speed", "Speed of learning", caption, draw, True))
    return plan


# ---- colour by number of concepts ------------------------------------------------------


def _plain_ticks() -> FuncFormatter:
    """Log-axis ticks as plain numbers (1, 2, 4, 8): easier to read, and no mathtext."""
    return FuncFormatter(lambda value, _: f"{value:g}")


def _colour_scale(analysis: Analysis):
    """A colour map over the conditions' number of concepts (log if it spans > 4x), or
    None when the table has no n_concepts."""
    values = analysis.conditions.get("n_concepts")
    if values is None or not has_values(analysis.conditions, "n_concepts"):
        return None
    v = values.to_numpy(float)
    low, high = np.nanmin(v), np.nanmax(v)
    norm = LogNorm(low, high) if log2_axis(v) else Normalize(low, max(high, low + 1))
    return ScalarMappable(norm=norm, cmap=CMAP)


def _colours(analysis: Analysis, conditions) -> list:
    scale = _colour_scale(analysis)
    if scale is None:
        return ["tab:blue"] * len(conditions)
    n = analysis.conditions.set_index("condition")["n_concepts"].astype(float)
    # a condition without a concept count (e.g. real text) is grey, not invisible
    return [scale.to_rgba(n[c]) if np.isfinite(n.get(c, np.nan)) else "0.5" for c in conditions]


def _colourbar(figure: Figure, axes, analysis: Analysis) -> None:
    scale = _colour_scale(analysis)
    if scale is not None:
        bar = figure.colorbar(scale, ax=axes, label="number of concepts", shrink=0.8)
        if isinstance(scale.norm, LogNorm):
            bar.ax.yaxis.set_major_locator(LogLocator(base=2))
            bar.ax.yaxis.set_major_formatter(_plain_ticks())
            bar.ax.yaxis.set_minor_formatter(NullFormatter())


# ---- plots A, B, D -------------------------------------------------------------------


def _relation_figure(analysis: Analysis, plot: str, name: str) -> Figure:
    if plot in GAINED:
        measure = GAINED[plot]
        points = analysis.gains[(plot, name)].rename(
            columns={f"gained_{measure}": "x", "gained_metric": "y"}
        )
        xlabel = {
            "D": "gained alignment (alignment - alignment of the base condition)",
            "G": "gained energy distance to D_eval (negative: moved closer)",
        }[plot]
        ylabel = f"gained {metric(name).label}"
        x_bars = None
    else:
        x = PLOT_X[plot]
        points = analysis.results[["condition", x, name]].rename(columns={x: "x", name: "y"})
        xlabel, ylabel = metric(x).label, metric(name).label
        x_bars = _x_bars(analysis, x)
    points = points.astype({"x": float, "y": float})
    means = _means(points, x_bars)
    figure = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = figure.subplots()
    colours = dict(zip(means.condition, _colours(analysis, means.condition), strict=True))
    ax.scatter(
        points.x,
        points.y,
        s=14,
        alpha=LIGHT,
        c=[colours[c] for c in points.condition],
        label="runs (one per seed)",
    )
    _error_bars(ax, means, colours)
    runs = analysis.correlation(plot, name, "runs")
    _fit(ax, points.x, runs)
    if plot in GAINED:
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
    conditions = analysis.correlation(plot, name, "conditions")
    ax.set_title(
        _stats_title(runs, "runs") + "\n" + _stats_title(conditions, "conditions", pearson=False)
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="best")
    _colourbar(figure, ax, analysis)
    figure.suptitle(PLOT_TITLES[plot].format(metric=metric(name).short), fontsize=10)
    return figure


def _x_bars(analysis: Analysis, x: str) -> pd.DataFrame | None:
    columns = [f"{x}_ci_low", f"{x}_ci_high"]
    if not all(c in analysis.conditions.columns for c in columns):
        return None
    bars = analysis.conditions[["condition", *columns]]
    return bars.set_axis(["condition", "x_low", "x_high"], axis=1).astype(
        {"x_low": float, "x_high": float}
    )


def _means(points: pd.DataFrame, x_bars: pd.DataFrame | None) -> pd.DataFrame:
    """Condition means of ``points`` (x, y) with a t-CI of y and optional x CIs."""
    means = stats.condition_means(points, "x", "y")
    if x_bars is not None:
        means = means.merge(x_bars, on="condition", how="left")
    return means


def _error_bars(
    ax, means: pd.DataFrame, colours: dict, label: str = "condition mean, 95% CI"
) -> None:
    """One labelled point per condition with its (asymmetric) CIs as error bars."""
    for i, row in enumerate(means.itertuples()):
        yerr = _half_widths(row.mean, row.ci_low, row.ci_high)
        xerr = _half_widths(row.x, getattr(row, "x_low", np.nan), getattr(row, "x_high", np.nan))
        ax.errorbar(
            row.x,
            row.mean,
            yerr=yerr,
            xerr=xerr,
            fmt="o",
            ms=6,
            capsize=3,
            color=colours[row.condition],
            mec="black",
            mew=0.6,
            label=label if i == 0 else None,
        )
        ax.annotate(
            str(row.condition),
            (row.x, row.mean),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=7,
        )


def _half_widths(centre, low, high):
    """Asymmetric error-bar lengths for matplotlib, or None when the CI is unknown."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [[max(centre - low, 0.0)], [max(high - centre, 0.0)]]


def _fit(ax, x, corr: dict | None) -> None:
    if corr is None or not np.isfinite(corr["slope"]):
        return
    xs = np.linspace(np.nanmin(x), np.nanmax(x), 50)
    label = f"least-squares fit ({corr['level']})"
    ax.plot(xs, corr["slope"] * xs + corr["intercept"], color="black", lw=1, label=label)


def _stats_title(corr: dict | None, level: str, pearson: bool = True) -> str:
    if corr is None:
        return ""
    if corr["reason"]:
        return f"{level} (n = {corr['n']}): {corr['reason']}"
    text = f"{level} (n = {corr['n']}): Spearman {spearman_text(corr)}"
    if pearson:
        text = f"{text}\nPearson {pearson_text(corr)}"
    return text


# ---- plots C and E: one point per condition ---------------------------------------------


def _condition_points(table: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """``_error_bars`` input from the condition table: x and y with their own CI columns
    (``<name>_ci_low``/``_ci_high``) where the table has them."""

    def column(name: str) -> pd.Series:
        return (
            table[name].astype(float) if name in table.columns else pd.Series(np.nan, table.index)
        )

    return pd.DataFrame(
        {
            "condition": table.condition,
            "x": column(x),
            "x_low": column(f"{x}_ci_low"),
            "x_high": column(f"{x}_ci_high"),
            "mean": column(y),
            "ci_low": column(f"{y}_ci_low"),
            "ci_high": column(f"{y}_ci_high"),
        }
    )


def _diversity_vs_alignment(analysis: Analysis) -> Figure:
    figure = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = figure.subplots()
    points = _condition_points(analysis.conditions, "diversity", "alignment")
    colours = dict(zip(points.condition, _colours(analysis, points.condition), strict=True))
    _error_bars(ax, points, colours, label="condition, Task2Vec 95% CIs")
    corr = analysis.correlation("C", "alignment", "conditions")
    _fit(ax, points.x, corr)
    ax.set_title(_stats_title(corr, "conditions"))
    ax.set_xlabel(metric("diversity").label)
    ax.set_ylabel(metric("alignment").label)
    ax.legend(fontsize=7)
    _colourbar(figure, ax, analysis)
    figure.suptitle(PLOT_TITLES["C"], fontsize=10)
    return figure


GROUND_TRUTH_LABELS = {
    "gt_effective_concepts": "effective number of concepts, exp(entropy of concept weights)",
    "gt_hellinger": "ground-truth Hellinger diversity of the concept mixture",
}


def _ground_truth(analysis: Analysis) -> Figure:
    table = analysis.conditions
    panels = [c for c in GROUND_TRUTH_LABELS if has_values(table, c)]
    figure = Figure(figsize=(5.2 * len(panels), 4.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(panels), sharey=True))
    colours = dict(zip(table.condition, _colours(analysis, table.condition), strict=True))
    floor = _noise_floor(analysis)
    for ax, column in zip(axes, panels, strict=True):
        points = _condition_points(table, column, "diversity")
        _error_bars(ax, points, colours, label="condition, Task2Vec 95% CI")
        if floor is not None:
            ax.axhline(floor, color="0.3", ls="--", lw=1, label="noise floor (1 concept)")
        ax.legend(fontsize=7, loc="best")
        log = log2_axis(points.x)
        if log:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(_plain_ticks())
        rows = analysis.correlations[
            (analysis.correlations["plot"] == "E")
            & analysis.correlations["x"].isin([column, f"log2({column})"])
        ]
        if not rows.empty:
            ax.set_title(_stats_title(rows.iloc[0].to_dict(), "conditions"))
        ax.set_xlabel(GROUND_TRUTH_LABELS[column] + (" (log2 axis)" if log else ""))
    axes[0].set_ylabel(metric("diversity").label)
    figure.suptitle(PLOT_TITLES["E"], fontsize=10)
    return figure


def _noise_floor(analysis: Analysis) -> float | None:
    if not has_values(analysis.results, "noise_floor"):
        return None
    return float(analysis.results.noise_floor.dropna().iloc[0])


# ---- learning curves and speed -------------------------------------------------------------


def _learning_curves(analysis: Analysis) -> Figure:
    curves = analysis.tables.curves
    columns = ["loss"] + (["gap"] if has_values(curves, "gap") else [])
    figure = Figure(figsize=(5.4 * len(columns) + 0.8, 4.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(columns)))
    order = [c for c in analysis.conditions.condition if c in set(curves.condition)]
    colours = dict(zip(order, _colours(analysis, order), strict=True))
    scale = _colour_scale(analysis)
    for ax, column in zip(axes, columns, strict=True):
        for condition in order:
            series = curves[curves.condition == condition].groupby("tokens")[column]
            summary = series.agg(["mean", "min", "max"]).dropna()
            ax.plot(
                summary.index,
                summary["mean"],
                color=colours[condition],
                lw=1.4,
                label=str(condition),
            )
            ax.fill_between(
                summary.index,
                summary["min"],
                summary["max"],
                color=colours[condition],
                alpha=0.2,
                lw=0,
            )
        ax.set_xlabel("training tokens")
        ax.set_ylabel(metric(column).label)
    if scale is None or len(order) <= 8:
        axes[-1].legend(fontsize=7, title="condition", title_fontsize=7)
    _colourbar(figure, list(axes), analysis)
    figure.suptitle(
        "Learning curves on the eval set (mean over seeds, band = min..max)", fontsize=10
    )
    return figure


def _speed(analysis: Analysis, columns: list[str]) -> Figure:
    results = analysis.results
    order = list(analysis.conditions.condition)
    figure = Figure(figsize=(5.0 * len(columns) + 0.8, 4.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(columns)))
    colours = _colours(analysis, order)
    for ax, column in zip(axes, columns, strict=True):
        for i, condition in enumerate(order):
            values = results.loc[results.condition == condition, column].to_numpy(float)
            ax.scatter(np.full(len(values), i), values, s=14, alpha=LIGHT, color=colours[i])
            summary = stats.mean_ci(values)
            yerr = _half_widths(summary["mean"], summary["ci_low"], summary["ci_high"])
            ax.errorbar(
                i,
                summary["mean"],
                yerr=yerr,
                fmt="o",
                ms=6,
                capsize=3,
                color=colours[i],
                mec="black",
                mew=0.6,
            )
        ax.set_xticks(range(len(order)), [str(c) for c in order], rotation=45, ha="right")
        ax.set_xlabel("condition")
        ax.set_ylabel(metric(column).label)
    _colourbar(figure, list(axes), analysis)
    figure.suptitle("Speed of learning", fontsize=10)
    return figure
