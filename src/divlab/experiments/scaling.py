"""``kind: scaling``: predictable scaling of the eval loss in tokens ``D`` and model size ``N``.

One GINC training set of the eval concepts (``training_data`` knobs, generated large enough
that the largest budget sees each document at most about once) is trained on at every
token budget of ``scaling.token_budgets`` by every model of ``scaling.model_presets`` (the
spec's ``model`` with its preset swapped; none listed: the spec's model alone), for every
seed, and each run is evaluated on ``D_eval``. ``N`` is a run's non-embedding parameter
count and ``D`` the tokens it trained on.

Fits (``divlab.experiments.scaling_laws``: log-space Huber fit from a grid of starts,
percentile bootstrap over runs for every interval):

* ``L(D) = E + B / D^beta`` per model size, on all its runs (parameters with 95% CIs);
* ``L(N, D) = E + A / N^alpha + B / D^beta`` over every run, when there are >= 3 model
  sizes (fewer cannot identify A, alpha and E apart);
* ``holdout: largest``: each law refitted without its largest configuration (the largest
  budget of each model; for the joint law the largest model at the largest budget), which
  it then predicts: predicted loss with its bootstrap interval, realised loss (mean over
  seeds) and relative error ``(predicted - realised) / realised``.

Tables: ``scaling.parquet`` (one row per run: model, N, N total, budget, D, seed, loss,
oracle loss, perplexity, flops, held_out), ``scaling_fits.parquet`` (one row per law,
model, fitted-on set (``all`` / ``holdout``) and parameter: value, ci_low, ci_high) and
``scaling_holdout.parquet`` (one row per held-out prediction).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from divlab.experiments import scaling_laws as laws
from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec
from divlab.train.models import PRESETS

TABLES = ("scaling.parquet", "scaling_fits.parquet", "scaling_holdout.parquet")
DATA_MARGIN = 1.1  # packing drops a few tokens per document: generate 10% over the largest budget


class ScalingSection(Spec):
    token_budgets: list[int] = Field(..., description="training tokens D of the runs")
    model_presets: list[str] = Field(
        default_factory=list, description="model sizes (presets); empty: the spec's model"
    )
    holdout: Literal["largest", "none"] = Field(
        "largest", description="refit without the largest configuration and predict it"
    )
    bootstrap: int = Field(1000, ge=50, description="bootstrap resamples behind every CI")
    seed: int = Field(0, ge=0, description="the bootstrap's seed")

    @field_validator("token_budgets")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        if min(v, default=0) < 1 or len(set(v)) != len(v):
            raise ValueError("must be a list of distinct token counts >= 1")
        return sorted(v)

    @field_validator("model_presets")
    @classmethod
    def _presets(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in PRESETS]
        if unknown:
            raise ValueError(f"unknown preset(s) {unknown}; choose from {', '.join(PRESETS)}")
        if len(set(v)) != len(v):
            raise ValueError("model presets must be distinct")
        return v


class ScalingExperimentSpec(CommonSpec):
    """``kind: scaling``: the common recipe at several token budgets and model sizes."""

    kind: Literal["scaling"]
    scaling: ScalingSection

    @model_validator(mode="after")
    def _consistent(self) -> ScalingExperimentSpec:
        if self.is_text:
            raise ValueError("scaling experiments run on GINC data; remove eval.text")
        section = self.scaling
        steps = [budget // self.batch_tokens for budget in section.token_budgets]
        if min(steps) < 1:
            raise ValueError(
                f"every token budget must be at least one batch ({self.batch_tokens} tokens)"
            )
        if len(set(steps)) != len(steps):
            raise ValueError(
                f"token budgets {section.token_budgets} train the same number of "
                f"{self.batch_tokens}-token batches; make them differ by at least one batch"
            )
        need = 3 + (section.holdout == "largest")
        if len(steps) < need:
            raise ValueError(
                "fitting L(D) = E + B / D^beta needs >= 3 distinct budgets"
                + (", plus the held-out largest one" if need == 4 else "")
                + f": list at least {need} token_budgets"
            )
        model = self.model
        sizes = (model.hidden_size, model.num_layers, model.num_heads, model.intermediate_size)
        if section.model_presets and (any(sizes) or model.config):
            raise ValueError(
                "scaling.model_presets swaps the model's preset: remove the explicit sizes "
                "(hidden_size, num_layers, ...) and config from model"
            )
        return self

    def presets(self) -> list[str]:
        return self.scaling.model_presets or [self.model.preset]


SPEC = ScalingExperimentSpec


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
    from divlab.experiments import steps

    log = steps.logger(log, progress)
    root = steps.claim_folder(out, spec)
    started = steps.now()
    eval_data = steps.ginc_eval_set(spec, root)
    concepts = list(range(spec.eval.n_concepts))
    data = steps.ginc_training_set(spec, root, "train", concepts, n_tokens=_training_tokens(spec))
    payloads, configs = [], []
    for preset in spec.presets():
        model = spec.model.model_dump(mode="json") | {"preset": preset}
        for budget in spec.scaling.token_budgets:
            for seed in spec.seeds:
                name = f"{preset}-D{budget}"
                payloads.append(
                    steps.run_payload(
                        spec, root, name, data, seed, eval_data, token_budget=budget, model=model
                    )
                )
                configs.append({"model": preset, "budget": budget})
    executor = executor or steps.executor_for(spec)
    records = steps.run_all(payloads, executor, progress, "scaling runs", log)

    runs = runs_table(records, configs, spec.scaling.holdout)
    fits, holdout = fit_tables(runs, spec.scaling)
    for name, table in zip(TABLES, (runs, fits, holdout), strict=True):
        _write_parquet(table, root / name)
    result = {"runs": len(payloads), **{t: str(root / t) for t in TABLES}}
    return steps.finish(
        root, spec, result, report, started, executor, runs={"planned": len(payloads)}
    )


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


def _write_parquet(table: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(path)
