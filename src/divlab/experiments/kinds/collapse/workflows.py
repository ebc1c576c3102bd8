"""Model-collapse *workflows* for the analytic chains: what each fit trains on
(BRIEF section 7; issue 16).

Hand-written maths: the simulators and their exact moments are the product, and the tests
pin one against the other (as in :mod:`.chains`).

**Workflows.** Fit ``n = 1 .. G`` (generation ``n``; generation 0 is the truth) trains on

* ``replace``: only the ``M`` samples drawn from fit ``n - 1`` (fit 1: ``M`` real samples);
* ``accumulate``: the *pool*, the ``M`` real samples and the ``M`` samples drawn from each
  of fits ``1 .. n - 1`` (``N_n = n M`` samples; Gerstgrasser et al. 2024, "Is model
  collapse inevitable? Breaking the curse of recursion by accumulating real and synthetic
  data");
* ``accumulate-subsample``: a uniform subsample *without replacement* of fixed size ``S``
  (``subsample``, default ``M``) of that pool (fixed compute per fit; Kazdan et al. 2025,
  "Collapse or thrive? Perils and promises of synthetic data in a self-generating world").
  ``S`` may not exceed the first pool (``M``, or ``T`` rows for the regression).

From the papers (their abstracts, read through the search tool) we confirmed the three
workflows and the qualitative results: replacing makes the linear-regression test error
grow linearly in the iterations, accumulating bounds it independently of the iterations,
and the fixed-size subsample of the accumulated data degrades slowly. The exact statements
below (``sigma^2 d / (T - d - 1)`` times ``n`` or ``sum_{i<=n} 1/i^2``) were found only in
secondary summaries of Gerstgrasser et al.'s theorem, not in the theorem's own text; we
re-derived both here and the Monte Carlo tests check them. *Without* replacement in the
subsample is our reading of Kazdan et al. (the abstract says "fixed-size data subsets").

**Gaussian chain** (as :func:`.chains.gaussian_chain`: a fit is the mean and the variance,
divided by ``m - 1`` or ``m`` for ``m`` samples, ``b(m) = 1`` or ``(m - 1)/m``). Batch
``n`` is ``M`` draws from ``N(mu_{n-1}, s_{n-1}^2)`` (fit 0: ``(mu, sigma)``); its mean is
``mu_{n-1} + eta_n`` with ``E[eta_n | past] = 0``, ``E[eta_n^2] = E[s_{n-1}^2] / M``, and
its within-batch sum of squares ``W_n`` has ``E[W_n] = (M - 1) E[s_{n-1}^2]``. With
``known_variance`` only the mean is refitted: every batch is drawn with ``sigma``, so read
``sigma^2`` for ``E[s_{n-1}^2]`` in the draws, and ``s_n = sigma`` exactly.

Let the pool of fit ``n`` hold ``N_n`` samples with mean ``P_n`` and sum of squares
``SS_n`` (``V_n = SS_n / (N_n - 1)``), and ``f_n = P_n - mu``. The fit's mean is
``mu_n = P_n + delta_n``, ``delta_n`` the subsample mean minus the pool mean: given the
pool it has mean 0 and (simple random sampling without replacement of ``S`` of ``N``)
``E[delta_n^2 | pool] = (V_n / S)(1 - S / N_n)``, and the subsample's ``ddof = 1``
variance has ``E[. | pool] = V_n``; ``delta_n = 0`` when the fit uses the whole pool.
Appending batch ``n`` to the pool, with ``g_n = batch mean - P_{n-1} = delta_{n-1} +
eta_n`` (since ``mu_{n-1} = P_{n-1} + delta_{n-1}``):

    P_n  = P_{n-1} + (M / N_n) g_n,
    SS_n = SS_{n-1} + W_n + (N_{n-1} M / N_n) g_n^2    (the pooled sum of squares).

Every cross term has mean zero (``delta`` has conditional mean 0 given its pool, ``eta``
given the whole past, and ``f_{n-1}`` is a function of the pool), so the expectations obey
a *linear* recursion, exact for all three workflows (fit 0: ``E f^2 = E delta^2 = 0``):

    E[g_n^2]          = E[delta_{n-1}^2] + E[s_{n-1}^2] / M
    E[f_n^2]          = E[f_{n-1}^2] + (M / N_n)^2 E[g_n^2]
    E[SS_n]           = E[SS_{n-1}] + (M - 1) E[s_{n-1}^2] + (N_{n-1} M / N_n) E[g_n^2]
    E[delta_n^2]      = (E[SS_n] / (N_n - 1)) (1 / S)(1 - S / N_n)
    E[s_n^2]          = b(S) E[SS_n] / (N_n - 1)
    E[(mu_n - mu)^2]  = E[f_n^2] + E[delta_n^2].

``replace`` is the pool reset to the last batch (``N_n = M``, ``SS_n = W_n``, ``f_n =
mu_{n-1} - mu + eta_n``, ``S = M``): ``E[s_n^2] = b(M) E[s_{n-1}^2]`` and ``E[(mu_n -
mu)^2] = E[(mu_{n-1} - mu)^2] + E[s_{n-1}^2] / M``, the moments of
:func:`.chains.gaussian_expectations`. ``accumulate`` is ``S = N_n = n M``, ``delta = 0``:
``E[SS_n] = E[SS_{n-1}] + (M - 1 + (n - 1)/n) E[s_{n-1}^2]``, ``E[s_n^2] = b(nM) E[SS_n] /
(nM - 1)``, ``E[f_n^2] = E[f_{n-1}^2] + E[s_{n-1}^2] / (n^2 M)``.

Hand forms with a known variance: ``replace`` ``E[(mu_n - mu)^2] = n sigma^2 / M`` (a sum
of ``n`` independent ``N(0, sigma^2/M)`` steps); ``accumulate`` ``mu_n - mu = (mu_{n-1} -
mu) + eta_n / n`` (the pool mean moves by ``1/n`` of the new batch's deviation, and
``mu_{n-1} = P_{n-1}``), so ``E[(mu_n - mu)^2] = (sigma^2 / M) sum_{i<=n} 1/i^2 <
(pi^2/6) sigma^2 / M``.

``std`` (``E[s_n]``) and ``w2`` (``E[W2^2] = E[(mu_n - mu)^2] + E[s_n^2] - 2 sigma E[s_n]
+ sigma^2``) need ``E[s_n]``, which is not linear in the pool's moments: exact for
``replace`` (:func:`.chains.gaussian_expectations`), with a known variance (``s_n =
sigma``, so ``W2^2 = (mu_n - mu)^2``), and at fit 1 of every workflow (fit 1 sees ``m``
i.i.d. draws from the truth: ``m = M``, or ``S``, since a subsample without replacement of
i.i.d. draws is i.i.d.); NaN elsewhere (no closed form; not approximated).

**Linear regression** (Dohmatob et al. 2024, "Model collapse demystified: the case of
regression"; Gerstgrasser et al. 2024, section 2). Per chain a fixed design ``X`` in
``R^{T x d}`` with i.i.d. ``N(0, 1)`` entries, drawn once and reused every generation,
and ``w* ~ N(0, I_d)``. Fit 1 is OLS on ``y_1 = X w* + eps_1``; generation ``n`` labels
``y_n = X w_{n-1} + eps_n`` (``eps ~ N(0, sigma^2 I_T)``, fresh each time) and refits by
OLS on ``(X, y_n)`` (``replace``), on the stack ``(X; ..; X)`` of ``n`` copies with all
labels so far (``accumulate``; its normal equations are ``n X'X w = X' sum_i y_i``), or on
``S`` rows (default ``T``) drawn without replacement from that stack of ``n T`` rows
(``accumulate-subsample``). ``test_error = E_x[(x'(w_n - w*))^2] = ||w_n - w*||^2`` for an
isotropic test point ``x ~ N(0, I_d)`` (the excess risk, label noise left out).

With ``A = (X'X)^{-1} X'``: ``replace`` ``w_n - w* = (w_{n-1} - w*) + A eps_n`` and
``accumulate`` ``w_n = (1/n) sum_{i<=n} (w_{i-1} + A eps_i)`` (``w_0 = w*``), i.e.
``w_n - w* = (w_{n-1} - w*) + A eps_n / n``. The ``eps`` are independent of each other and
of ``X``, and ``E[(X'X)^{-1}] = I_d / (T - d - 1)`` (inverse Wishart, ``T > d + 1``), so
``E||A eps||^2 = sigma^2 d / (T - d - 1)`` and

    replace:     E[test_error_n] = sigma^2 d / (T - d - 1) * n,
    accumulate:  E[test_error_n] = sigma^2 d / (T - d - 1) * sum_{i<=n} 1/i^2
                 (< pi^2/6 sigma^2 d / (T - d - 1)).

``accumulate-subsample`` has no closed form beyond fit 1 (``S`` i.i.d. rows:
``sigma^2 d / (S - d - 1)``, infinite for ``S <= d + 1``): its design is a random multiset
of ``X``'s rows, repeated rows carrying labels of different generations whose errors
depend on ``X`` through earlier fits, and the expectation of the inverse of such a Gram
matrix is not an inverse-Wishart moment. A subsample with fewer than ``d`` distinct rows
has a singular Gram matrix (any ``d`` distinct Gaussian rows are independent almost
surely); that chain gets the minimum-norm least-squares fit (the pseudo-inverse), and
``S < d`` is refused.

Every simulator returns one row per generation with the mean over chains, standard error,
normal 95 % CI and ``<stat>_exact`` (NaN where no closed form), as :mod:`.chains` does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from divlab import seeds
from divlab.errors import ConfigError
from divlab.experiments.kinds.collapse.chains import (
    CHUNK_DRAWS,
    GAUSSIAN_STATS,
    _check_gaussian,
    _columns,
    gaussian_expectations,
    log_c4,
    schedule,
)

WORKFLOWS = ("replace", "accumulate", "accumulate-subsample")
REPLACE, ACCUMULATE, SUBSAMPLE = WORKFLOWS


# ---- validation -------------------------------------------------------------------------
def _check_workflow(workflow: str, generations: int, chains: int | None = None) -> None:
    if workflow not in WORKFLOWS:
        raise ConfigError(
            f"unknown workflow {workflow!r}; choose one of {', '.join(map(repr, WORKFLOWS))}"
        )
    whole = isinstance(generations, int | np.integer) and not isinstance(generations, bool)
    if not whole or generations < 1:
        raise ConfigError(f"generations must be an integer >= 1 (the fits), got {generations!r}")
    if chains is not None and chains < 2:
        raise ConfigError(f"chains must be >= 2 (a standard error), got {chains}")


def _subsample_size(workflow: str, subsample: int | None, first_pool: int, least: int) -> int:
    """The fit size ``S`` of ``accumulate-subsample`` (default: the first pool), checked."""
    if workflow != SUBSAMPLE:
        if subsample is not None:
            raise ConfigError(
                f"subsample applies to the 'accumulate-subsample' workflow only, not {workflow!r}"
            )
        return first_pool
    size = first_pool if subsample is None else subsample
    if not isinstance(size, int | np.integer) or size < least:
        raise ConfigError(f"subsample must be an integer >= {least}, got {size!r}")
    if size > first_pool:
        raise ConfigError(
            f"subsample = {size} exceeds the first pool ({first_pool} real samples at fit 1); "
            f"use subsample <= {first_pool}"
        )
    return int(size)


def _fit_samples(workflow: str, batch: int, generations: int, subsample: int) -> np.ndarray:
    """Samples (or rows) fit ``n = 0 .. G`` trains on (0 for the truth)."""
    n = np.arange(generations + 1)
    if workflow == REPLACE:
        return np.where(n > 0, batch, 0)
    if workflow == ACCUMULATE:
        return n * batch
    return np.where(n > 0, subsample, 0)


def _check_batch(M) -> int:
    if not isinstance(M, int | np.integer):
        raise ConfigError(f"M must be one integer (samples drawn per generation), got {M!r}")
    return int(M)


# ---- the Gaussian chain: exact moments ----------------------------------------------------
def _pool_moments(
    workflow: str,
    M: int,
    generations: int,
    sigma: float,
    estimator: str,
    known_variance: bool,
    subsample: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``E[s_n^2]`` and ``E[(mu_n - mu)^2]`` for ``n = 0 .. G`` by the linear recursion of
    the module docstring (``E[s_n^2] = sigma^2`` with a known variance)."""

    def shrink(m: float) -> float:
        return 1.0 if estimator == "unbiased" else (m - 1.0) / m

    variance, mean_error = [sigma**2], [0.0]
    f2 = ss = delta2 = 0.0  # E[f^2], E[SS], E[delta^2] of the current fit (fit 0: the truth)
    pool = 0
    for _ in range(generations):
        draw = sigma**2 if known_variance else variance[-1]  # E[s_{n-1}^2] of the draws
        gap2 = delta2 + draw / M  # E[g_n^2]
        if workflow == REPLACE:
            pool, f2, ss, size = M, mean_error[-1] + draw / M, (M - 1) * draw, M
        else:
            previous, pool = pool, pool + M
            f2 = f2 + (M / pool) ** 2 * gap2
            ss = ss + (M - 1) * draw + previous * M / pool * gap2
            size = pool if workflow == ACCUMULATE else subsample
        spread = ss / (pool - 1)  # E[V_n]
        delta2 = spread / size * (1.0 - size / pool)
        variance.append(sigma**2 if known_variance else shrink(size) * spread)
        mean_error.append(f2 + delta2)
    return np.array(variance), np.array(mean_error)


