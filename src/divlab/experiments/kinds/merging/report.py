"""The report of a merging experiment (``divlab.experiments.merging``; BRIEF section 8).

The question (Na et al. 2024): does the perplexity of the parameter average of a
mixture's partition models predict the perplexity of the model trained on the mixture?
Over every (seed, mixture, eval set) point with a trained mixture model:

* Pearson r and Spearman rho of merge perplexity vs mixture-model perplexity, with 95%
  percentile-bootstrap CIs (``divlab.report.stats.correlation``);
* the same for two baselines: the mean perplexity of the mixture's partition models, and
  the seed model's perplexity (which only knows the eval set, not the mixture);
* rank agreement per (seed, eval set): Spearman rho over the mixtures between each
  predictor and the mixture models, and whether the mixture with the lowest predicted
  perplexity is the one with the lowest trained perplexity (top-1 agreement).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from divlab.errors import DataError
from divlab.report import stats
from divlab.report.figures import DPI, STYLE, save_figure
from divlab.report.formatting import fixed, interval, number, pearson_text, spearman_text
from divlab.report.page import figures, note, table

TARGET = "mixture_perplexity"
PREDICTORS = {
    "merge": ("merge_perplexity", "merged model (parameter average)"),
    "component_mean": ("component_mean_perplexity", "mean of component perplexities"),
    "seed_model": ("seed_perplexity", "seed model"),
}
AXIS_LABELS = {
    "merge": "merged model perplexity",
    "component_mean": "mean perplexity of the partition models",
    "seed_model": "seed model perplexity",
}


def analyse(points: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Correlations of each predictor with the mixture-trained models' perplexity and the
    rank agreement per (seed, eval set), from a ``merging.parquet`` table (rows whose
    mixture was not trained are ignored)."""
    missing = {TARGET, "trained", "seed", "eval_set", "mixture"} - set(points.columns)
    missing |= {column for column, _ in PREDICTORS.values()} - set(points.columns)
    if missing:
        raise DataError(f"the merging table lacks columns {sorted(missing)}")
    trained = points[points["trained"].astype(bool)]
    correlations = {
        name: stats.correlation(trained[column], trained[TARGET], n_boot=n_boot, seed=seed)
        for name, (column, _) in PREDICTORS.items()
    }
    ranks = []
    for (run_seed, eval_set), group in trained.groupby(["seed", "eval_set"], sort=True):
        row = {"seed": int(run_seed), "eval_set": eval_set, "n_mixtures": len(group)}
        best = group["mixture"].iloc[int(np.argmin(group[TARGET].to_numpy()))]
        for name in ("merge", "component_mean"):
            column = PREDICTORS[name][0]
            row[f"{name}_rho"] = stats.correlation(group[column], group[TARGET], n_boot=0)[
                "spearman_rho"
            ]
            predicted = group["mixture"].iloc[int(np.argmin(group[column].to_numpy()))]
            row[f"{name}_top1"] = bool(predicted == best)
        ranks.append(row)
    return {
        "n_points": len(trained),
        "n_mixtures": int(points["mixture"].nunique()),
        "n_trained": int(trained["mixture"].nunique()),
        "correlations": correlations,
        "rank_agreement": ranks,
        "mean_rank_rho": {
            name: _nanmean([r[f"{name}_rho"] for r in ranks])
            for name in ("merge", "component_mean")
        },
        "top1_agreement": {
            name: _nanmean([float(r[f"{name}_top1"]) for r in ranks])
            for name in ("merge", "component_mean")
        },
    }


def _nanmean(values) -> float:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def sections(folder: Path, report_dir: Path) -> tuple[list[tuple[str, str, str]], dict]:
    figures_dir = report_dir / "figures"
    path = Path(folder) / "merging.parquet"
    if not path.exists():
        raise DataError(f"{folder} has no merging.parquet yet; run the experiment first")
    points = pd.read_parquet(path)
    result = analyse(points)
    figures_dir.mkdir(parents=True, exist_ok=True)
    drawn = [_scatter_figure(points, result, figures_dir)] if result["n_points"] else []
    out = [
        ("Merged vs mixture-trained models", _headline(result), "headline"),
        ("Predictors of the mixture model's perplexity", _predictor_table(result), "predictors"),
        ("Figures", figures(drawn), "figures"),
        ("Rank agreement per eval set", _rank_table(result), "rank-agreement"),
        ("Perplexity per mixture and eval set", _points_table(points), "mixtures"),
    ]
    return out, _summary(result)


def _headline(result: dict) -> str:
    merge = result["correlations"]["merge"]
    if not np.isfinite(merge["pearson_r"]):
        return note(
            f"No correlation: {merge['reason'] or 'too few trained mixtures'} "
            f"({result['n_points']} (mixture, eval set) points with a trained mixture model)."
        )
    parts = [
        f"<p>Over <span id='n-points' class='num'>{result['n_points']}</span> "
        f"(seed, mixture, eval set) points ({result['n_trained']} trained of "
        f"{result['n_mixtures']} merged mixtures), the merged model's perplexity against the "
        f"mixture-trained model's: Pearson r = <span id='merge-pearson' class='num'>"
        f"{fixed(merge['pearson_r'])}</span> {_ci(merge, 'pearson')}, Spearman rho = "
        f"<span id='merge-spearman' class='num'>{fixed(merge['spearman_rho'])}</span> "
        f"{_ci(merge, 'spearman')}.</p>"
    ]
    baselines = []
    for name in ("component_mean", "seed_model"):
        corr = result["correlations"][name]
        baselines.append(
            f"{PREDICTORS[name][1]}: r = <span id='{name.replace('_', '-')}-pearson'>"
            f"{fixed(corr['pearson_r'])}</span>, rho = "
            f"<span id='{name.replace('_', '-')}-spearman'>{fixed(corr['spearman_rho'])}</span>"
        )
    parts.append(f"<p>Baselines: {'; '.join(baselines)}.</p>")
    return "\n".join(parts)


