"""``kind: mixtures``: RegMix-style mixture sweeps over GINC domains (BRIEF section 9).

1. Sample ``n_mixtures`` mixtures r ~ Dirichlet(alpha) over the domains
   (``divlab.experiments.domains``) and train one tiny proxy per mixture and seed at the
   spec's token budget (one pass over a training set of that mixture).
2. Regress the target loss (mean over seeds) on r: a linear model L = sum_j b_j r_j (no
   intercept: on the simplex it is the constant), gradient-boosted trees
   (``sklearn.ensemble.GradientBoostingRegressor``), and the data-mixing law of Ye et al.
   (2024) L(r) = c + k exp(sum_j t_j r_j). Each is scored by leave-one-out (or k-fold)
   cross-validated RMSE.
3. The chosen regression (``predictor``; ``auto``: the lowest CV RMSE) predicts the loss
   of the simplex vertices, the uniform mixture and ``n_candidates`` Dirichlet samples
   (by default only those within the proxies' per-domain weight ranges, plus the proxies:
   a linear fit extrapolated to a vertex chose badly in ``examples/mixtures.yaml``); the
   argmin is validated by real runs at the same budget, beside the uniform mixture.
   The best proxy (lowest observed loss) is the other baseline.

The target is ``all`` (every domain's eval documents) or one domain's. The law is also
fitted per eval domain, L_i(r) = c_i + k_i exp(t_i . r). On the simplex k and a common
shift of t are confounded (k e^d exp((t - d) . r) is the same function), so the fit fixes
the gauge sum_j t_j = 0: then L(uniform) = c + k. The least-squares fit is hand-written
(``scipy.optimize.least_squares`` over c, k and n - 1 free t's): it is the product here.

Tables: ``mixtures.parquet`` (one row per run: role ``proxy`` / ``predicted`` /
``uniform``, mixture id, seed, weights ``w_<domain>``, realised token shares, ``target``
loss, ``loss_<domain>``, the run's flat metrics) and ``mixtures.json`` (the regressions:
CV errors, coefficients, law parameters, the chosen mixture and its predicted loss).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from sklearn.base import BaseEstimator, RegressorMixin

from divlab.errors import ConfigError, DataError
from divlab.experiments.domains import DomainSpec, check_domains
from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec

PREDICTORS = ("linear", "trees", "law")


class MixturesSection(Spec):
    """The sweep: domains, the Dirichlet of proxy mixtures, the target, the regressions."""

    domains: list[DomainSpec]
    n_mixtures: int = Field(16, ge=2, description="proxy mixtures (one run each per seed)")
    concentration: float | list[float] = Field(
        1.0, description="Dirichlet alpha > 0: one value, or one per domain"
    )
    seed: int = Field(0, ge=0, description="the mixtures' and their documents' seed")
    target: str = Field("all", description="'all' (every domain's eval docs) or a domain name")
    predictor: Literal["auto", "linear", "trees", "law"] = "auto"
    cv_folds: int | None = Field(None, ge=2, description="k-fold CV; default leave-one-out")
    n_candidates: int = Field(10_000, ge=1, description="Dirichlet samples searched")
    mixing_law: bool = Field(True, description="fit L(r) = c + k exp(t . r) too")
    extrapolate: bool = Field(
        False,
        description="search the whole simplex; default: only mixtures whose every weight "
        "lies within the proxies' range for that domain (regressions fitted on 12 points "
        "are not to be trusted at the vertices)",
    )

    @field_validator("concentration")
    @classmethod
    def _positive(cls, v: float | list[float]) -> float | list[float]:
        values = v if isinstance(v, list) else [v]
        if not values or min(values) <= 0:
            raise ValueError(
                f"the Dirichlet concentration must be > 0 (got {v}); use e.g. 1.0 for "
                "uniform over the simplex, < 1 for mixtures near its vertices"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MixturesSection:
        check_domains(self.domains)
        names = [d.name for d in self.domains]
        if isinstance(self.concentration, list) and len(self.concentration) != len(names):
            raise ValueError(
                f"concentration lists {len(self.concentration)} values for {len(names)} "
                "domains; give one per domain, or a single number"
            )
        if self.target != "all" and self.target not in names:
            raise ValueError(f"target {self.target!r} is not a domain; use 'all' or one of {names}")
        if self.predictor == "law" and not self.mixing_law:
            raise ValueError("predictor 'law' needs mixing_law: true")
        return self

    def alpha(self) -> np.ndarray:
        n = len(self.domains)
        c = self.concentration
        return np.asarray(c if isinstance(c, list) else [c] * n, float)


class MixturesExperimentSpec(CommonSpec):
    """``kind: mixtures``: the common recipe plus the ``mixtures`` section."""

    kind: Literal["mixtures"]
    mixtures: MixturesSection

    @model_validator(mode="after")
    def _domains_in_eval(self) -> MixturesExperimentSpec:
        if self.is_text:
            raise ValueError("mixture sweeps run on GINC domains; remove eval.text")
        check_domains(self.mixtures.domains, self.eval.n_concepts)
        n = len(self.mixtures.domains)
        if self.evaluation.limit < n:
            raise ValueError(
                f"evaluation.limit ({self.evaluation.limit}) scores fewer documents than there "
                f"are domains ({n}); raise it (a multiple of {n} is balanced)"
            )
        return self


SPEC = MixturesExperimentSpec


# ---- the maths ---------------------------------------------------------------------------


def sample_mixtures(n: int, concentration, n_domains: int, rng: np.random.Generator):
    """``n`` mixtures from Dirichlet(``concentration``) over ``n_domains`` domains."""
    alpha = np.broadcast_to(np.asarray(concentration, float), (n_domains,))
    if np.any(~np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ConfigError(f"the Dirichlet concentration must be > 0, got {alpha.tolist()}")
    return rng.dirichlet(alpha, size=n)


def candidate_mixtures(
    n: int, concentration, n_domains: int, rng: np.random.Generator, within=None
):
    """Where the best mixture is searched: the vertices, the uniform mixture, ``n``
    Dirichlet samples (a linear model's optimum on the simplex is a vertex). ``within``
    (proxy mixtures, (m, n_domains)): keep only candidates whose every weight lies in the
    proxies' range for its domain, and add the proxies themselves (interpolation only)."""
    uniform = np.full((1, n_domains), 1.0 / n_domains)
    samples = sample_mixtures(n, concentration, n_domains, rng)
    candidates = np.vstack([np.eye(n_domains), uniform, samples])
    if within is None:
        return candidates
    within = np.asarray(within, float)
    low, high = within.min(axis=0), within.max(axis=0)
    inside = np.all((candidates >= low) & (candidates <= high), axis=1)
    return np.vstack([candidates[inside], within])


class MixingLaw(BaseEstimator, RegressorMixin):
    """L(r) = c + k exp(t . r) with sum_j t_j = 0, fitted by least squares (Ye et al. 2024,
    "Data Mixing Laws"). Needs at least n_domains + 1 points (c, k, n - 1 free t's).

    The free t's are bounded to [-T_BOUND, T_BOUND]: with few proxies the unbounded fit can
    run off to huge exponents that fit the points it saw and predict 1e12 elsewhere."""

    T_BOUND = 10.0

    def __init__(self, starts: int = 8, seed: int = 0):
        self.starts, self.seed = starts, seed

    @staticmethod
    def _unpack(theta: np.ndarray):
        t = np.append(theta[2:], -theta[2:].sum())
        return theta[0], theta[1], t

    @staticmethod
    def law(X, c: float, k: float, t) -> np.ndarray:
        return c + k * np.exp(np.asarray(X, float) @ np.asarray(t, float))

    def fit(self, X, y):
        from scipy.optimize import least_squares

        X, y = np.asarray(X, float), np.asarray(y, float)
        n_domains = X.shape[1]
        if len(y) < n_domains + 1:
            raise DataError(
                f"the mixing law has {n_domains + 1} parameters and needs at least that many "
                f"mixtures; got {len(y)}"
            )

        def residuals(theta):
            c, k, t = self._unpack(theta)
            return self.law(X, c, k, t) - y

        spread = max(float(np.ptp(y)), 1e-3)
        rng = np.random.default_rng(self.seed)
        best = None
        for start in range(self.starts):
            t0 = np.zeros(n_domains - 1) if start == 0 else rng.normal(0, 1, n_domains - 1)
            c0 = float(y.min()) - spread * (1 + start % 3)
            k0 = float(y.mean()) - c0
            bound = np.concatenate([[np.inf, np.inf], np.full(n_domains - 1, self.T_BOUND)])
            fit = least_squares(
                residuals,
                np.concatenate([[c0, k0], np.clip(t0, -2, 2)]),
                bounds=(-bound, bound),
                xtol=1e-15,
                ftol=1e-15,
                gtol=1e-15,
            )
            if best is None or fit.cost < best.cost:
                best = fit
        self.c_, self.k_, self.t_ = self._unpack(best.x)
        self.cost_ = float(best.cost)
        return self

    def predict(self, X):
        return self.law(X, self.c_, self.k_, self.t_)


def make_regressor(name: str, seed: int = 0):
    """A fresh, unfitted regressor: ``linear``, ``trees`` or ``law`` (or ``mean``, the
    constant baseline a useful regression must beat out of fold)."""
    if name == "mean":
        from sklearn.dummy import DummyRegressor

        return DummyRegressor(strategy="mean")
    if name == "linear":
        from sklearn.linear_model import LinearRegression

        # The weights sum to 1, so an intercept would be collinear with them.
        return LinearRegression(fit_intercept=False)
    if name == "trees":
        from sklearn.ensemble import GradientBoostingRegressor

        # Small data: shallow trees, many small steps, every point usable in a leaf.
        return GradientBoostingRegressor(
            n_estimators=200, max_depth=2, learning_rate=0.05, min_samples_leaf=1, random_state=seed
        )
    if name == "law":
        return MixingLaw(seed=seed)
    raise ConfigError(f"unknown regression {name!r}; choose from {', '.join(PREDICTORS)}")


def cross_validate(name: str, X, y, folds: int | None = None, seed: int = 0) -> dict:
    """Out-of-fold predictions of ``name`` (leave-one-out, or ``folds``-fold shuffled by
    ``seed``), their RMSE and MAE, and the in-sample R^2 of a fit on every point."""
    from sklearn.model_selection import KFold, LeaveOneOut, cross_val_predict

    X, y = np.asarray(X, float), np.asarray(y, float)
    splitter = LeaveOneOut() if folds is None else KFold(folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(make_regressor(name, seed), X, y, cv=splitter)
    errors = predicted - y
    fitted = make_regressor(name, seed).fit(X, y)
    return {
        "predictor": name,
        "cv": "leave-one-out" if folds is None else f"{folds}-fold",
        "cv_rmse": float(np.sqrt(np.mean(errors**2))),
        "cv_mae": float(np.mean(np.abs(errors))),
        "cv_predictions": predicted.tolist(),
        "r2": float(fitted.score(X, y)),
        "model": fitted,
    }


def predictors_for(n_points: int, n_domains: int, mixing_law: bool, folds: int | None) -> list:
    """The regressions that can be cross-validated on ``n_points`` mixtures (the law needs
    n_domains + 1 points in every training fold)."""
    train_size = n_points - 1 if folds is None else n_points - int(np.ceil(n_points / folds))
    names = ["linear", "trees"]
    if mixing_law and train_size >= n_domains + 1:
        names.append("law")
    return names


def best_mixture(model, candidates) -> tuple[np.ndarray, float]:
    """The candidate with the lowest predicted loss, and that loss."""
    predicted = model.predict(candidates)
    i = int(np.argmin(predicted))
    return np.asarray(candidates[i], float), float(predicted[i])


def describe_model(name: str, model, domains: list[str]) -> dict:
    """The fitted parameters, for ``mixtures.json``."""
    if name == "linear":
        return {"coefficients": dict(zip(domains, model.coef_.tolist(), strict=True))}
    if name == "law":
        return {
            "c": float(model.c_),
            "k": float(model.k_),
            "t": dict(zip(domains, model.t_.tolist(), strict=True)),
        }
    return {
        "feature_importances": dict(zip(domains, model.feature_importances_.tolist(), strict=True))
    }


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
    import pandas as pd

    from divlab.experiments import domains as dom
    from divlab.experiments import steps
    from divlab.io import read_json, write_json

    log = steps.logger(log, progress)
    root = steps.claim_folder(out, spec)
    executor = executor or steps.executor_for(spec)
    started = steps.now()
    m = spec.mixtures
    names = [d.name for d in m.domains]

    eval_data = dom.domain_eval_set(spec, root, m.domains)
    n_docs = dom.n_documents(spec)
    log(f"data: {len(names)} domain pools of {n_docs} documents, eval set {eval_data.name}")
    pools = {
        k: dom.open_dataset(p) for k, p in dom.domain_pools(spec, root, m.domains, n_docs).items()
    }
    weights_of = dom.domain_weights(
        m.domains, dom.scored_concepts(eval_data, spec.evaluation.limit)
    )

    def mixture_set(label: str, weights) -> Path:
        from divlab.experiments.plan import stable_hash

        key = [
            [steps.relative(p.path, root) for p in pools.values()],
            np.round(weights, 12).tolist(),
            n_docs,
            m.seed,
        ]
        path = root / "data" / f"{label}-{stable_hash(key, 8)}"
        rng = dom.seed_for(m.seed, "documents", label)
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
                payloads.append(steps.run_payload(spec, root, arm, data, seed, eval_data))
                meta.append({"role": role, "mixture": arm, "weights": weights})
        pending = len(steps.unfinished(payloads))
        records = steps.run_all(payloads, executor, progress, label, log)
        rows = [
            _row(r, p, x, names, weights_of, m.target)
            for r, p, x in zip(records, payloads, meta, strict=True)
        ]
        return rows, pending

    mixtures = sample_mixtures(
        m.n_mixtures, m.alpha(), len(names), dom.seed_for(m.seed, "mixtures")
    )
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
    table.to_parquet(root / "mixtures.parquet", index=False)
    write_json(
        root / "mixtures.json",
        {**fits, "domains": {d.name: d.concepts for d in m.domains}, "target": m.target},
    )
    result = {
        "runs": len(table),
        "trained": trained,
        "table": str(root / "mixtures.parquet"),
    }
    return steps.finish(root, spec, result, report, started, executor)


def _row(
    record: dict, payload: dict, meta: dict, names: list[str], weights_of: dict, target: str
) -> dict:
    """One run's row of ``mixtures.parquet``."""
    from divlab.experiments import domains as dom
    from divlab.io import read_json

    evaluation = read_json(Path(payload["out"]) / "eval.json")
    per_domain = dom.domain_losses(evaluation["loss"]["per_concept"], weights_of)
    shares = dom.open_dataset(payload["train"]["data"]).table("train", ["domain"]).column(0)
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
    rng = np.random.default_rng(np.random.SeedSequence([section.seed, 0xBE57]))
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
