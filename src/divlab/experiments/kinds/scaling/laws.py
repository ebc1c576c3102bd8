"""Scaling-law fits: ``L(D) = E + B / D^beta`` and ``L(N, D) = E + A / N^alpha + B / D^beta``.

``N`` is the model's non-embedding parameter count and ``D`` the tokens it trained on
(Kaplan et al. 2020, "Scaling Laws for Neural Language Models"; Hoffmann et al. 2022,
"Training Compute-Optimal Large Language Models", Approach 3). The fitting is
hand-written here because it is the product: pure functions, arrays in, numbers out.

Fitting follows Hoffmann et al. (appendix D.2): in log space, with the law written as a
log-sum-exp of its terms,

    log L_hat(N, D) = LSE(a - alpha log N, b - beta log D, e),   A = e^a, B = e^b, E = e^e,

minimise ``sum_i Huber_delta(log L_hat_i - log L_i)`` (delta = 1e-3) from a grid of
initialisations and keep the best (each start gets a short plain least-squares solve; the
best three are polished under the Huber loss, which is slow to converge from afar). The
log-sum-exp form keeps E, A, B positive without bounds, and the Huber loss keeps one odd
run from dragging the fit. Two changes make it better conditioned: ``log N`` and
``log D`` are centred on their means before fitting (so the coefficient and exponent are
nearly uncorrelated; ``a`` and ``b`` are converted back after), and the exponents are
bounded to ``(0, 5]``. Identifiable input: each power-law term with the shared ``E`` needs
at least 3 distinct values of its variable (D; and N for the joint law). The solver is
``scipy.optimize.least_squares`` (trust-region reflective, ``loss="huber"``, whose
``f_scale`` is delta).

Uncertainty: a nonparametric bootstrap over runs (resample the points with replacement,
refit from the full fit's optimum), with percentile 95% intervals for every parameter and
for any prediction. Resamples with too few distinct ``D`` (or ``N``) values to identify
the law are drawn again.

``holdout_prediction`` checks the law the way it is used: fit on the smaller runs, then
predict the largest one and compare with what it realised.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from divlab.errors import DataError

HUBER_DELTA = 1e-3
MAX_EXPONENT = 5.0
MIN_EXPONENT = 1e-6
PARAMETERS = {"data": ("E", "B", "beta"), "joint": ("E", "A", "alpha", "B", "beta")}


@dataclass(frozen=True)
class ScalingFit:
    """A fitted law: ``form`` is "data" (``L(D)``) or "joint" (``L(N, D)``); ``params``
    maps E, B, beta (and A, alpha) to values; ``objective`` is the Huber loss at the
    optimum and ``n_points`` how many points it was fitted on."""

    form: str
    params: dict[str, float]
    objective: float
    n_points: int
    log_params: np.ndarray = field(repr=False)  # the optimum in the centred space
    centre: tuple[float, float] = field(repr=False)  # mean log N (0 for "data"), mean log D

    def predict(self, D, N=None) -> np.ndarray:
        """The law's loss at ``D`` (and ``N`` for the joint law)."""
        return predict(self.params, D, N)


def data_law(D, E: float, B: float, beta: float) -> np.ndarray:
    """``L(D) = E + B / D^beta``."""
    return E + B / np.asarray(D, dtype=float) ** beta


