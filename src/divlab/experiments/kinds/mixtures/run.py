"""The run of ``kind: mixtures`` (see the package docstring for the design)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from divlab import seeds
from divlab.errors import ConfigError
from divlab.experiments import domains as dom
from divlab.experiments.executors import executor_for, run_all, unfinished
from divlab.experiments.folder import claim_folder, finish, logger, now
from divlab.experiments.ids import relative, stable_hash
from divlab.experiments.kinds.mixtures.regress import (
    MixingLaw,
    best_mixture,
    candidate_mixtures,
    cross_validate,
    describe_model,
    predictors_for,
    sample_mixtures,
)
from divlab.experiments.kinds.mixtures.spec import (
    MixturesExperimentSpec,
    MixturesSection,
)
from divlab.experiments.plan import RunGroup, Workload, eval_tokens
from divlab.experiments.runs import RunPayload, RunRecord, run_payload
from divlab.io import read_json, write_json, write_table

# ---- the experiment ----------------------------------------------------------------------


def describe(spec: MixturesExperimentSpec) -> list[str]:
    m = spec.mixtures
    n_seeds = len(spec.seeds)
    lines = [f"domain {d.name}: concepts {d.concepts}" for d in m.domains]
    lines += [
        f"{m.n_mixtures} proxy mixtures ~ Dirichlet({m.alpha().tolist()}), seed {m.seed}",
        f"target loss: {m.target}; predictor: {m.predictor}; CV: "
        + ("leave-one-out" if m.cv_folds is None else f"{m.cv_folds}-fold"),
        f"{m.n_mixtures * n_seeds} proxy runs + {2 * n_seeds} validation runs (predicted best, "
        f"uniform) of {spec.token_budget} tokens each",
    ]
    return lines


def workload(spec: MixturesExperimentSpec) -> Workload:
    """The proxy runs and the two validation runs per seed, one pass over their data."""
    m = spec.mixtures
    data = dom.n_documents(spec) * spec.training_data.doc_length
    runs = (m.n_mixtures + 2) * len(spec.seeds)
    pools = len(m.domains) * data
    return Workload(
        (RunGroup("proxy and validation runs", runs, spec.token_budget, data),),
        eval_tokens(spec) + pools + (m.n_mixtures + 2) * data,
    )


def run(
    spec: MixturesExperimentSpec,
    out,
    *,
    executor=None,
    progress: bool = True,
    report: bool = True,
    log=None,
) -> dict:
    """Run (or resume) the sweep in ``out``: data, proxies, regressions, validation runs,
    tables and report. Finished runs and data sets are reused."""

    log = logger(log, progress)
    root = claim_folder(out, spec)
    executor = executor or executor_for(spec)
    started = now()
    m = spec.mixtures
    names = [d.name for d in m.domains]

    eval_data, n_docs, pools = dom.domain_data(spec, root, m.domains, log)
    weights_of = dom.domain_weights(
        m.domains, dom.scored_concepts(eval_data, spec.evaluation.limit)
    )

    def mixture_set(label: str, weights) -> Path:

        key = [
            [relative(p.path, root) for p in pools.values()],
            np.round(weights, 12).tolist(),
            n_docs,
            m.seed,
        ]
        path = root / "data" / f"{label}-{stable_hash(key, 8)}"
        rng = seeds.rng(m.seed, "documents", label)
        if not (path / "summary.json").exists():
            table = dom.mixture_documents(pools, weights, n_docs, rng)
            order = dom.shuffled_order(table.num_rows, rng)
            dom.write_training_set(
                path,
                next(iter(pools.values())),
                table,
                order,
                mixture=dict(zip(names, np.asarray(weights).tolist(), strict=True)),
            )
        return path

    def train(arms: list[tuple[str, str, np.ndarray]], label: str):
        payloads, meta = [], []
        for role, arm, weights in arms:
            data = mixture_set(arm, weights)
            for seed in spec.seeds:
                payloads.append(run_payload(spec, root, arm, data, seed, eval_data))
                meta.append({"role": role, "mixture": arm, "weights": weights})
        pending = len(unfinished(payloads))
        records = run_all(payloads, executor, progress, label, log)
        rows = [
            _row(r, p, x, names, weights_of, m.target)
            for r, p, x in zip(records, payloads, meta, strict=True)
        ]
        return rows, pending

    mixtures = sample_mixtures(m.n_mixtures, m.alpha(), len(names), seeds.rng(m.seed, "mixtures"))
    proxy_arms = [("proxy", f"mix{i:03d}", w) for i, w in enumerate(mixtures)]
    proxy_rows, trained = train(proxy_arms, "proxies")
    proxies = pd.DataFrame(proxy_rows)

    # The choice is written once: a relaunch validates the same mixture.
    choice_path = root / "choice.json"
    if choice_path.exists():
        fits = read_json(choice_path)
    else:
        fits = fit_sweep(proxies, names, m)
        write_json(choice_path, fits)
    chosen = np.asarray([fits["chosen"]["weights"][n] for n in names])
    uniform = np.full(len(names), 1.0 / len(names))
    validation_rows, trained_now = train(
        [("predicted", "predicted", chosen), ("uniform", "uniform", uniform)], "validation"
    )
    trained += trained_now

    table = pd.concat([proxies, pd.DataFrame(validation_rows)], ignore_index=True)
    write_table(table, root / "mixtures.parquet")
    write_json(
        root / "mixtures.json",
        {**fits, "domains": {d.name: d.concepts for d in m.domains}, "target": m.target},
    )
    result = {
        "runs": len(table),
        "trained": trained,
        "table": str(root / "mixtures.parquet"),
    }
    return finish(root, spec, result, report, started, executor)


def _row(
    record: RunRecord,
    payload: RunPayload,
    meta: dict,
    names: list[str],
    weights_of: dict,
    target: str,
) -> dict:
    """One run's row of ``mixtures.parquet``."""

    evaluation = read_json(Path(payload.out) / "eval.json")
    per_domain = dom.domain_losses(evaluation["loss"]["per_concept"], weights_of)
    shares = dom.open_dataset(payload.train["data"]).table("train", ["domain"]).column(0)
    counts = shares.value_counts().to_pylist()
    share = {c["values"]: c["counts"] / len(shares) for c in counts}
    row = {
        "role": meta["role"],
        "mixture": meta["mixture"],
        "seed": record["seed"],
        "run_id": record["run_id"],
        **{f"w_{n}": float(w) for n, w in zip(names, meta["weights"], strict=True)},
        **{f"share_{n}": float(share.get(n, 0.0)) for n in names},
        "target": record["loss"] if target == "all" else per_domain[target],
        **{f"loss_{n}": per_domain[n] for n in names},
    }
    keep = (
        "loss",
        "perplexity",
        "gap",
        "oracle_loss",
        "tokens",
        "flops",
        "parameters",
        "train_seconds",
    )
    return row | {k: record.get(k) for k in keep}