def _ci(corr: dict, which: str) -> str:
    text = interval(corr[f"{which}_ci_low"], corr[f"{which}_ci_high"])
    return f"(95% CI {text})" if text else ""


def _predictor_table(result: dict) -> str:
    rows = []
    for name, (_, label) in PREDICTORS.items():
        corr = result["correlations"][name]
        rows.append(
            [label, corr["n"], pearson_text(corr), spearman_text(corr), corr["reason"] or ""]
        )
    header = ["predictor", "points", "Pearson r", "Spearman rho", "note"]
    return table(header, rows, "predictor-table")


def _rank_table(result: dict) -> str:
    rows = [
        [
            r["seed"],
            r["eval_set"],
            r["n_mixtures"],
            fixed(r["merge_rho"]),
            "yes" if r["merge_top1"] else "no",
            fixed(r["component_mean_rho"]),
            "yes" if r["component_mean_top1"] else "no",
        ]
        for r in result["rank_agreement"]
    ]
    if not rows:
        return note("No trained mixtures, so no rank agreement.")
    header = ["seed", "eval set", "mixtures", "merge rho", "merge top-1",
              "component mean rho", "component mean top-1"]  # fmt: skip
    mean = result["mean_rank_rho"]
    top1 = result["top1_agreement"]
    text = note(
        f"Spearman rho over the trained mixtures of one eval set (n/a below 3 mixtures); "
        f"top-1: the predicted best mixture is the trained best. Mean rho: merge "
        f"{fixed(mean['merge'])}, component mean {fixed(mean['component_mean'])}; top-1 "
        f"agreement: merge {fixed(top1['merge'])}, component mean "
        f"{fixed(top1['component_mean'])}."
    )
    return table(header, rows, "rank-table") + text


def _points_table(points: pd.DataFrame) -> str:
    rows = [
        [
            int(p.seed),
            p.mixture,
            p.eval_set,
            number(p.merge_perplexity, 4),
            number(p.mixture_perplexity, 4) if p.trained else "not trained",
            number(p.component_mean_perplexity, 4),
            number(p.seed_perplexity, 4),
        ]
        for p in points.itertuples()
    ]
    header = ["seed", "mixture", "eval set", "merge", "mixture model", "component mean", "seed"]
    return table(header, rows, "mixture-table") + note(
        "Perplexities (exp of the mean nats per token) on each eval set's documents."
    )


def _scatter_figure(points: pd.DataFrame, result: dict, folder: Path):
    """One panel per predictor: predicted (x) vs mixture-trained (y) perplexity."""
    trained = points[points["trained"].astype(bool)]
    eval_sets = sorted(trained["eval_set"].unique(), key=lambda e: (e != "all", e))
    colours = matplotlib.colormaps["tab10"]
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(11, 3.6), dpi=DPI, layout="constrained")
        axes = figure.subplots(1, len(PREDICTORS), sharey=True)
        for ax, (name, (column, label)) in zip(axes, PREDICTORS.items(), strict=True):
            for k, eval_set in enumerate(eval_sets):
                chosen = trained[trained["eval_set"] == eval_set]
                ax.scatter(chosen[column], chosen[TARGET], s=18, color=colours(k % 10),
                           label=eval_set)  # fmt: skip
            low = float(np.nanmin([trained[column].min(), trained[TARGET].min()]))
            high = float(np.nanmax([trained[column].max(), trained[TARGET].max()]))
            ax.plot([low, high], [low, high], color="0.6", lw=0.8, ls="--")  # y = x
            corr = result["correlations"][name]
            ax.set_title(f"{label}\nr = {fixed(corr['pearson_r'])}, "
                         f"rho = {fixed(corr['spearman_rho'])}")  # fmt: skip
            ax.set_xlabel(AXIS_LABELS[name])
        axes[0].set_ylabel("mixture-trained model perplexity")
        axes[-1].legend(title="eval set", fontsize=7)
        return save_figure(
            figure,
            folder,
            "merge-vs-mixture",
            "Predicted vs mixture-trained perplexity",
            "Each point is one (seed, mixture, eval set); dashed: y = x. Left: the parameter "
            "average of the mixture's partition models; middle and right: the baselines.",
            wide=True,
        )


def _summary(result: dict) -> dict:
    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    return {
        "n_points": result["n_points"],
        "n_mixtures": result["n_mixtures"],
        "n_trained": result["n_trained"],
        "correlations": {
            name: {k: clean(v) for k, v in corr.items()}
            for name, corr in result["correlations"].items()
        },
        "rank_agreement": [{k: clean(v) for k, v in r.items()} for r in result["rank_agreement"]],
        "mean_rank_rho": {k: clean(v) for k, v in result["mean_rank_rho"].items()},
        "top1_agreement": {k: clean(v) for k, v in result["top1_agreement"].items()},
    }