def joint_law(N, D, E: float, A: float, alpha: float, B: float, beta: float) -> np.ndarray:
    """``L(N, D) = E + A / N^alpha + B / D^beta``."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return E + A / N**alpha + B / D**beta


def predict(params: dict[str, float], D, N=None) -> np.ndarray:
    """The loss a fitted law (its ``params``) predicts at ``D`` (and ``N``)."""
    D = _positive(D, "D")
    if "A" not in params:
        return data_law(D, params["E"], params["B"], params["beta"])
    if N is None:
        raise DataError("the joint law L(N, D) predicts from N and D; pass N as well")
    N = _positive(N, "N")
    return joint_law(N, D, **{k: params[k] for k in PARAMETERS["joint"]})


def fit_data_law(D, loss, *, huber_delta: float = HUBER_DELTA) -> ScalingFit:
    """Fit ``L(D) = E + B / D^beta`` to points (``D`` tokens, ``loss``); best of a grid
    of initialisations (module docstring)."""
    return _fit("data", None, D, loss, huber_delta)


def fit_joint_law(N, D, loss, *, huber_delta: float = HUBER_DELTA) -> ScalingFit:
    """Fit ``L(N, D) = E + A / N^alpha + B / D^beta`` to points (``N`` non-embedding
    parameters, ``D`` tokens, ``loss``); best of a grid of initialisations."""
    return _fit("joint", N, D, loss, huber_delta)


def fit_law(form: str, D, loss, N=None, *, huber_delta: float = HUBER_DELTA) -> ScalingFit:
    """``fit_data_law`` (form "data") or ``fit_joint_law`` (form "joint")."""
    return _fit(form, N, D, loss, huber_delta)


def bootstrap(
    fit: ScalingFit,
    D,
    loss,
    N=None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    at: dict | None = None,
    confidence: float = 0.95,
) -> dict:
    """Percentile bootstrap over points of ``fit`` (made from these same points).

    Returns ``{"params": {name: (low, high)}, "samples": (n_boot, n_params) array}`` and,
    when ``at = {"D": ..., "N": ...}`` is given, ``"prediction": (low, high)`` of the
    loss the law predicts there (arrays are accepted; the interval is per point)."""
    N_, D_, y = _points(fit.form, N, D, loss)
    rng = np.random.default_rng(seed)
    names = PARAMETERS[fit.form]
    samples, predictions = [], []
    attempts = 0
    while len(samples) < n_boot:
        attempts += 1
        if attempts > 20 * n_boot:
            raise DataError(
                "the bootstrap keeps drawing resamples that cannot identify the law; "
                "add runs with more distinct token budgets (and model sizes)"
            )
        idx = rng.integers(0, len(y), len(y))
        if not _identifiable(fit.form, None if N_ is None else N_[idx], D_[idx]):
            continue
        sample_n = None if N_ is None else N_[idx]
        refit = _solve(fit.form, sample_n, D_[idx], y[idx], fit, HUBER_DELTA, tol=1e-10)
        samples.append([refit.params[k] for k in names])
        if at is not None:
            predictions.append(refit.predict(at["D"], at.get("N")))
    samples = np.asarray(samples)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    out = {
        "params": {k: (float(lo), float(hi)) for k, lo, hi in zip(names, low, high, strict=True)},
        "samples": samples,
    }
    if at is not None:
        lo, hi = np.percentile(np.asarray(predictions), [tail, 100 - tail], axis=0)
        out["prediction"] = (lo, hi)
    return out


def holdout_prediction(
    form: str,
    D,
    loss,
    holdout,
    N=None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Fit the law on the points outside ``holdout`` (a boolean mask), predict the held-out
    configuration and compare with its realised loss (the mean over its points: they share
    one ``N`` and ``D``, e.g. several seeds).

    Returns ``fit`` (the ScalingFit on the other points), ``D``, ``N``, ``realised``,
    ``predicted``, ``ci_low`` / ``ci_high`` (bootstrap interval of the prediction) and
    ``relative_error = (predicted - realised) / realised``."""
    holdout = np.asarray(holdout, dtype=bool)
    N_, D_, y = _points(form, N, D, loss)
    if holdout.shape != y.shape or not holdout.any():
        raise DataError("holdout must be a boolean mask over the points, marking at least one")
    config = {(D_[i], None if N_ is None else N_[i]) for i in np.flatnonzero(holdout)}
    if len(config) != 1:
        raise DataError("the held-out points must share one configuration (one N and one D)")
    (held_D, held_N), keep = next(iter(config)), ~holdout
    N_keep = None if N_ is None else N_[keep]
    fit = fit_law(form, D_[keep], y[keep], N_keep)
    predicted = float(fit.predict(held_D, held_N))
    at = {"D": held_D, "N": held_N}
    boot = bootstrap(fit, D_[keep], y[keep], N_keep, n_boot=n_boot, seed=seed, at=at)
    realised = float(y[holdout].mean())
    low, high = boot["prediction"]
    return {
        "fit": fit,
        "D": float(held_D),
        "N": None if held_N is None else float(held_N),
        "realised": realised,
        "predicted": predicted,
        "ci_low": float(low),
        "ci_high": float(high),
        "relative_error": (predicted - realised) / realised,
    }


