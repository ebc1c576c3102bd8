"""The report of an SFT experiment (``kind: sft``).

From ``sft.parquet`` (one row per fine-tuning run, plus the base model per seed):

* a plain-words verdict on "quality and diversity over quantity" at this scale: the
  change of held-out exact match from the smallest to the largest N, from no wrong
  responses to the most, from the fewest concepts to the most, and each selector against
  random, every one a seed-paired difference with a t-based 95 % CI (none below 3 seeds);
* figures: the LIMA curve (accuracy vs N), accuracy vs the wrong share, accuracy on seen
  and unseen concepts vs the concepts covered, and the selectors at fixed N (each with
  the base model's accuracy dashed);
* a table per arm: accuracy (mean over seeds, t-CI), response loss, and what its
  fine-tuning set held (wrong share, duplicates, concepts, response length).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from divlab.errors import DataError
from divlab.experiments.kinds.sft.run import BASE, TABLE
from divlab.report import page, stats
from divlab.report.figures import STYLE, save_figure
from divlab.report.formatting import finite, interval, number, with_ci

PLANS = {
    "quantity": ("N: examples (random, clean pool)", "LIMA curve: accuracy vs quantity"),
    "quality": ("share of wrong responses (N fixed)", "Accuracy vs quality"),
    "diversity": ("concepts covered (N fixed)", "Accuracy vs diversity"),
    "selectors": ("selector (N fixed, noisy pool)", "Selectors at a fixed budget"),
}


def sections(folder: Path, report_dir: Path) -> tuple[list[tuple[str, str, str]], dict]:
    path = Path(folder) / TABLE
    if not path.exists():
        raise DataError(f"{folder} has no {TABLE} yet; run the experiment first")
    table = pd.read_parquet(path)
    figures_dir = report_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    verdict = sft_verdict(table)
    means = arm_means(table)
    with matplotlib.rc_context(STYLE):
        shown = [
            save_figure(
                _plan_figure(table, plan),
                figures_dir,
                f"sft-{plan}",
                title,
                f"Held-out exact match of the first response token (mean over seeds; bars: "
                f"t-based 95% CI over seeds); dashed: the base model before fine-tuning. "
                f"x: {label}.",
            )
            for plan, (label, title) in PLANS.items()
            if (table.plan == plan).any()
        ]
    rows = [
        [
            r.arm,
            str(int(r.n)),
            with_ci(r.accuracy, r.accuracy_ci_low, r.accuracy_ci_high),
            with_ci(r.accuracy_seen, r.accuracy_seen_ci_low, r.accuracy_seen_ci_high),
            with_ci(r.accuracy_unseen, r.accuracy_unseen_ci_low, r.accuracy_unseen_ci_high),
            number(r.response_loss, 4),
            number(r.wrong_share_chosen, 3),
            number(r.duplicates_chosen, 3),
            number(r.concepts_chosen, 3),
            number(r.mean_response_length, 3),
        ]
        for r in means.itertuples()
    ]
    header = [
        "arm",
        "seeds",
        "exact match [95% CI]",
        "on seen concepts",
        "on unseen concepts",
        "response loss (nats/token)",
        "wrong share chosen",
        "duplicates chosen",
        "concepts chosen",
        "mean response length",
    ]
    html = (
        "<div class='verdict' id='sft-verdict'><ul>"
        + "".join(f"<li>{escape(line)}</li>" for line in verdict)
        + "</ul></div>"
        + page.figures(shown)
        + page.table(header, rows, "sft-table")
        + page.note(
            "Exact match: the model's greedy first response token against the Bayes label "
            "of the prompt's true concept, on held-out prompts of every eval concept; a "
            "concept is seen when the arm's fine-tuning set holds it. Wrong share, "
            "duplicates, concepts and lengths are the ground truth of what each arm chose. "
            "Scale: tiny models fine-tuned briefly on GINC; the verdict is about this setup."
        )
    )
    summary = {
        "verdict": verdict,
        "arms": {
            r.arm: {
                "accuracy": finite(r.accuracy),
                "accuracy_ci": [finite(r.accuracy_ci_low), finite(r.accuracy_ci_high)],
                "seeds": int(r.n),
            }
            for r in means.itertuples()
        },
    }
    return [("Quality, quantity and diversity of instruction data", html, "sft")], summary


def arm_means(table: pd.DataFrame) -> pd.DataFrame:
    """One row per arm (base first): the mean over seeds of each column with t-CIs for
    the accuracies."""
    rows = []
    for arm, group in table.groupby("arm", sort=False):
        row = {"arm": arm, "n": group.seed.nunique()}
        for column in ("accuracy", "accuracy_seen", "accuracy_unseen"):
            values = pd.to_numeric(group.get(column), errors="coerce").to_numpy(float)
            s = stats.mean_ci(values)
            row |= {column: s["mean"], f"{column}_ci_low": s["ci_low"],
                    f"{column}_ci_high": s["ci_high"]}  # fmt: skip
        for column in (
            "response_loss",
            "wrong_share_chosen",
            "duplicates_chosen",
            "concepts_chosen",
            "mean_response_length",
        ):
            values = pd.to_numeric(group.get(column), errors="coerce")
            row[column] = float(np.nanmean(values)) if values.notna().any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def paired(table: pd.DataFrame, arm: str, reference: str) -> dict:
    """``arm`` minus ``reference`` in accuracy, paired by seed: mean, t-CI, n."""
    own = table[table.arm == arm].set_index("seed").accuracy
    ref = table[table.arm == reference].set_index("seed").accuracy
    common = own.index.intersection(ref.index)
    return stats.mean_ci((own[common] - ref[common]).to_numpy(float))


def _moved(diff: dict, what: str) -> str:
    ci = interval(diff["ci_low"], diff["ci_high"], lambda v: number(v, 3))
    if not np.isfinite(diff["ci_low"]):
        return f"{what}: {number(diff['mean'], 3)} (no CI)"
    if diff["ci_low"] <= 0 <= diff["ci_high"]:
        return f"{what}: no change we can detect ({number(diff['mean'], 3)}, 95% CI {ci})"
    verb = "raised" if diff["mean"] > 0 else "lowered"
    return f"{what} {verb} exact match by {number(abs(diff['mean']), 3)} (95% CI {ci})"


def sft_verdict(table: pd.DataFrame) -> list[str]:
    """Seed-paired effects of quantity, quality, diversity and the selectors, per loss."""
    seeds = table.seed.nunique()
    if seeds < 3:
        return [f"Only {seeds} seed(s): no verdict (a t-interval over seeds needs 3 or more)."]
    lines = []
    base = table[table.plan == BASE].accuracy.to_numpy(float)
    if len(base):
        b = stats.mean_ci(base)
        ci = interval(b["ci_low"], b["ci_high"], lambda v: number(v, 3))
        means = arm_means(table[table.plan != BASE])
        above = means[means.accuracy_ci_low > b["ci_high"]].arm.tolist()
        below = means[means.accuracy_ci_high < b["ci_low"]].arm.tolist()
        lines.append(
            f"The base model before fine-tuning scores {number(b['mean'], 3)} (95% CI {ci}); "
            f"arms whose CI lies wholly above it: {', '.join(above) or 'none'}; wholly below it: "
            f"{', '.join(below) or 'none'}."
        )
    for loss_on in [v for v in table.loss_on.dropna().unique()]:
        own = table[table.loss_on == loss_on]
        tag = f"[loss on {loss_on} tokens] "
        for plan, first_last in (("quantity", "N"), ("quality", "wrong share"),
                                 ("diversity", "concepts")):  # fmt: skip
            arms = own[own.plan == plan]
            if arms.arm.nunique() < 2:
                continue
            order = sorted(arms.drop_duplicates("arm").itertuples(), key=lambda r: float(r.value))
            low, high = order[0], order[-1]
            diff = paired(own, high.arm, low.arm)
            lines.append(tag + _moved(diff, f"{first_last} {low.value} -> {high.value}") + ".")
        chosen = own[own.plan == "selectors"]
        if "sel=random-" + loss_on in set(chosen.arm):
            for arm in chosen.arm.unique():
                if arm.startswith("sel=random"):
                    continue
                diff = paired(own, arm, f"sel=random-{loss_on}")
                name = arm.removesuffix(f"-{loss_on}")
                lines.append(tag + _moved(diff, f"{name} vs random") + ".")
    return lines


def _plan_figure(table: pd.DataFrame, plan: str) -> Figure:
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.subplots()
    own = table[table.plan == plan]
    categorical = plan == "selectors"
    for i, (loss_on, group) in enumerate(own.groupby("loss_on", sort=False)):
        means = arm_means(group).merge(
            group.drop_duplicates("arm")[["arm", "value"]], on="arm", how="left"
        )
        x = np.arange(len(means)) + 0.12 * i if categorical else means.value.astype(float)
        ax.errorbar(
            x,
            means.accuracy,
            yerr=[means.accuracy - means.accuracy_ci_low, means.accuracy_ci_high - means.accuracy],
            fmt="o" if categorical else "o-",
            capsize=3,
            color=f"C{i}",
            label=f"loss on {loss_on}",
        )
        if categorical:
            ax.set_xticks(np.arange(len(means)), means.value, rotation=20)
        if plan == "diversity":
            ax.plot(x, means.accuracy_seen, "^:", color=f"C{i}", alpha=0.7, label="seen concepts")
            ax.plot(x, means.accuracy_unseen, "v:", color=f"C{i}", alpha=0.7,
                    label="unseen concepts")  # fmt: skip
    base = table[table.plan == BASE].accuracy
    if len(base):
        ax.axhline(base.mean(), color="0.4", ls="--", lw=1, label="base model")
    if plan == "quantity":
        ax.set_xscale("log", base=2)
    ax.set_xlabel(PLANS[plan][0])
    ax.set_ylabel("held-out exact match")
    ax.legend(fontsize=7)
    return figure
