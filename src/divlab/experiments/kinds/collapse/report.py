"""The report of a model-collapse experiment (``kind: collapse``).

* **Language-model recursion** (``collapse.parquet``): per arm (share of real data kept)
  and generation, the mean over seeds with a t-based 95 % CI (``stats.mean_ci``; none
  with one seed) of the eval loss on the original eval set, the gap to the oracle, and
  the measures of the corpus the generation trained on (diversity coefficient, tail
  mass, concepts covered, concept entropy). Figure: each metric vs generation, a line
  per arm (band: the 95 % CI from 3 seeds on, the seeds' range with 2).
* **Analytic chains** (``collapse_gaussian.parquet``, ``collapse_discrete.parquet``,
  ``collapse_absorption.parquet``): each statistic's mean over chains with its normal
  95 % CI (band) and its exact expectation (dashed), and the discrete chain's absorption
  shares beside ``q_i``.

``summary.json`` holds per arm the per-generation means (``lm.arms.<arm>.<metric>``, a
list indexed by generation) and ``loss_last`` / ``loss_first``; per chain the last
generation's statistics with their exact values.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from divlab.errors import DataError
from divlab.experiments.kinds.collapse.spec import TABLES
from divlab.report import page, stats
from divlab.report.figures import STYLE, save_figure
from divlab.report.formatting import interval, number

LM_METRICS = {
    "loss": "eval loss (nats/token)",
    "gap": "gap to the oracle (nats/token)",
    "diversity": "diversity coefficient of the corpus",
    "tail_mass": "tail mass of the corpus",
    "concepts_covered": "concepts covered",
    "concept_entropy": "concept entropy (nats)",
}
GAUSSIAN = {
    "variance": "variance s_n^2",
    "std": "std s_n",
    "mean_error": "(mu_n - mu)^2",
    "w2": "W2^2 to the original",
}
DISCRETE = {
    "gini_simpson": "Gini-Simpson diversity",
    "support": "support size",
    "tail_mass": "tail mass",
    "tail_lost": "share of chains with no tail left",
    "absorbed": "share of chains absorbed",
}


def sections(folder: Path, report_dir: Path) -> tuple[list[tuple[str, str, str]], dict]:
    figures_dir = report_dir / "figures"
    folder = Path(folder)
    if not any((folder / name).exists() for name in TABLES.values()):
        raise DataError(f"{folder} has no collapse tables yet; run the experiment first")
    figures_dir.mkdir(parents=True, exist_ok=True)
    out, summary = [], {}
    with matplotlib.rc_context(STYLE):
        if (folder / TABLES["lm"]).exists():
            html, summary["lm"] = _lm_section(pd.read_parquet(folder / TABLES["lm"]), figures_dir)
            out.append(("Language-model recursion", html, "lm"))
        if (folder / TABLES["gaussian"]).exists():
            frame = pd.read_parquet(folder / TABLES["gaussian"])
            html, summary["gaussian"] = _chain_section(frame, "gaussian", GAUSSIAN, figures_dir)
            out.append(("Gaussian chain", html, "gaussian"))
        if (folder / TABLES["discrete"]).exists():
            frame = pd.read_parquet(folder / TABLES["discrete"])
            html, summary["discrete"] = _chain_section(frame, "discrete", DISCRETE, figures_dir)
            absorption = folder / TABLES["absorption"]
            if absorption.exists():
                extra, summary["discrete"]["absorption"] = _absorption(pd.read_parquet(absorption))
                html += extra
            out.append(("Discrete chain", html, "discrete"))
    return out, summary


# ---- the LM recursion -------------------------------------------------------------------
def lm_means(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, generation, metric): mean, t-based CI, n, min and max over seeds."""
    rows = []
    for (arm, fraction, generation), group in table.groupby(
        ["arm", "real_fraction", "generation"], sort=True
    ):
        for metric in LM_METRICS:
            values = pd.to_numeric(group[metric], errors="coerce").to_numpy(float)
            rows.append(
                {
                    "arm": arm,
                    "real_fraction": fraction,
                    "generation": generation,
                    "metric": metric,
                    **stats.mean_ci(values),
                    "min": np.nanmin(values) if np.isfinite(values).any() else np.nan,
                    "max": np.nanmax(values) if np.isfinite(values).any() else np.nan,
                }
            )
    return pd.DataFrame(rows).sort_values(["real_fraction", "generation"], kind="stable")


