"""The report of a mixture sweep (``kind: mixtures``, ``divlab.experiments.mixtures``).

Sections: the chosen mixture's predicted vs realised target loss beside the best proxy and
the uniform mixture (mean and t-based 95% CI over seeds); the regressions' CV errors with
a plot of out-of-fold predicted vs observed loss over the proxies; the mixing laws; every
mixture's weights and losses.
"""

from __future__ import annotations

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


def sections(folder: Path, report_dir: Path) -> tuple[list[tuple[str, str, str]], dict]:
    figures_dir = report_dir / "figures"
    folder = Path(folder)
    if not (folder / "mixtures.parquet").exists():
        raise DataError(f"{folder} has no mixtures.parquet yet; run the experiment first")
    table = pd.read_parquet(folder / "mixtures.parquet")
    fits = read_json(folder / "mixtures.json")
    names = list(fits["domains"])
    figures_dir.mkdir(parents=True, exist_ok=True)

    arms = {
        "predicted": _realised(table[table.role == "predicted"]),
        "best_proxy": _realised(table[table.mixture == fits["best_proxy"]["mixture"]]),
        "uniform": _realised(table[table.role == "uniform"]),
    }
    predicted_loss = fits["chosen"]["predicted_loss"]
    summary = {
        "target": fits["target"],
        "predictor": fits["predictor"],
        "chosen_mixture": fits["chosen"]["weights"],
        "predicted_loss": predicted_loss,
        "realised_loss": arms["predicted"]["mean"],
        "realised_ci": [arms["predicted"]["ci_low"], arms["predicted"]["ci_high"]],
        "best_proxy_mixture": fits["best_proxy"]["weights"],
        "best_proxy_loss": arms["best_proxy"]["mean"],
        "uniform_loss": arms["uniform"]["mean"],
        "uniform_predicted_loss": fits["uniform_predicted_loss"],
        "cv_rmse": {k: v["cv_rmse"] for k, v in fits["regressions"].items()},
        "mean_baseline_cv_rmse": (fits.get("mean_baseline") or {}).get("cv_rmse"),
    }
    weights = {
        "predicted": fits["chosen"]["weights"],
        "best_proxy": fits["best_proxy"]["weights"],
        "uniform": {n: 1 / len(names) for n in names},
    }
    predictions = {
        "predicted": predicted_loss,
        "best_proxy": fits["best_proxy"]["predicted_loss"],
        "uniform": fits["uniform_predicted_loss"],
    }
    rows = [
        [
            label,
            ", ".join(f"{n} {weights[label][n]:.2f}" for n in names),
            number(predictions[label], 4),
            number(arms[label]["mean"], 4),
            interval(arms[label]["ci_low"], arms[label]["ci_high"], lambda v: number(v, 4)),
            str(arms[label]["n"]),
        ]
        for label in arms
    ]
    headline = (
        f"Target loss ({fits['target']}) of the mixture the {fits['predictor']} regression "
        f"chose: predicted <span id='predicted-loss' class='num'>{number(predicted_loss, 4)}"
        f"</span>, realised <span id='realised-loss' class='num'>"
        f"{number(arms['predicted']['mean'], 4)}</span>; best proxy "
        f"<span id='best-proxy-loss' class='num'>{number(arms['best_proxy']['mean'], 4)}</span>, "
        f"uniform <span id='uniform-loss' class='num'>{number(arms['uniform']['mean'], 4)}</span>."
    )
    best = (
        f"<p>{headline}</p>"
        + page.table(
            ["mixture", "weights", "predicted", "realised (mean)", "95% CI", "seeds"],
            rows,
            "best-mixture-table",
        )
        + page.note("Realised: mean over seeds of runs at the proxies' token budget.")
    )

    regression_rows = [
        [
            name,
            fit["cv"],
            number(fit["cv_rmse"], 3),
            number(fit["cv_mae"], 3),
            number(fit["r2"], 3),
            "chosen" if name == fits["predictor"] else "",
        ]
        for name, fit in fits["regressions"].items()
    ]
    baseline = fits.get("mean_baseline")
    if baseline:
        regression_rows.append(
            [
                "mean (baseline)",
                baseline["cv"],
                number(baseline["cv_rmse"], 3),
                number(baseline["cv_mae"], 3),
                "0",
                "",
            ]
        )
    regressions = page.table(
        ["regression", "CV", "CV RMSE", "CV MAE", "in-sample R^2", ""],
        regression_rows,
        "regression-table",
    )
    chosen_rmse = fits["regressions"][fits["predictor"]]["cv_rmse"]
    if baseline and chosen_rmse >= 0.95 * baseline["cv_rmse"]:  # within 5 %: no skill
        regressions += page.note(
            f"The chosen regression predicts held-out proxies hardly better than their mean "
            f"(CV RMSE {number(chosen_rmse, 3)} vs {number(baseline['cv_rmse'], 3)}): at "
            "this size the mixture explains less of the loss than seed noise does, so the "
            "chosen mixture is not better supported than the uniform one. More proxies, "
            "seeds or tokens would help."
        )
    regressions += page.figures(
        [_cv_figure(fits, figures_dir), _weights_figure(table, names, fits, figures_dir)]
    )

    law_rows = [
        [
            domain,
            number(law["c"], 4),
            number(law["k"], 4),
            ", ".join(f"{n} {law['t'][n]:.2f}" for n in names),
            number(law["rmse"], 3),
        ]
        for domain, law in fits["laws"].items()
    ]
    laws = (
        page.table(["eval domain", "c", "k", "t (sum 0)", "fit RMSE"], law_rows, "law-table")
        + page.note(
            "L_i(r) = c_i + k_i exp(t_i . r), gauge sum_j t_ij = 0: L_i(uniform) = c_i + k_i."
        )
        if law_rows
        else page.note("No mixing-law fits (disabled, or too few mixtures for its parameters).")
    )

    means = table.groupby(["role", "mixture"], sort=False).mean(numeric_only=True).reset_index()
    mixture_rows = [
        [r["role"], r["mixture"]]
        + [f"{r[f'w_{n}']:.3f}" for n in names]
        + [number(r["target"], 4)]
        + [number(r[f"loss_{n}"], 4) for n in names]
        for _, r in means.iterrows()
    ]
    mixtures = page.table(
        ["role", "mixture", *[f"w {n}" for n in names], "target", *[f"loss {n}" for n in names]],
        mixture_rows,
        "mixtures-table",
    )
    return [
        ("Best mixture", best, "best-mixture"),
        ("Regressions", regressions, "regressions"),
        ("Data-mixing laws", laws, "laws"),
        ("Mixtures", mixtures, "mixtures"),
    ], summary


