"""The report of a model-collapse experiment (``kind: collapse``).

* **Language-model recursion** (``collapse.parquet``): per arm (a workflow; replace's
  arms by the share of real data kept) and generation, the mean over seeds with a t-based
  95 % CI (``stats.mean_ci``; none with one seed) of the eval loss on the original eval
  set, the gap to the oracle, and the measures of the data the generation trained on
  (tail mass, concepts covered, concept entropy, Task2Vec, Vendi, distinct-n,
  compression); a second figure measures the corpus newly sampled for each generation.
  The verdict (:func:`lm_verdict`) comes from seed-paired t-intervals: each arm's loss
  change from generation 0 (one run per seed, shared) to the last, and its difference
  from the replace arm without real data at the last generation; none below 3 seeds.
* **Analytic chains** (``collapse_gaussian.parquet``, ``collapse_regression.parquet``,
  ``collapse_discrete.parquet``, ``collapse_absorption.parquet``): per workflow, each
  statistic's mean over chains with its normal 95 % CI (band) and its exact expectation
  (dashed) where one is known, with the largest |z| over generations; the discrete
  chain's absorption shares beside ``q_i``.

``summary.json`` holds per arm the per-generation means (``lm.arms.<arm>.<metric>``, a
list indexed by generation) and ``loss_last`` / ``loss_first``, ``loss_changes`` and
``verdict``; per chain and workflow the last generation's statistics with their exact
values (``<chain>.workflows.<workflow>``; ``<chain>.last``: the first workflow's).
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
from divlab.report.formatting import finite, interval, number, with_ci

LM_METRICS = {
    "loss": "eval loss (nats/token)",
    "gap": "gap to the oracle (nats/token)",
    "tail_mass": "tail mass of the corpus",
    "concepts_covered": "concepts covered",
    "concept_entropy": "concept entropy (nats)",
    "diversity": "Task2Vec diversity of the corpus",
    "vendi_ngram": "Vendi score (bigrams) of the corpus",
    "distinct_n": "distinct-n (n = 1..4) of the corpus",
    "compression_ratio": "compression ratio of the corpus (higher: less diverse)",
}
# the corpus newly sampled for each generation (generation 0: the real one); for the
# accumulating arms this is what the models wrote, before it is diluted in the pool
GENERATED = {
    "generated_tail_mass": "tail mass of the newly sampled corpus",
    "generated_concept_entropy": "its concept entropy (nats)",
    "generated_vendi_ngram": "its Vendi score (bigrams)",
    "generated_diversity": "its Task2Vec diversity",
}
GAUSSIAN = {
    "variance": "variance s_n^2",
    "std": "std s_n",
    "mean_error": "(mu_n - mu)^2",
    "w2": "W2^2 to the original",
}
REGRESSION = {"test_error": "test error ||w_n - w*||^2"}
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
        if (folder / TABLES["regression"]).exists():
            frame = pd.read_parquet(folder / TABLES["regression"])
            html, summary["regression"] = _chain_section(
                frame, "regression", REGRESSION, figures_dir
            )
            out.append(("Linear-regression chain", html, "regression"))
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
def arm_order(table: pd.DataFrame) -> list[str]:
    """The arms in the order the experiment ran them (replace's, then accumulating)."""
    return list(dict.fromkeys(table.sort_values("generation", kind="stable").arm))


def lm_means(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, generation, metric): mean, t-based CI, n, min and max over seeds."""
    rows = []
    order = {arm: i for i, arm in enumerate(arm_order(table))}
    for (arm, generation), group in table.groupby(["arm", "generation"], sort=True):
        for metric in (*LM_METRICS, *GENERATED):
            if metric not in group:
                continue
            values = pd.to_numeric(group[metric], errors="coerce")
            values = values.to_numpy(float)
            finite = np.isfinite(values).any()
            rows.append(
                {
                    "arm": arm,
                    "workflow": group.workflow.iloc[0] if "workflow" in group else "replace",
                    "generation": generation,
                    "metric": metric,
                    **stats.mean_ci(values),
                    "min": np.nanmin(values) if finite else np.nan,
                    "max": np.nanmax(values) if finite else np.nan,
                }
            )
    frame = pd.DataFrame(rows)
    frame["_order"] = frame.arm.map(order)
    return frame.sort_values(["_order", "generation"], kind="stable").drop(columns="_order")


def loss_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Per arm: the change of eval loss from generation 0 to the last, paired by seed
    (generation 0 is one run per seed shared by the arms), with its t-based CI; and the
    last generation's loss minus the replace arm's without real data (``real0``, else the
    first replace arm), paired by seed."""
    last = table.generation.max()
    first = table[table.generation == 0].groupby("seed").loss.first()
    final = table[table.generation == last].pivot_table(index="seed", columns="arm", values="loss")
    replace = [a for a in arm_order(table) if a.startswith("real")]
    baseline = "real0" if "real0" in replace else (replace[0] if replace else None)
    rows = []
    for arm in arm_order(table):
        change = (final[arm] - first.reindex(final.index)).to_numpy(float)
        row = {"arm": arm, **{f"change_{k}": v for k, v in stats.mean_ci(change).items()}}
        if baseline is not None and arm != baseline:
            versus = (final[arm] - final[baseline]).to_numpy(float)
            row |= {f"versus_{k}": v for k, v in stats.mean_ci(versus).items()}
            row["baseline"] = baseline
        rows.append(row)
    return pd.DataFrame(rows)


def _ci_text(low: float, high: float) -> str:
    return interval(low, high, lambda v: number(v, 3)) or "n/a: one seed"


def _moved(mean: float, low: float, high: float) -> str:
    """``rose by 0.31 (95% CI ...)`` / ``fell ...`` / ``did not move detectably ...``."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return f"did not move detectably ({number(mean, 3)}, 95% CI {_ci_text(low, high)})"
    verb = "rose" if mean > 0 else "fell"
    return f"{verb} by {number(abs(mean), 3)} (95% CI {_ci_text(low, high)})"


def lm_verdict(table: pd.DataFrame) -> list[str]:
    """Plain words: a headline per accumulating arm against replace (:func:`arm_verdict`),
    then each arm's eval-loss change over the generations and its difference from the
    replace baseline at the last generation, all from seed-paired t-intervals."""
    changes = loss_changes(table)
    seeds = table.seed.nunique()
    last = int(table.generation.max())
    lines = []
    for row in changes.itertuples():
        text = f"{row.arm}: eval loss from generation 0 to {last} " + _moved(
            row.change_mean, row.change_ci_low, row.change_ci_high
        )
        if isinstance(getattr(row, "baseline", None), str):
            text += (
                f"; at generation {last} it is {number(row.versus_mean, 3)} nats/token against "
                f"{row.baseline} (95% CI {_ci_text(row.versus_ci_low, row.versus_ci_high)})"
            )
        lines.append(text + ".")
    headline = [
        f"At this scale, {row['arm']} {arm_verdict(row, row['baseline'])}."
        for row in changes.to_dict("records")
        if not row["arm"].startswith("real") and isinstance(row.get("baseline"), str)
    ]
    if seeds < 3:
        lines.append(
            f"Only {seeds} seed(s): no verdict is drawn (a t-interval over seeds needs 3 or more)."
        )
        headline = []
    if "accumulate" in set(table.get("workflow", ())):
        lines.append(
            "accumulate trains generation g on (g + 1) x the token budget (the same epochs over "
            "a growing pool); accumulate-fixed and accumulate-subsample spend replace's "
            "compute, so they separate the data from the compute."
        )
    return headline + lines


def arm_verdict(row: dict, baseline: str) -> str:
    """What a seed-paired loss change (``change_*``, generation 0 to the last) and the
    last generation's difference from ``baseline`` (``versus_*``) support, in words:

    * did not degrade: the change's CI lies at or below 0, or covers 0 while the arm
      ended below the baseline;
    * degraded more slowly than / more than the baseline: it rose, and the difference's
      CI lies below / above 0;
    * otherwise: we cannot tell it from the baseline."""
    change_low, change_high = row["change_ci_low"], row["change_ci_high"]
    versus_low, versus_high = row["versus_ci_low"], row["versus_ci_high"]
    if not all(np.isfinite([change_low, change_high, versus_low, versus_high])):
        return "cannot be judged (no interval: too few seeds)"
    below, above = versus_high < 0, versus_low > 0
    flat = change_low <= 0 <= change_high
    if change_high <= 0 or (flat and below):
        tail = f", and it ended below {baseline}" if below else ""
        return f"did not degrade: its loss did not rise{tail}"
    if above:
        return f"ended above {baseline}: it degraded more"
    if below:
        return f"degraded, but more slowly than {baseline} (it ended below it)"
    if flat:
        return f"showed no rise we can detect, but we cannot tell it from {baseline} either"
    return f"degraded, and we cannot tell it from {baseline} at this many seeds"


def _lm_section(table: pd.DataFrame, figures_dir: Path) -> tuple[str, dict]:
    means = lm_means(table)
    order = arm_order(table)
    workflows = table.drop_duplicates("arm").set_index("arm")
    summary = {
        "generations": int(table.generation.max()) + 1,
        "seeds": sorted(table.seed.unique().tolist()),
        "arms": {},
    }
    for arm in order:
        own = means[means.arm == arm]
        fraction = workflows.real_fraction.get(arm)
        entry = {
            "workflow": str(workflows.workflow.get(arm, "replace"))
            if "workflow" in workflows
            else "replace",
            "real_fraction": None if pd.isna(fraction) else float(fraction),
        }
        for metric in LM_METRICS:
            series = own[own.metric == metric].sort_values("generation")["mean"]
            entry[metric] = [finite(v) for v in series]
        entry["loss_first"], entry["loss_last"] = entry["loss"][0], entry["loss"][-1]
        summary["arms"][arm] = entry
    changes = loss_changes(table)
    summary["loss_changes"] = [
        {k: finite(v) if not isinstance(v, str) else v for k, v in row.items()}
        for row in changes.to_dict("records")
    ]
    verdict = lm_verdict(table)
    summary["verdict"] = verdict
    figure = save_figure(
        _lm_figure(means, order, LM_METRICS, 3),
        figures_dir,
        "lm-metrics",
        "Metrics vs generation, per workflow",
        "replace (real<f>): each generation trains on a corpus sampled from the previous "
        "model, keeping a share f of real documents; accumulate: on the real data plus every "
        "synthetic corpus so far (budget growing with the pool; -fixed: the same budget); "
        "accumulate-subsample: a fixed-size draw from that pool. Loss and gap on the original "
        "eval set; the other panels measure the data the generation trained on (mean over "
        "seeds; band = t-based 95% CI over seeds, or their min..max with 2 seeds).",
        wide=True,
    )
    figures = [figure]
    if (means.metric == "generated_tail_mass").any():
        figures.append(
            save_figure(
                _lm_figure(means, order, GENERATED, 4),
                figures_dir,
                "lm-generated",
                "What each generation's model wrote",
                "Measures of the corpus newly sampled for each generation (generation 0: the "
                "real corpus), before the accumulating arms dilute it in their pool; replace's "
                "real<f> arms include the real share they keep.",
                wide=True,
            )
        )
    rows = []
    for (arm, generation), group in means.groupby(["arm", "generation"], sort=False):
        cells = [arm, str(generation), str(int(group["n"].max()))]
        for metric in LM_METRICS:
            row = group[group.metric == metric].iloc[0]
            cells.append(_with_ci(row))
        rows.append(cells)
    spans = [
        f"{escape(arm)}: loss {_span(f'lm-loss-first-{arm}', summary['arms'][arm]['loss_first'])}"
        f" at generation 0, {_span(f'lm-loss-last-{arm}', summary['arms'][arm]['loss_last'])} "
        f"at generation {summary['generations'] - 1}"
        for arm in order
    ]
    html = (
        "<div class='verdict' id='lm-verdict'><ul>"
        + "".join(f"<li>{escape(line)}</li>" for line in verdict)
        + "</ul></div><p>"
        + "; ".join(spans)
        + ".</p>"
        + page.figures(figures)
        + page.table(["arm", "generation", "seeds", *LM_METRICS.values()], rows, "lm-table")
        + page.note(
            "Scale: these are tiny models on a small GINC corpus over a few generations, so "
            "a generation-0 model is itself undertrained; the papers' claims are about many "
            "generations of well-fit models. Tail mass: share of the corpus's tokens on the "
            "real corpus's rarest symbols (together at most the tail quantile of its tokens). "
            "Concepts: each document assigned the training concept of highest HMM "
            "likelihood. Vendi and distinct-n are taken on the same number of documents for "
            "every corpus."
        )
    )
    return html, summary


def _lm_figure(means: pd.DataFrame, order: list[str], metrics: dict, columns: int) -> Figure:
    rows = -(-len(metrics) // columns)
    figure = Figure(figsize=(3.6 * columns, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    colours = matplotlib.colormaps["tab10"](np.arange(max(len(order), 2)) % 10)
    for ax, (metric, label) in zip(axes, metrics.items(), strict=False):
        for colour, arm in zip(colours, order, strict=False):
            own = means[(means.arm == arm) & (means.metric == metric)].sort_values("generation")
            if own["mean"].isna().all():
                continue
            style = "o-" if arm.startswith("real") else "s--"
            ax.plot(own.generation, own["mean"], style, color=colour, lw=1.4, ms=3, label=arm)
            if (own["n"] > 1).any():
                # the t-interval from 3 seeds on; with 2 it is ~18 SDs wide: their range
                wide = own["n"] < 3
                low = np.where(wide, own["min"], own["ci_low"])
                high = np.where(wide, own["max"], own["ci_high"])
                ax.fill_between(own.generation, low, high, color=colour, alpha=0.15, lw=0)
        ax.set_xlabel("generation")
        ax.set_ylabel(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=7, title="arm", title_fontsize=7)
    return figure


# ---- the analytic chains ----------------------------------------------------------------
def _chain_section(frame: pd.DataFrame, name: str, metrics: dict, figures_dir: Path):
    """One analytic chain: per workflow (``replace`` where the table has none) the last
    generation's statistics beside their exact values, and the largest |z| over all
    generations (the simulator's check against the closed form)."""
    if "workflow" not in frame:
        frame = frame.assign(workflow="replace")
    flows = list(dict.fromkeys(frame.workflow))
    generation = int(frame.generation.max())
    figure = save_figure(
        _chain_figure(frame, metrics, flows),
        figures_dir,
        name,
        f"{name.capitalize()} chain: statistics vs generation"
        + (f", per workflow ({', '.join(flows)})" if len(flows) > 1 else ""),
        "Mean over chains (band = 95% CI) and the exact expectation (dashed) where one is "
        "known. replace: each fit on the last fit's samples; accumulate: on every sample so "
        "far; accumulate-subsample: on a fixed-size draw from them.",
        wide=True,
    )
    rows, spans, summary = [], [], {"generations": generation, "workflows": {}}
    for flow in flows:
        own = frame[frame.workflow == flow].sort_values("generation")
        last = own.iloc[-1]
        summary["workflows"][flow] = {}
        for stat, label in metrics.items():
            exact = last.get(f"{stat}_exact")
            exact = None if exact is None or pd.isna(exact) else float(exact)
            entry = {k: finite(last[f"{stat}_{k}"]) for k in ("mean", "se", "ci_low", "ci_high")}
            entry["exact"] = finite(exact)  # None where no closed form (or an infinite one)
            z = _z(own, stat)
            entry["max_abs_z"] = None if z is None else float(np.nanmax(np.abs(z)))
            summary["workflows"][flow][stat] = entry
            z_last = None if z is None else z[-1]
            rows.append(
                [
                    flow,
                    label,
                    number(entry["mean"], 4),
                    interval(entry["ci_low"], entry["ci_high"], lambda v: number(v, 4)),
                    number(exact, 4),
                    number(z_last, 2),
                    number(entry["max_abs_z"], 2),
                ]
            )
            exact_text = f" (exact {number(exact, 4)})" if exact is not None else ""
            key = f"{name}-{stat}-last" if flow == flows[0] else f"{name}-{flow}-{stat}-last"
            prefix = f"{flow}: " if len(flows) > 1 else ""
            spans.append(f"{prefix}{escape(label)} {_span(key, entry['mean'])}{exact_text}")
    summary["last"] = summary["workflows"][flows[0]]
    header = [
        "workflow",
        "statistic",
        "simulated mean",
        "95% CI",
        "exact",
        "z = (mean - exact) / se",
        "largest |z| over generations",
    ]
    html = (
        f"<p>After {generation} fits: " + "; ".join(spans) + ".</p>"
        + page.figures([figure])
        + page.table(header, rows, f"{name}-table")
    )  # fmt: skip
    return html, summary


def _z(frame: pd.DataFrame, stat: str) -> np.ndarray | None:
    """(mean - exact) / se per generation where both exist (None: no closed form)."""
    if f"{stat}_exact" not in frame:
        return None
    exact, se = frame[f"{stat}_exact"].to_numpy(float), frame[f"{stat}_se"].to_numpy(float)
    ok = np.isfinite(exact) & (se > 0)
    if not ok.any():
        return None
    z = np.full(len(frame), np.nan)
    z[ok] = (frame[f"{stat}_mean"].to_numpy(float)[ok] - exact[ok]) / se[ok]
    return z


def _chain_figure(frame: pd.DataFrame, metrics: dict, flows: list[str]) -> Figure:
    figure = Figure(figsize=(2.9 * len(metrics) + 0.8, 3.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(metrics)))
    for ax, (stat, label) in zip(axes, metrics.items(), strict=True):
        for i, flow in enumerate(flows):
            own = frame[frame.workflow == flow].sort_values("generation")
            colour = f"C{i}"
            ax.plot(own.generation, own[f"{stat}_mean"], color=colour, lw=1.4, label=flow)
            ax.fill_between(own.generation, own[f"{stat}_ci_low"], own[f"{stat}_ci_high"],
                            color=colour, alpha=0.25, lw=0)  # fmt: skip
            if f"{stat}_exact" in own and own[f"{stat}_exact"].notna().any():
                ax.plot(own.generation, own[f"{stat}_exact"], "--", color="k", lw=0.9)
        ax.set_xlabel("generation (fits)")
        ax.set_ylabel(label)
    axes[0].plot([], [], "k--", lw=0.9, label="exact")
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
def _span(id_: str, value, digits: int = 4) -> str:
    return f"<span class='num' id='{escape(id_)}'>{number(value, digits)}</span>"


def _with_ci(row) -> str:
    return with_ci(row["mean"], row["ci_low"], row["ci_high"], digits=4, ci_digits=3)