def _lm_section(table: pd.DataFrame, figures_dir: Path) -> tuple[str, dict]:
    means = lm_means(table)
    arms = table.drop_duplicates("arm").sort_values("real_fraction")[["arm", "real_fraction"]]
    summary = {
        "generations": int(table.generation.max()) + 1,
        "seeds": sorted(table.seed.unique().tolist()),
        "arms": {},
    }
    headline = []
    for arm, fraction in arms.itertuples(index=False):
        own = means[means.arm == arm]
        entry = {"real_fraction": float(fraction)}
        for metric in LM_METRICS:
            series = own[own.metric == metric].sort_values("generation")["mean"]
            entry[metric] = [_plain(v) for v in series]
        entry["loss_first"], entry["loss_last"] = entry["loss"][0], entry["loss"][-1]
        summary["arms"][arm] = entry
        headline.append(
            f"real fraction {fraction:g}: loss {_span(f'lm-loss-first-{arm}', entry['loss_first'])}"
            f" at generation 0, {_span(f'lm-loss-last-{arm}', entry['loss_last'])} at generation "
            f"{summary['generations'] - 1}"
        )
    figure = save_figure(
        _lm_figure(means, arms),
        figures_dir,
        "lm-metrics",
        "Metrics vs generation",
        "Each generation trains on a corpus sampled from the previous one, keeping the listed "
        "share of real documents; loss and gap on the original eval set, the other panels "
        "measure the corpus the generation trained on (mean over seeds; band = t-based 95% CI "
        "over seeds, or their min..max with 2 seeds).",
        wide=True,
    )
    rows = []
    for (arm, generation), group in means.groupby(["arm", "generation"], sort=False):
        cells = [arm, str(generation), str(int(group["n"].max()))]
        for metric in LM_METRICS:
            row = group[group.metric == metric].iloc[0]
            cells.append(_with_ci(row))
        rows.append(cells)
    html = (
        "<p>"
        + "; ".join(headline)
        + ".</p>"
        + page.figures([figure])
        + page.table(["arm", "generation", "seeds", *LM_METRICS.values()], rows, "lm-table")
        + page.note(
            "Tail mass: share of the corpus's tokens on the real corpus's rarest symbols "
            "(together at most the tail quantile of its tokens). Concepts: each document "
            "assigned the training concept of highest HMM likelihood."
        )
    )
    return html, summary


def _lm_figure(means: pd.DataFrame, arms: pd.DataFrame) -> Figure:
    figure = Figure(figsize=(12, 6.4), layout="constrained")
    axes = figure.subplots(2, 3).ravel()
    colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.85, max(len(arms), 2)))
    for ax, (metric, label) in zip(axes, LM_METRICS.items(), strict=True):
        for colour, (arm, fraction) in zip(colours, arms.itertuples(index=False), strict=False):
            own = means[(means.arm == arm) & (means.metric == metric)].sort_values("generation")
            if own["mean"].isna().all():
                continue
            ax.plot(own.generation, own["mean"], "o-", color=colour, lw=1.4, ms=3,
                    label=f"real {fraction:g}")  # fmt: skip
            if (own["n"] > 1).any():
                # the t-interval from 3 seeds on; with 2 it is ~18 SDs wide: their range
                wide = own["n"] < 3
                low = np.where(wide, own["min"], own["ci_low"])
                high = np.where(wide, own["max"], own["ci_high"])
                ax.fill_between(own.generation, low, high, color=colour, alpha=0.2, lw=0)
        ax.set_xlabel("generation")
        ax.set_ylabel(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=7, title="kept real data", title_fontsize=7)
    return figure