def _realised(rows: pd.DataFrame) -> dict:
    return stats.mean_ci(rows["target"].to_numpy(float))


def _cv_figure(fits: dict, folder: Path):
    regressions = fits["regressions"]
    observed = np.asarray(fits["observed"])
    with _style():
        figure = Figure(figsize=(3.2 * len(regressions), 3.2), layout="constrained")
        axes = figure.subplots(1, len(regressions), squeeze=False)[0]
        # One shared window around the observed losses: a regression whose out-of-fold
        # predictions leave it (a diverged fit) is drawn at the edge, as a triangle.
        pad = 0.25 * max(np.ptp(observed), 1e-3)
        low, high = observed.min() - pad, observed.max() + pad
        for ax, (name, fit) in zip(axes, regressions.items(), strict=True):
            predicted = np.asarray(fit["cv_predictions"], float)
            inside = (predicted >= low) & (predicted <= high)
            ax.scatter(observed[inside], predicted[inside], s=18)
            if not inside.all():
                clipped = np.clip(predicted[~inside], low, high)
                ax.scatter(observed[~inside], clipped, s=30, marker="^", color="tab:red")
            ax.plot([low, high], [low, high], color="grey", lw=0.8)
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
            ax.set_title(f"{name}: CV RMSE {number(fit['cv_rmse'], 3)}")
            ax.set_xlabel("observed target loss")
            ax.set_ylabel("out-of-fold prediction")
    return save_figure(
        figure,
        folder,
        "mixtures-cv",
        "Predicted vs observed loss over the proxies",
        "Each point is one proxy mixture (mean over seeds), predicted by a model fitted "
        "without it; the line is y = x; red triangles: predictions outside the window "
        "(drawn at its edge).",
        wide=True,
    )


def _weights_figure(table: pd.DataFrame, names: list[str], fits: dict, folder: Path):
    means = table.groupby(["role", "mixture"], sort=False).mean(numeric_only=True).reset_index()
    with _style():
        figure = Figure(figsize=(3.2 * len(names), 3.2), layout="constrained")
        axes = figure.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names, strict=True):
            for role, marker in (("proxy", "o"), ("predicted", "*"), ("uniform", "s")):
                rows = means[means.role == role]
                ax.scatter(rows[f"w_{name}"], rows[f"loss_{name}"], marker=marker, label=role, s=24)
            law = fits["laws"].get(name)
            if law:
                ax.set_title(f"domain {name}: c {number(law['c'], 3)}, t_own {law['t'][name]:.2f}")
            else:
                ax.set_title(f"domain {name}")
            ax.set_xlabel(f"weight of {name}")
            ax.set_ylabel(f"eval loss on {name}")
        axes[0].legend(fontsize=7)
    return save_figure(
        figure,
        folder,
        "mixtures-domains",
        "Each domain's loss against its weight",
        "Per-domain eval loss (mean over seeds) of every mixture against the domain's weight.",
        wide=True,
    )


def _style():
    return matplotlib.rc_context(STYLE)