# ---- the solver --------------------------------------------------------------------------


def _fit(form: str, N, D, loss, huber_delta: float) -> ScalingFit:
    N, D, y = _points(form, N, D, loss)
    _check_identifiable(form, N, D)
    # Every start gets a short plain least-squares solve (fast to converge); the best few
    # are then solved to full precision under the Huber loss, and the best of those kept.
    rough = [
        _solve(form, N, D, y, start, None, tol=1e-6, max_nfev=100) for start in _starts(form, y)
    ]
    rough.sort(key=lambda fit: fit.objective)
    polished = [_solve(form, N, D, y, fit, huber_delta) for fit in rough[:3]]
    return min(polished, key=lambda fit: fit.objective)


def _solve(
    form, N, D, y, start, huber_delta: float | None, tol: float = 1e-15, max_nfev: int = 1000
) -> ScalingFit:
    """One solve from ``start`` (a vector in the centred log space, or a previous fit
    whose optimum becomes the start); ``huber_delta`` None: plain least squares."""
    log_n = None if N is None else np.log(N)
    log_d = np.log(D)
    centre = (0.0 if log_n is None else float(log_n.mean()), float(log_d.mean()))
    if isinstance(start, ScalingFit):
        start = _recentre(start, centre)
    x_n = None if log_n is None else log_n - centre[0]
    x_d = log_d - centre[1]
    log_y = np.log(y)
    lower, upper = _bounds(form)
    result = least_squares(
        lambda theta: _log_law(form, theta, x_n, x_d)[0] - log_y,
        np.clip(start, lower + 1e-9, upper - 1e-9),
        jac=lambda theta: _log_law(form, theta, x_n, x_d)[1],
        bounds=(lower, upper),
        loss="linear" if huber_delta is None else "huber",
        f_scale=huber_delta or 1.0,
        xtol=tol,
        ftol=tol,
        gtol=tol,
        max_nfev=max_nfev,
    )
    return ScalingFit(
        form=form,
        params=_natural(form, result.x, centre),
        objective=float(result.cost),
        n_points=len(y),
        log_params=result.x,
        centre=centre,
    )


def _log_law(form, theta, x_n, x_d) -> tuple[np.ndarray, np.ndarray]:
    """log L_hat as a log-sum-exp of the law's terms (centred log N and log D), and its
    Jacobian: d LSE / d term_k is the softmax weight w_k of that term."""
    if form == "data":
        e, b, beta = theta
        terms = np.stack([np.full_like(x_d, e), b - beta * x_d])
    else:
        e, a, alpha, b, beta = theta
        terms = np.stack([np.full_like(x_d, e), a - alpha * x_n, b - beta * x_d])
    value = np.logaddexp.reduce(terms, axis=0)
    w = np.exp(terms - value)
    if form == "data":
        jacobian = [w[0], w[1], -w[1] * x_d]
    else:
        jacobian = [w[0], w[1], -w[1] * x_n, w[2], -w[2] * x_d]
    return value, np.stack(jacobian, axis=1)


def _bounds(form):
    # e, a, b free (E, A, B > 0 by construction); the exponents in (0, MAX_EXPONENT].
    free, exponent = (-np.inf, np.inf), (MIN_EXPONENT, MAX_EXPONENT)
    spans = [free, free, exponent] if form == "data" else [free, free, exponent, free, exponent]
    lower, upper = zip(*spans, strict=True)
    return np.array(lower), np.array(upper)


