"""The mixture regressions of RegMix-style sweeps: Dirichlet mixtures, linear and
boosted-tree regressors, the data-mixing law, cross-validation and the best predicted mixture."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, LeaveOneOut, cross_val_predict

from divlab.errors import ConfigError, DataError
from divlab.experiments.kinds.mixtures.spec import (
    PREDICTORS,
)

# ---- the experiment ----------------------------------------------------------------------


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
        return DummyRegressor(strategy="mean")
    if name == "linear":
        # The weights sum to 1, so an intercept would be collinear with them.
        return LinearRegression(fit_intercept=False)
    if name == "trees":
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
