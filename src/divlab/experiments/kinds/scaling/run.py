"""The run of ``kind: scaling`` (see the package docstring for the design)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from divlab.experiments.data import ginc_eval_set, ginc_training_set
from divlab.experiments.executors import executor_for, run_all
from divlab.experiments.folder import claim_folder, finish, logger, now
from divlab.experiments.kinds.scaling import laws
from divlab.experiments.kinds.scaling.spec import (
    DATA_MARGIN,
    TABLES,
    ScalingExperimentSpec,
    ScalingSection,
)
from divlab.experiments.plan import RunGroup, Workload, eval_tokens
from divlab.experiments.runs import run_payload
from divlab.io import write_table


def describe(spec: ScalingExperimentSpec) -> list[str]:
    section = spec.scaling
    presets = spec.presets()
    n_runs = len(presets) * len(section.token_budgets) * len(spec.seeds)
    lines = [
        f"scaling: {n_runs} runs = {len(presets)} model size(s) {presets} x "
        f"{len(section.token_budgets)} token budgets {section.token_budgets} x "
        f"{len(spec.seeds)} seed(s) {spec.seeds}",
        f"one GINC training set of the {spec.eval.n_concepts} eval concepts, "
        f"{_training_tokens(spec)} tokens; every run evaluated on D_eval",
        f"fit L(D) = E + B / D^beta per model size ({section.bootstrap} bootstrap resamples)",
    ]
    if len(presets) >= 3:
        lines.append("fit L(N, D) = E + A / N^alpha + B / D^beta over every run")
    else:
        lines.append("no joint L(N, D) fit: it needs >= 3 model sizes")
    if section.holdout == "largest":
        lines.append("hold out the largest budget (per law) and report its prediction error")
    lines.append(f"spec.token_budget ({spec.token_budget}) is unused: the budgets above replace it")
    return lines


def workload(spec: ScalingExperimentSpec) -> Workload:
    """The grid: one group per model size and token budget."""
    data = _training_tokens(spec)
    model = spec.model.model_dump(mode="json")  # as ``run`` trains it: only the preset swapped
    runs = tuple(
        RunGroup(
            f"{preset} D={budget:,}", len(spec.seeds), budget, data, model | {"preset": preset}
        )
        for preset in spec.presets()
        for budget in spec.scaling.token_budgets
    )
    return Workload(runs, eval_tokens(spec) + data)


# ---- the experiment ----------------------------------------------------------------------


def run(
    spec: ScalingExperimentSpec,
    out,
    *,
    executor=None,
    progress: bool = True,
    report: bool = True,
    log=None,
) -> dict:
    """Run (or resume) the scaling experiment in ``out``: train the grid of runs, fit the
    laws and write the tables (and the report)."""

    log = logger(log, progress)
    root = claim_folder(out, spec)
    started = now()
    eval_data = ginc_eval_set(spec, root)
    concepts = list(range(spec.eval.n_concepts))
    data = ginc_training_set(spec, root, "train", concepts, n_tokens=_training_tokens(spec))
    payloads, configs = [], []
    for preset in spec.presets():
        model = spec.model.model_dump(mode="json") | {"preset": preset}
        for budget in spec.scaling.token_budgets:
            for seed in spec.seeds:
                name = f"{preset}-D{budget}"
                payloads.append(
                    run_payload(
                        spec, root, name, data, seed, eval_data, token_budget=budget, model=model
                    )
                )
                configs.append({"model": preset, "budget": budget})
    executor = executor or executor_for(spec)
    records = run_all(payloads, executor, progress, "scaling runs", log)

    runs = runs_table(records, configs, spec.scaling.holdout)
    fits, holdout = fit_tables(runs, spec.scaling)
    for name, table in zip(TABLES, (runs, fits, holdout), strict=True):
        write_table(table, root / name)
    result = {"runs": len(payloads), **{t: str(root / t) for t in TABLES}}
    return finish(root, spec, result, report, started, executor, runs={"planned": len(payloads)})


def _training_tokens(spec: ScalingExperimentSpec) -> int:
    return max(spec.training_data.n_tokens, int(DATA_MARGIN * max(spec.scaling.token_budgets)))


def runs_table(records: list[dict], configs: list[dict], holdout: str) -> pd.DataFrame:
    """One row per run; ``held_out``: the run is its model's largest budget (the data
    law's held-out point), ``held_out_joint``: it is also the largest model's."""
    rows = [
        {
            "run_id": r["run_id"],
            "model": c["model"],
            "N": r["parameters_non_embedding"],
            "N_total": r["parameters"],
            "budget": c["budget"],
            "D": r["tokens"],
            "seed": r["seed"],
            "loss": r["loss"],
            "oracle_loss": r.get("oracle_loss"),
            "perplexity": r["perplexity"],
            "flops": r["flops"],
        }
        for r, c in zip(records, configs, strict=True)
    ]
    table = pd.DataFrame(rows)
    largest = table.groupby("model")["D"].transform("max")
    table["held_out"] = (holdout == "largest") & (table["D"] == largest)
    table["held_out_joint"] = table["held_out"] & (table["N"] == table["N"].max())
    return table


def fit_tables(runs: pd.DataFrame, section: ScalingSection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fitted parameters (with bootstrap CIs) and the held-out predictions of every law
    the runs support (module docstring)."""
    params, predictions = [], []
    groups = [("data", model, runs[runs["model"] == model]) for model in runs["model"].unique()]
    if runs["N"].nunique() >= 3:
        groups.append(("joint", "all", runs))
    for form, model, points in groups:
        N = points["N"].to_numpy(float) if form == "joint" else None
        D, loss = points["D"].to_numpy(float), points["loss"].to_numpy(float)
        fit = laws.fit_law(form, D, loss, N)
        boot = laws.bootstrap(fit, D, loss, N, n_boot=section.bootstrap, seed=section.seed)
        params += _parameter_rows(form, model, "all", fit, boot)
        if section.holdout == "largest":
            mask = points["held_out_joint" if form == "joint" else "held_out"].to_numpy()
            held = laws.holdout_prediction(
                form, D, loss, mask, N, n_boot=section.bootstrap, seed=section.seed
            )
            params += _parameter_rows(form, model, "holdout", held["fit"], None)
            predictions.append(
                {
                    "law": form,
                    "model": model,
                    "N": held["N"] if form == "joint" else float(points["N"].iloc[0]),
                    "D": held["D"],
                    "realised": held["realised"],
                    "predicted": held["predicted"],
                    "ci_low": held["ci_low"],
                    "ci_high": held["ci_high"],
                    "relative_error": held["relative_error"],
                    "fitted_on": held["fit"].n_points,
                }
            )
    columns = ["law", "model", "N", "D", "realised", "predicted", "ci_low", "ci_high"]
    columns += ["relative_error", "fitted_on"]
    return pd.DataFrame(params), pd.DataFrame(predictions, columns=columns)


def _parameter_rows(form, model, fitted_on, fit, boot) -> list[dict]:
    return [
        {
            "law": form,
            "model": model,
            "fitted_on": fitted_on,
            "n_points": fit.n_points,
            "parameter": name,
            "value": fit.params[name],
            "ci_low": boot["params"][name][0] if boot else np.nan,
            "ci_high": boot["params"][name][1] if boot else np.nan,
        }
        for name in laws.PARAMETERS[form]
    ]