def fit_sweep(proxies, names: list[str], section: MixturesSection) -> dict:
    """Regressions of the target (and, with the law, each domain's loss) on the mixture,
    their CV errors, the chosen predictor and its best mixture (JSON-ready)."""
    means = proxies.groupby("mixture", sort=True).mean(numeric_only=True)
    X = means[[f"w_{n}" for n in names]].to_numpy()
    y = means["target"].to_numpy()
    folds = section.cv_folds
    if folds is not None and folds > len(y):
        raise ConfigError(f"cv_folds ({folds}) exceeds the {len(y)} mixtures; lower it")
    available = predictors_for(len(y), len(names), section.mixing_law, folds)
    scores = {name: cross_validate(name, X, y, folds, section.seed) for name in available}
    baseline = cross_validate("mean", X, y, folds, section.seed)  # what no regression beats
    if section.predictor == "auto":
        chosen_name = min(scores, key=lambda k: scores[k]["cv_rmse"])
    elif section.predictor in scores:
        chosen_name = section.predictor
    else:
        raise ConfigError(
            f"predictor {section.predictor!r} needs more mixtures (the law needs "
            f"{len(names) + 1} per training fold); raise n_mixtures or choose linear/trees"
        )
    rng = seeds.rng(section.seed, 0xBE57)
    within = None if section.extrapolate else X
    candidates = candidate_mixtures(section.n_candidates, section.alpha(), len(names), rng, within)
    weights, predicted = best_mixture(scores[chosen_name]["model"], candidates)
    uniform = np.full((1, len(names)), 1.0 / len(names))
    best_proxy = means.index[int(np.argmin(y))]
    laws = {}
    if section.mixing_law and len(y) >= len(names) + 1:
        for n in names:
            law = MixingLaw(seed=section.seed).fit(X, means[f"loss_{n}"].to_numpy())
            residual = law.predict(X) - means[f"loss_{n}"].to_numpy()
            laws[n] = describe_model("law", law, names) | {
                "rmse": float(np.sqrt(np.mean(residual**2)))
            }
    return {
        "mixtures": means.index.tolist(),
        "observed": y.tolist(),
        "regressions": {
            name: {k: v for k, v in s.items() if k != "model"}
            | describe_model(name, s["model"], names)
            for name, s in scores.items()
        },
        "mean_baseline": {k: v for k, v in baseline.items() if k != "model"},
        "predictor": chosen_name,
        "chosen": {
            "weights": dict(zip(names, weights.tolist(), strict=True)),
            "predicted_loss": predicted,
        },
        "uniform_predicted_loss": float(scores[chosen_name]["model"].predict(uniform)[0]),
        "best_proxy": {
            "mixture": best_proxy,
            "weights": {n: float(means.loc[best_proxy, f"w_{n}"]) for n in names},
            "observed_loss": float(y.min()),
            "predicted_loss": float(
                scores[chosen_name]["model"].predict(X[[int(np.argmin(y))]])[0]
            ),
        },
        "laws": laws,
    }