# ---- the analytic chains ----------------------------------------------------------------
def _chain_section(frame: pd.DataFrame, name: str, metrics: dict, figures_dir: Path):
    last = frame.iloc[-1]
    generation = int(last.generation)
    figure = save_figure(
        _chain_figure(frame, metrics),
        figures_dir,
        name,
        f"{name.capitalize()} chain: statistics vs generation",
        "Mean over chains (band = 95% CI) and the exact expectation (dashed) where one is known.",
        wide=True,
    )
    rows, spans, summary = [], [], {"generations": generation, "last": {}}
    for stat, label in metrics.items():
        exact = last.get(f"{stat}_exact")
        exact = None if exact is None or pd.isna(exact) else float(exact)
        entry = {key: float(last[f"{stat}_{key}"]) for key in ("mean", "se", "ci_low", "ci_high")}
        entry["exact"] = exact
        summary["last"][stat] = entry
        z = (entry["mean"] - exact) / entry["se"] if exact is not None and entry["se"] > 0 else None
        rows.append(
            [
                label,
                number(entry["mean"], 4),
                interval(entry["ci_low"], entry["ci_high"], lambda v: number(v, 4)),
                number(exact, 4),
                number(z, 2),
            ]
        )
        exact_text = f" (exact {number(exact, 4)})" if exact is not None else ""
        spans.append(f"{escape(label)} {_span(f'{name}-{stat}-last', entry['mean'])}{exact_text}")
    header = ["statistic", "simulated mean", "95% CI", "exact", "z = (mean - exact) / se"]
    html = (
        f"<p>After {generation} fits: " + "; ".join(spans) + ".</p>"
        + page.figures([figure])
        + page.table(header, rows, f"{name}-table")
    )  # fmt: skip
    return html, summary


def _chain_figure(frame: pd.DataFrame, metrics: dict) -> Figure:
    figure = Figure(figsize=(2.9 * len(metrics) + 0.4, 3.4), layout="constrained")
    axes = figure.subplots(1, len(metrics))
    for ax, (stat, label) in zip(axes, metrics.items(), strict=True):
        ax.plot(frame.generation, frame[f"{stat}_mean"], color="C0", lw=1.4, label="simulated")
        ax.fill_between(frame.generation, frame[f"{stat}_ci_low"], frame[f"{stat}_ci_high"],
                        color="C0", alpha=0.25, lw=0)  # fmt: skip
        if f"{stat}_exact" in frame:
            ax.plot(frame.generation, frame[f"{stat}_exact"], "k--", lw=1, label="exact")
        ax.set_xlabel("generation (fits)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    return figure


def _absorption(frame: pd.DataFrame) -> tuple[str, list[dict]]:
    rows = [
        [str(int(r.state)), number(r.q_exact, 4), number(r.absorbed, 4),
         number(r.absorbed_se, 2), number(r.absorbed_given_absorbed, 4)]
        for r in frame.itertuples()
    ]  # fmt: skip
    chains, absorbed = int(frame.chains.iloc[0]), int(frame.chains_absorbed.iloc[0])
    html = page.note(
        f"Absorption: {absorbed} of {chains} chains ended in a delta; the chain is absorbed at "
        "state i with probability q_i = p_0[i]."
    ) + page.table(
        ["state", "q_i (exact)", "absorbed there (all chains)", "se", "among absorbed chains"],
        rows,
        "absorption-table",
    )
    records = frame[["state", "q_exact", "absorbed", "absorbed_se"]].to_dict("records")
    return html, records


# ---- formatting -------------------------------------------------------------------------
def _plain(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _span(id_: str, value, digits: int = 4) -> str:
    return f"<span class='num' id='{escape(id_)}'>{number(value, digits)}</span>"


def _with_ci(row) -> str:
    text = number(row["mean"], 4)
    ci = interval(row["ci_low"], row["ci_high"], lambda v: number(v, 3))
    return f"{text} {ci}" if ci else text