def _natural(form, theta, centre) -> dict[str, float]:
    """Centred log parameters -> E, A, alpha, B, beta of the law in N and D.

    ``b' - beta (log D - m) = (b' + beta m) - beta log D``, so ``log B = b' + beta m``."""
    if form == "data":
        e, b, beta = theta
        return {
            "E": float(np.exp(e)),
            "B": float(np.exp(b + beta * centre[1])),
            "beta": float(beta),
        }
    e, a, alpha, b, beta = theta
    return {
        "E": float(np.exp(e)),
        "A": float(np.exp(a + alpha * centre[0])),
        "alpha": float(alpha),
        "B": float(np.exp(b + beta * centre[1])),
        "beta": float(beta),
    }


def _recentre(fit: ScalingFit, centre) -> np.ndarray:
    """A fit's optimum in the coordinates of another centring (same law)."""
    p = fit.params
    if fit.form == "data":
        return np.array([np.log(p["E"]), np.log(p["B"]) - p["beta"] * centre[1], p["beta"]])
    return np.array(
        [
            np.log(p["E"]),
            np.log(p["A"]) - p["alpha"] * centre[0],
            p["alpha"],
            np.log(p["B"]) - p["beta"] * centre[1],
            p["beta"],
        ]
    )


def _starts(form: str, y: np.ndarray):
    """A small grid of starting points (Hoffmann et al. use a grid too), scaled by the
    smallest loss: E a fraction of it, each power-law term a fraction or multiple of it at
    the centre of the data, exponents from shallow to steep."""
    scale = float(y.min())
    es = np.log(scale * np.array([0.1, 0.5, 0.9]))
    terms = np.log(scale * np.array([0.05, 0.5]))
    exponents = [0.1, 0.4, 1.0]
    if form == "data":
        for e, b, beta in itertools.product(es, terms, exponents):
            yield np.array([e, b, beta])
        return
    for e, a, alpha, b, beta in itertools.product(es, terms, exponents, terms, exponents):
        yield np.array([e, a, alpha, b, beta])


# ---- input checks ------------------------------------------------------------------------


def _positive(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    bad = np.atleast_1d(array)[~(np.isfinite(np.atleast_1d(array)) & (np.atleast_1d(array) > 0))]
    if bad.size:
        raise DataError(
            f"{name} must be finite and positive (tokens, parameters and losses are); got "
            f"{bad[:3].tolist()}: drop those runs or fix their records"
        )
    return array


def _points(form: str, N, D, loss):
    if form not in PARAMETERS:
        raise DataError(f"unknown scaling law {form!r}; choose 'data' or 'joint'")
    D = np.atleast_1d(_positive(D, "D (tokens)")).ravel()
    y = np.atleast_1d(_positive(loss, "loss")).ravel()
    if form == "joint":
        if N is None:
            raise DataError("the joint law L(N, D) needs N (non-embedding parameters) per point")
        N = np.atleast_1d(_positive(N, "N (parameters)")).ravel()
    if len(D) != len(y) or (N is not None and len(N) != len(y)):
        raise DataError("D, loss (and N) must have one value per point, the same length")
    if form == "data":
        N = None
    n_params = len(PARAMETERS[form])
    if len(y) < n_params:
        raise DataError(
            f"the law {_name(form)} has {n_params} parameters but only {len(y)} points were "
            f"given; fit it on at least {n_params} runs"
        )
    return N, D, y


def _identifiable(form: str, N, D) -> bool:
    # Each power-law term plus the shared offset needs 3 distinct values of its variable.
    if len(np.unique(D)) < 3:
        return False
    return form == "data" or len(np.unique(N)) >= 3


def _check_identifiable(form: str, N, D) -> None:
    if not _identifiable(form, N, D):
        need = "3 distinct token counts D" + ("" if form == "data" else " and 3 distinct N")
        got = f"{len(np.unique(D))} distinct D" + (
            "" if form == "data" else f", {len(np.unique(N))} distinct N"
        )
        raise DataError(
            f"the law {_name(form)} cannot be identified from these points ({got}); it needs "
            f"at least {need}: add token budgets (or model sizes)"
        )


def _name(form: str) -> str:
    return "L(D) = E + B / D^beta" if form == "data" else "L(N, D) = E + A/N^alpha + B/D^beta"