def gaussian_workflow_expectations(
    workflow: str,
    M: int,
    generations: int,
    sigma: float = 1.0,
    estimator: str = "unbiased",
    known_variance: bool = False,
    subsample: int | None = None,
) -> pd.DataFrame:
    """Exact ``E[s_n^2]``, ``E[s_n]``, ``E[(mu_n - mu)^2]`` and ``E[W2^2]`` of the Gaussian
    chain under ``workflow`` for ``n = 0 .. generations`` (module docstring; NaN where no
    closed form); columns ``generation, M, workflow, fit_samples, variance_exact,
    std_exact, mean_error_exact, w2_exact``."""
    _check_workflow(workflow, generations)
    M = _check_batch(M)
    sizes = schedule(M, generations)
    _check_gaussian(sizes, sigma, estimator)
    size = _subsample_size(workflow, subsample, M, least=2)
    variance, mean_error = _pool_moments(
        workflow, M, int(generations), sigma, estimator, known_variance, size
    )
    if known_variance:
        std = np.full(generations + 1, float(sigma))
        w2 = mean_error.copy()  # s_n = sigma: W2^2 = (mu_n - mu)^2
    elif workflow == REPLACE:
        exact = gaussian_expectations(M, generations, sigma, estimator)
        std, w2 = exact.std_exact.to_numpy(), exact.w2_exact.to_numpy()
    else:  # only fit 1 (m i.i.d. draws from the truth) has E[s_n] in closed form
        std, w2 = np.full(generations + 1, np.nan), np.full(generations + 1, np.nan)
        first = M if workflow == ACCUMULATE else size
        shrink = 1.0 if estimator == "unbiased" else (first - 1.0) / first
        std[0], w2[0] = sigma, 0.0
        std[1] = sigma * np.exp(log_c4(first)) * np.sqrt(shrink)
        w2[1] = mean_error[1] + variance[1] - 2 * sigma * std[1] + sigma**2
    return pd.DataFrame(
        {
            "generation": np.arange(generations + 1),
            "M": np.concatenate([[0], sizes]),
            "workflow": workflow,
            "fit_samples": _fit_samples(workflow, M, generations, size),
            "variance_exact": variance,
            "std_exact": std,
            "mean_error_exact": mean_error,
            "w2_exact": w2,
        }
    )


