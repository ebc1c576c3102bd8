"""The report of a scaling experiment (``divlab.experiments.scaling``).

Reads the experiment's three tables and shows:

* the held-out check: each law refitted without its largest configuration predicts it;
  predicted loss with its 95% bootstrap interval, realised loss and relative error
  ``(predicted - realised) / realised`` (the headline: the joint law's when there is one,
  else the largest model's data law);
* the fitted parameters of ``L(D) = E + B / D^beta`` per model size and of
  ``L(N, D) = E + A / N^alpha + B / D^beta``, with 95% percentile-bootstrap CIs, and the
  fitted floor ``E`` beside the data's oracle loss (GINC's Bayes-optimal loss on D_eval,
  which no model can beat);
* a figure: loss against tokens on log axes, one colour per model size, the runs, the fit
  made without the held-out point (solid where fitted, dotted where extrapolated) and the
  held-out point with its predicted interval.

summary.json: ``holdout_relative_error`` (and ``holdout``: the headline prediction), the
parameters of every fit on all runs (``fits``), and each held-out prediction.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from divlab.errors import DataError
from divlab.experiments.kinds.scaling import laws
from divlab.experiments.kinds.scaling.spec import TABLES
from divlab.report.figures import DPI, STYLE, save_figure
from divlab.report.formatting import interval, number
from divlab.report.page import figures, note, table

LAW_NAMES = {"data": "L(D) = E + B / D^beta", "joint": "L(N, D) = E + A / N^alpha + B / D^beta"}


def sections(folder: Path, report_dir: Path) -> tuple[list[tuple[str, str, str]], dict]:
    figures_dir = report_dir / "figures"
    runs, fits, holdout = _tables(folder)
    figures_dir.mkdir(parents=True, exist_ok=True)
    headline = _headline(runs, holdout)
    with matplotlib.rc_context(STYLE):
        drawn = [
            save_figure(
                _loss_figure(runs, fits, holdout, form),
                figures_dir,
                f"scaling_{form}",
                f"Loss vs tokens: {LAW_NAMES[form]}",
                _caption(form, holdout),
                wide=True,
            )
            for form in ("data", "joint")
            if (fits["law"] == form).any()
        ]
    body = [
        ("Held-out prediction", _holdout_html(headline, holdout), "scaling-holdout"),
        ("Fitted laws", _fits_html(runs, fits), "scaling-fits"),
        ("Figures", figures(drawn), "scaling-figures"),
        ("Runs", _runs_html(runs), "scaling-runs"),
    ]
    return body, _summary(runs, fits, holdout, headline)


def _tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    missing = [name for name in TABLES if not (folder / name).exists()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; run the experiment first")
    return tuple(pd.read_parquet(folder / name) for name in TABLES)


def _headline(runs: pd.DataFrame, holdout: pd.DataFrame) -> dict | None:
    """The joint law's held-out prediction, else that of the largest model's data law."""
    if holdout.empty:
        return None
    joint = holdout[holdout["law"] == "joint"]
    row = joint.iloc[0] if len(joint) else holdout.loc[holdout["N"].idxmax()]
    return {key: _plain(value) for key, value in row.items()}


# ---- HTML --------------------------------------------------------------------------------


def _holdout_html(headline: dict | None, holdout: pd.DataFrame) -> str:
    if headline is None:
        return note("No held-out check (scaling.holdout is 'none').")
    law = LAW_NAMES[headline["law"]]
    text = (
        f"<p class='summary'>Fitted without its largest configuration "
        f"(N = {number(headline['N'])}, D = {number(headline['D'])}), {law} predicts a loss of "
        f"<span class='num' id='holdout-predicted'>{number(headline['predicted'], 4)}</span> "
        f"(95% bootstrap interval {interval(headline['ci_low'], headline['ci_high'], number)}); "
        f"the runs realised <span class='num' id='holdout-realised'>"
        f"{number(headline['realised'], 4)}</span>: a relative error of "
        f"<span class='num' id='holdout-relative-error'>"
        f"{headline['relative_error']:+.2%}</span>.</p>"
    )
    rows = [
        [
            LAW_NAMES[r.law],
            r.model,
            number(r.N),
            number(r.D),
            str(r.fitted_on),
            number(r.predicted, 4),
            interval(r.ci_low, r.ci_high, number),
            number(r.realised, 4),
            f"{r.relative_error:+.2%}",
            "yes" if r.ci_low <= r.realised <= r.ci_high else "no",
        ]
        for r in holdout.itertuples()
    ]
    header = ["law", "model", "N", "D", "runs fitted", "predicted", "95% CI", "realised"]
    header += ["relative error", "realised in CI"]
    html = text + table(header, rows, "scaling-holdout-table")
    exact = holdout[holdout["fitted_on"] <= holdout["law"].map(lambda law: len(_names(law)))]
    if len(exact):
        html += note(
            "Some laws were refitted on as many runs as they have parameters: they pass "
            "through those runs exactly, so their bootstrap interval collapses to a point; "
            "add seeds or token budgets for an informative interval."
        )
    return html


def _fits_html(runs: pd.DataFrame, fits: pd.DataFrame) -> str:
    all_runs = fits[fits["fitted_on"] == "all"]
    rows = [
        [
            LAW_NAMES[r.law],
            r.model,
            str(r.n_points),
            r.parameter,
            number(r.value, 4),
            interval(r.ci_low, r.ci_high, number),
        ]
        for r in all_runs.itertuples()
    ]
    html = table(["law", "model", "runs", "parameter", "value", "95% CI"], rows, "scaling-fits")
    oracle = runs["oracle_loss"].dropna()
    if len(oracle):
        html += note(
            f"The data's oracle loss on D_eval (the Bayes-optimal loss, a floor no model can "
            f"beat) is {number(oracle.mean(), 4)}; a fitted E below it is an extrapolation "
            "artefact, well above it says the models are far from the data's entropy."
        )
    few = all_runs.groupby(["law", "model"])["n_points"].first()
    tight = [f"{law} {model}" for (law, model), n in few.items() if n <= len(_names(law))]
    if tight:
        html += note(
            f"{', '.join(tight)}: as many runs as parameters, so the law interpolates them and "
            "the bootstrap interval is not informative; add seeds or token budgets."
        )
    vanished = [
        f"{r.parameter} of {LAW_NAMES[r.law]} ({r.model})"
        for r in all_runs.itertuples()
        if r.parameter in ("E", "A", "B") and r.value < 1e-6 * runs["loss"].min()
    ]
    if vanished:
        html += note(
            f"Fitted at ~0: {'; '.join(vanished)}. A vanishing E means the runs show no loss "
            "floor yet (E is not identified: more tokens would be needed); a vanishing A, "
            "that larger models were not better at these budgets (under-trained)."
        )
    return html + note("Intervals: 95% percentile bootstrap over runs (refit per resample).")


def _runs_html(runs: pd.DataFrame) -> str:
    rows = [
        [
            r.model,
            number(r.N),
            number(r.D),
            str(r.seed),
            number(r.loss, 4),
            number(r.perplexity, 4),
            "yes" if r.held_out else "",
        ]
        for r in runs.sort_values(["N", "D", "seed"]).itertuples()
    ]
    header = ["model", "N (non-embedding)", "D (tokens)", "seed", "loss", "perplexity"]
    return table([*header, "held out"], rows, "scaling-runs-table")


# ---- figure ------------------------------------------------------------------------------


def _loss_figure(runs, fits, holdout, form: str) -> Figure:
    """Loss vs D per model size: runs, the law fitted without the held-out point (or on
    every run when nothing is held out) and the held-out prediction."""
    figure = Figure(figsize=(7.5, 4.2), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    fitted_on = "holdout" if (fits["fitted_on"] == "holdout").any() else "all"
    sizes = runs.groupby("model")["N"].first().sort_values()
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.85, len(sizes)))
    held_column = "held_out_joint" if form == "joint" else "held_out"
    for (model, n), colour in zip(sizes.items(), colours, strict=True):
        points = runs[runs["model"] == model]
        scope = "all" if form == "joint" else model
        rows = fits[(fits["law"] == form) & (fits["model"] == scope)]
        rows = rows[rows["fitted_on"] == fitted_on]
        held = points[held_column]
        ax.scatter(points["D"][~held], points["loss"][~held], color=colour, s=18, alpha=0.8)
        label = f"{model} (N = {number(n)})"
        if rows.empty:  # the joint law's fit is drawn for every size; this one has none
            continue
        params = dict(zip(rows["parameter"], rows["value"], strict=True))
        fitted_max = points["D"][~held].max()
        inside = np.geomspace(points["D"].min(), fitted_max, 100)
        ax.plot(inside, laws.predict(params, inside, n), color=colour, lw=1.4, label=label)
        if held.any():
            beyond = np.geomspace(fitted_max, points["D"].max(), 30)
            ax.plot(beyond, laws.predict(params, beyond, n), color=colour, lw=1.4, ls=":")
            ax.scatter(
                points["D"][held], points["loss"][held], color=colour, marker="*", s=120,
                edgecolor="black", linewidth=0.6, zorder=3,
            )  # fmt: skip
    for r in holdout[holdout["law"] == form].itertuples():
        ax.errorbar(
            r.D, r.predicted, yerr=[[r.predicted - r.ci_low], [r.ci_high - r.predicted]],
            fmt="o", mfc="white", color="black", ms=5, capsize=3, zorder=4,
        )  # fmt: skip
    oracle = runs["oracle_loss"].dropna()
    if len(oracle):
        ax.axhline(oracle.mean(), color="grey", lw=0.8, ls="--", label="oracle loss")
    ax.set_xscale("log")
    ax.set_xlabel("D: training tokens")
    ax.set_ylabel("eval loss (nats / token)")
    ax.legend(fontsize=7, frameon=False)
    return figure


def _caption(form: str, holdout: pd.DataFrame) -> str:
    if (holdout["law"] == form).any():
        return (
            "Dots: runs. Lines: the law fitted without the held-out configuration, dotted "
            "where it extrapolates. Stars: the held-out runs; open circles with bars: their "
            "predicted loss and 95% bootstrap interval. Dashed: the data's oracle loss."
        )
    return "Dots: runs. Lines: the law fitted on every run. Dashed: the data's oracle loss."


# ---- summary -----------------------------------------------------------------------------


def _summary(runs, fits, holdout, headline) -> dict:
    all_runs = fits[fits["fitted_on"] == "all"]
    fitted = {}
    for (law, model), rows in all_runs.groupby(["law", "model"], sort=False):
        fitted.setdefault(law, {})[model] = {
            r.parameter: {
                "value": r.value,
                "ci_low": _plain(r.ci_low),
                "ci_high": _plain(r.ci_high),
            }
            for r in rows.itertuples()
        }
    return {
        "runs": len(runs),
        "models": sorted(runs["model"].unique().tolist()),
        "token_budgets": sorted(int(b) for b in runs["budget"].unique()),
        "oracle_loss": _plain(runs["oracle_loss"].mean()),
        "holdout_relative_error": None if headline is None else headline["relative_error"],
        "holdout": headline,
        "holdout_predictions": [
            {key: _plain(value) for key, value in row.items()}
            for row in holdout.to_dict(orient="records")
        ],
        "fits": fitted,
    }


def _names(law: str) -> tuple[str, ...]:
    return laws.PARAMETERS[law]


def _plain(value):
    """numpy scalars and NaN as JSON-friendly values."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