# ---- the Gaussian chain: simulation -------------------------------------------------------
def gaussian_workflow(
    workflow: str,
    M: int,
    generations: int,
    chains: int = 2000,
    mu: float = 0.0,
    sigma: float = 1.0,
    estimator: str = "unbiased",
    known_variance: bool = False,
    subsample: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate ``chains`` independent Gaussian chains under ``workflow`` (``M`` samples
    drawn per generation; vectorised over chains, in chunks of bounded memory); one row per
    generation with the mean, SE and 95 % CI over chains of ``variance`` (s_n^2), ``std``
    (s_n), ``mean_error`` ((mu_n - mu)^2) and ``w2`` (W2^2 to the original), beside the
    columns of :func:`gaussian_workflow_expectations`. ``accumulate`` keeps the pool's
    count, mean and sum of squares; ``accumulate-subsample`` keeps the pool's values."""
    exact = gaussian_workflow_expectations(
        workflow, M, generations, sigma, estimator, known_variance, subsample
    )
    _check_workflow(workflow, generations, chains)
    size = int(exact.fit_samples.iloc[-1]) if workflow == SUBSAMPLE else M
    rng = seeds.rng(seed, "collapse-workflow", "gaussian", workflow)
    per_chain = M * (generations if workflow == SUBSAMPLE else 1)  # values held per chain
    step = max(1, CHUNK_DRAWS // per_chain)
    means, stds = np.empty((chains, generations + 1)), np.empty((chains, generations + 1))
    for start in range(0, chains, step):
        part = slice(start, min(start + step, chains))
        means[part], stds[part] = _gaussian_paths(
            workflow, part.stop - part.start, M, generations, mu, sigma,
            1 if estimator == "unbiased" else 0, known_variance, size, rng,
        )  # fmt: skip
    rows = []
    for n in range(generations + 1):
        row = {"generation": n}
        error = (means[:, n] - mu) ** 2
        _columns(row, "variance", stds[:, n] ** 2)
        _columns(row, "std", stds[:, n])
        _columns(row, "mean_error", error)
        _columns(row, "w2", error + (stds[:, n] - sigma) ** 2)
        rows.append(row)
    return exact.merge(pd.DataFrame(rows), on="generation")


def _gaussian_paths(
    workflow: str,
    chains: int,
    M: int,
    generations: int,
    mu: float,
    sigma: float,
    ddof: int,
    known_variance: bool,
    subsample: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``(mu_n, s_n)`` of ``chains`` chains for ``n = 0 .. G``, each of shape (chains, G+1)."""
    means, stds = np.empty((chains, generations + 1)), np.empty((chains, generations + 1))
    mean, std = np.full(chains, float(mu)), np.full(chains, float(sigma))
    means[:, 0], stds[:, 0] = mean, std
    count, pool_mean, pool_ss = 0, np.zeros(chains), np.zeros(chains)  # accumulate
    pool = np.empty((chains, generations * M)) if workflow == SUBSAMPLE else None
    for n in range(1, generations + 1):
        batch = rng.normal(mean[:, None], std[:, None], (chains, M))
        if workflow == REPLACE:
            mean, std = batch.mean(axis=1), batch.std(axis=1, ddof=ddof)
        elif workflow == ACCUMULATE:
            batch_mean = batch.mean(axis=1)
            within = ((batch - batch_mean[:, None]) ** 2).sum(axis=1)
            gap, total = batch_mean - pool_mean, count + M
            pool_ss = pool_ss + within + count * M / total * gap**2
            pool_mean = pool_mean + M / total * gap
            count = total
            mean, std = pool_mean, np.sqrt(pool_ss / (count - ddof))
        else:
            pool[:, (n - 1) * M : n * M] = batch
            chosen = _without_replacement(pool[:, : n * M], subsample, rng)
            mean, std = chosen.mean(axis=1), chosen.std(axis=1, ddof=ddof)
        if known_variance:
            std = np.full(chains, float(sigma))
        means[:, n], stds[:, n] = mean, std
    return means, stds


def _without_replacement(values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform subsample of ``size`` of each row's values, without replacement."""
    if size >= values.shape[1]:
        return values
    return np.take_along_axis(values, _choose(values.shape, size, rng), axis=1)


def _choose(shape: tuple[int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct column indices per row, uniformly (the smallest of random keys)."""
    return np.argpartition(rng.random(shape), size - 1, axis=1)[:, :size]


# ---- the linear-regression chain ----------------------------------------------------------
def regression_expectations(
    workflow: str,
    T: int,
    d: int,
    generations: int,
    sigma: float = 1.0,
    subsample: int | None = None,
) -> pd.DataFrame:
    """Exact ``E[||w_n - w*||^2]`` (the isotropic test error) for ``n = 0 .. generations``:
    ``sigma^2 d / (T - d - 1)`` times ``n`` (``replace``) or ``sum_{i<=n} 1/i^2``
    (``accumulate``); ``accumulate-subsample`` only at fit 1, NaN after (module
    docstring). Columns ``generation, T, d, workflow, fit_samples, test_error_exact``."""
    _check_workflow(workflow, generations)
    _check_regression(T, d, sigma)
    size = _subsample_size(workflow, subsample, T, least=d)
    n = np.arange(generations + 1)
    unit = sigma**2 * d / (T - d - 1)
    if workflow == REPLACE:
        exact = unit * n
    elif workflow == ACCUMULATE:
        exact = unit * np.concatenate([[0.0], np.cumsum(1.0 / n[1:] ** 2)])
    else:
        exact = np.full(generations + 1, np.nan)
        exact[0] = 0.0
        exact[1] = sigma**2 * d / (size - d - 1) if size > d + 1 else np.inf
    return pd.DataFrame(
        {
            "generation": n,
            "T": T,
            "d": d,
            "workflow": workflow,
            "fit_samples": _fit_samples(workflow, T, generations, size),
            "test_error_exact": exact,
        }
    )


def _check_regression(T: int, d: int, sigma: float) -> None:
    if not isinstance(d, int | np.integer) or d < 1:
        raise ConfigError(f"d (features) must be an integer >= 1, got {d!r}")
    if not isinstance(T, int | np.integer) or T - d - 1 <= 0:  # the closed form divides by it
        raise ConfigError(
            f"T = {T!r} samples per generation must exceed d + 1 = {d + 1} (the OLS test "
            "error sigma^2 d / (T - d - 1) is finite only then)"
        )
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")


def regression_workflow(
    workflow: str,
    T: int,
    d: int,
    generations: int,
    chains: int = 2000,
    sigma: float = 1.0,
    subsample: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate ``chains`` linear-regression chains under ``workflow`` (fixed Gaussian
    design ``X`` in ``R^{T x d}`` per chain, labels from the previous fit plus noise
    ``sigma``, OLS refits; module docstring), batched over chains; one row per generation
    with the mean, SE and 95 % CI of ``test_error`` (``||w_n - w*||^2``) beside the
    columns of :func:`regression_expectations`."""
    exact = regression_expectations(workflow, T, d, generations, sigma, subsample)
    _check_workflow(workflow, generations, chains)
    size = int(exact.fit_samples.iloc[-1]) if workflow == SUBSAMPLE else T
    rng = seeds.rng(seed, "collapse-workflow", "regression", workflow)
    per_chain = T * d + (2 * generations * T if workflow == SUBSAMPLE else T)
    step = max(1, CHUNK_DRAWS // per_chain)
    errors = np.empty((chains, generations + 1))
    for start in range(0, chains, step):
        part = slice(start, min(start + step, chains))
        errors[part] = _regression_paths(
            workflow, part.stop - part.start, T, d, generations, sigma, size, rng
        )
    rows = []
    for n in range(generations + 1):
        row = {"generation": n}
        _columns(row, "test_error", errors[:, n])
        rows.append(row)
    return exact.merge(pd.DataFrame(rows), on="generation")


def _regression_paths(
    workflow: str,
    chains: int,
    T: int,
    d: int,
    generations: int,
    sigma: float,
    subsample: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``||w_n - w*||^2`` of ``chains`` chains for ``n = 0 .. G``, shape (chains, G+1)."""
    X = rng.standard_normal((chains, T, d))
    truth = rng.standard_normal((chains, d))
    gram = X.transpose(0, 2, 1) @ X  # (chains, d, d)
    weights = truth.copy()
    errors = np.zeros((chains, generations + 1))
    label_sum = np.zeros((chains, T))  # accumulate: the stack's normal equations
    pool = np.empty((chains, generations * T)) if workflow == SUBSAMPLE else None
    for n in range(1, generations + 1):
        labels = (X @ weights[:, :, None])[:, :, 0] + sigma * rng.standard_normal((chains, T))
        if workflow == REPLACE:
            weights = _solve(gram, _moment(X, labels))
        elif workflow == ACCUMULATE:
            label_sum += labels
            weights = _solve(n * gram, _moment(X, label_sum))
        else:
            pool[:, (n - 1) * T : n * T] = labels
            weights = _subsample_fit(X, pool[:, : n * T], subsample, rng)
        errors[:, n] = ((weights - truth) ** 2).sum(axis=1)
    return errors


def _moment(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``X' y`` per chain: (chains, d)."""
    return (X.transpose(0, 2, 1) @ labels[:, :, None])[:, :, 0]


def _solve(gram: np.ndarray, moment: np.ndarray) -> np.ndarray:
    return np.linalg.solve(gram, moment[:, :, None])[:, :, 0]


def _subsample_fit(
    X: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """OLS on ``size`` rows drawn without replacement from the stack ``(X; ..; X)`` whose
    labels are ``labels`` (chains, n T): row ``k`` of the stack is ``X[k mod T]``. The fit
    needs only the count ``c_t`` and the label sum ``r_t`` of the chosen copies of each
    row ``t``: Gram ``X' diag(c) X`` and moment ``X' r``."""
    chains, T, d = X.shape
    total = labels.shape[1]
    if size >= total:
        chosen = np.broadcast_to(np.arange(total), (chains, total))
    else:
        chosen = _choose(labels.shape, size, rng)
    flat = (np.arange(chains)[:, None] * T + chosen % T).ravel()
    counts = np.bincount(flat, minlength=chains * T).reshape(chains, T).astype(float)
    picked = np.take_along_axis(labels, chosen, axis=1).ravel()
    sums = np.bincount(flat, weights=picked, minlength=chains * T).reshape(chains, T)
    gram = (X.transpose(0, 2, 1) * counts[:, None, :]) @ X
    moment = _moment(X, sums)
    # fewer than d distinct rows: a singular Gram matrix, fitted by the pseudo-inverse
    singular = (counts > 0).sum(axis=1) < d
    weights = np.empty((chains, d))
    if (~singular).any():
        weights[~singular] = _solve(gram[~singular], moment[~singular])
    if singular.any():
        inverse = np.linalg.pinv(gram[singular], rcond=1e-10, hermitian=True)
        weights[singular] = (inverse @ moment[singular][:, :, None])[:, :, 0]
    return weights


__all__ = [
    "GAUSSIAN_STATS",
    "WORKFLOWS",
    "gaussian_workflow",
    "gaussian_workflow_expectations",
    "regression_expectations",
    "regression_workflow",
]
