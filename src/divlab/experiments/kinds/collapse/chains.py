"""Model collapse in closed form: the Gaussian and the discrete refitting chains
(Shumailov et al. 2024, "AI models collapse when trained on recursively generated data",
a.k.a. "The Curse of Recursion"; BRIEF section 7).

Hand-written maths: the simulators and their exact moments are the product, and the tests
pin one against the other.

**Gaussian chain.** ``(mu_0, s_0) = (mu, s)``; fit ``i = 1 .. n`` draws ``M_i`` samples
from ``N(mu_{i-1}, s_{i-1}^2)`` and sets ``mu_i`` to their mean and ``s_i^2`` to their
variance, divided by ``M_i - 1`` (``unbiased``) or ``M_i`` (``biased``). With
``b_i = 1`` (unbiased) or ``(M_i - 1) / M_i`` (biased), ``s_i^2 = s_{i-1}^2 b_i
chi2_{M_i-1} / (M_i - 1)``, independent of ``mu_i ~ N(mu_{i-1}, s_{i-1}^2 / M_i)``, so:

* ``E[s_n^2] = s^2 prod_i b_i`` (unbiased: a martingale; biased: ``s^2 ((M-1)/M)^n``);
* ``E[s_n] = s prod_i c4(M_i) sqrt(b_i)``, ``c4(M) = sqrt(2/(M-1)) Gamma(M/2) /
  Gamma((M-1)/2)`` (computed with ``gammaln``: the Gammas overflow past M ~ 340);
* ``E[(mu_n - mu)^2] = sum_i E[s_{i-1}^2] / M_i`` (unbiased: ``s^2 sum_i 1/M_i``);
* ``W2^2 = (mu_n - mu)^2 + (s_n - s)^2`` between the fit and the original Gaussian, so
  ``E[W2^2] = E[(mu_n - mu)^2] + E[s_n^2] - 2 s E[s_n] + s^2`` (unbiased:
  ``s^2 [sum 1/M_i + 2 - 2 prod c4(M_i)]``; M = 100, 51 fits: 0.7517, ``E[s] = 0.8792``).

The biased-estimator moments beyond ``E[s_n^2]`` follow from the same factorisation
(``sqrt(b_i chi2/(M_i-1))`` has mean ``c4(M_i) sqrt(b_i)``).

**Discrete chain.** A categorical ``p_0`` over ``K`` states; fit ``i`` draws ``M_i``
samples from ``p_{i-1}`` and sets ``p_i`` to their frequencies. ``p_n`` is a martingale
(``E[p_n] = p_0``), so the chain is absorbed in a delta at state ``i`` with probability
``q_i = p_0[i]``; Gini-Simpson diversity ``H = 1 - sum p^2`` decays in expectation as
``E[H_n] = H_0 prod_i (1 - 1/M_i)`` (``E[sum p_hat^2] = 1/M + (1 - 1/M) sum p^2``), and
the expected tail mass stays at its start while the share of chains that lost the
whole tail grows to ``1 - tail mass`` (collapse shows in the distribution over chains,
not in the mean).

**Tail mass** (shared with the language-model recursion of ``divlab.experiments.collapse``):
the *tail* of a reference distribution ``p_0`` at quantile ``q`` is the set of its rarest
symbols that together hold at most a share ``q`` of its mass: sort symbols by ``p_0``
ascending (ties by index) and keep the longest prefix whose cumulative mass is ``<= q``
(at least the rarest symbol). The tail mass of ``p`` is ``sum_{t in tail} p(t)``: the
share of the new distribution that still falls on the original's rare events.

Every simulator returns a pandas DataFrame with one row per generation (0 = the start):
for each statistic its mean over chains, standard error and a normal 95 % CI
(``mean +- 1.96 se``), and ``<stat>_exact`` where a closed form exists.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd
from scipy.special import gammaln

from divlab import seeds
from divlab.errors import ConfigError

Z95 = 1.959963984540054  # the normal 97.5 % quantile
CHUNK_DRAWS = 1 << 22  # samples drawn at once: bounds memory whatever chains x M is


# ---- shared helpers ---------------------------------------------------------------------
def schedule(M: int | list[int], generations: int | None = None) -> np.ndarray:
    """The sample sizes ``M_1 .. M_n`` of the fits: a list as given, or ``M`` repeated
    ``generations`` times."""
    if isinstance(M, int | np.integer):
        if generations is None or generations < 1:
            raise ConfigError("a constant sample size M needs generations >= 1 (the fits)")
        sizes = np.full(int(generations), int(M))
    else:
        sizes = np.asarray(list(M), dtype=np.int64)
        if generations is not None and generations != len(sizes):
            raise ConfigError(
                f"the schedule M has {len(sizes)} fits but generations = {generations}; "
                "drop generations or make them agree"
            )
    if len(sizes) == 0:
        raise ConfigError("the sample-size schedule M is empty; give at least one fit")
    if sizes.min() < 1:
        raise ConfigError(f"every sample size M_i must be >= 1, got {sizes.min()}")
    return sizes


def log_c4(M) -> np.ndarray:
    """``log c4(M)``, ``c4(M) = sqrt(2/(M-1)) Gamma(M/2) / Gamma((M-1)/2)`` = ``E[S]/sigma``
    for the unbiased sample SD of ``M`` normal draws (``M >= 2``)."""
    M = np.asarray(M, dtype=float)
    return 0.5 * np.log(2.0 / (M - 1.0)) + gammaln(M / 2.0) - gammaln((M - 1.0) / 2.0)


def c4(M) -> np.ndarray:
    return np.exp(log_c4(M))


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean over chains (axis 0), its standard error and the normal 95 % CI."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": mean, "se": se, "ci_low": mean - Z95 * se, "ci_high": mean + Z95 * se}


def _columns(row: dict, name: str, values: np.ndarray) -> None:
    for key, value in summarize(values).items():
        row[f"{name}_{key}"] = value


def tail_set(reference: np.ndarray, quantile: float) -> np.ndarray:
    """Indices of the tail of ``reference`` at ``quantile`` (see the module docstring)."""
    reference = np.asarray(reference, dtype=float)
    if not 0 < quantile < 1:
        raise ConfigError(f"the tail quantile must be in (0, 1), got {quantile}")
    total = reference.sum()
    if total <= 0:
        raise ConfigError("the reference distribution of the tail has no mass")
    order = np.argsort(reference / total, kind="stable")
    cumulative = np.cumsum(reference[order] / total)
    # a small slack so that floating-point sums of exact shares (e.g. 0.1 + 0.1) count
    keep = max(int(np.searchsorted(cumulative, quantile + 1e-12, side="right")), 1)
    return np.sort(order[:keep])


def tail_mass(distribution: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """``sum_{t in tail} p(t)`` of each row of ``distribution`` (normalised here)."""
    distribution = np.asarray(distribution, dtype=float)
    totals = distribution.sum(axis=-1)
    return distribution[..., tail].sum(axis=-1) / np.where(totals > 0, totals, 1.0)


# ---- the Gaussian chain -----------------------------------------------------------------
GAUSSIAN_STATS = ("variance", "std", "mean_error", "w2")


def gaussian_expectations(
    M: int | list[int],
    generations: int | None = None,
    sigma: float = 1.0,
    estimator: str = "unbiased",
) -> pd.DataFrame:
    """Exact ``E[s_n^2]``, ``E[s_n]``, ``E[(mu_n - mu)^2]`` and ``E[W2^2]`` after each
    number of fits ``n = 0 .. len(schedule)`` (module docstring); columns
    ``generation, M, variance_exact, std_exact, mean_error_exact, w2_exact``."""
    sizes = schedule(M, generations)
    _check_gaussian(sizes, sigma, estimator)
    shrink = np.ones(len(sizes)) if estimator == "unbiased" else (sizes - 1.0) / sizes
    variance = sigma**2 * np.concatenate([[1.0], np.cumprod(shrink)])
    std = sigma * np.exp(np.concatenate([[0.0], np.cumsum(log_c4(sizes) + 0.5 * np.log(shrink))]))
    mean_error = np.concatenate([[0.0], np.cumsum(variance[:-1] / sizes)])
    return pd.DataFrame(
        {
            "generation": np.arange(len(sizes) + 1),
            "M": np.concatenate([[0], sizes]),
            "variance_exact": variance,
            "std_exact": std,
            "mean_error_exact": mean_error,
            "w2_exact": mean_error + variance - 2 * sigma * std + sigma**2,
        }
    )


def _check_gaussian(sizes: np.ndarray, sigma: float, estimator: str) -> None:
    if estimator not in ("unbiased", "biased"):
        raise ConfigError(f"estimator must be 'unbiased' or 'biased', got {estimator!r}")
    if sizes.min() < 2:
        raise ConfigError("the Gaussian chain needs M_i >= 2 samples per fit (a variance)")
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")


def gaussian_chain(
    M: int | list[int],
    generations: int | None = None,
    chains: int = 2000,
    mu: float = 0.0,
    sigma: float = 1.0,
    estimator: str = "unbiased",
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate ``chains`` independent Gaussian chains by drawing the samples of every fit
    (vectorised over chains); one row per generation with the mean, SE and 95 % CI over
    chains of ``variance`` (s_n^2), ``std`` (s_n), ``mean_error`` ((mu_n - mu)^2) and
    ``w2`` (W2^2 to the original), beside their exact expectations."""
    sizes = schedule(M, generations)
    _check_gaussian(sizes, sigma, estimator)
    if chains < 2:
        raise ConfigError(f"chains must be >= 2 (a standard error), got {chains}")
    rng = seeds.rng(seed, 0x6A55)
    means, stds = np.full(chains, float(mu)), np.full(chains, float(sigma))
    rows = [_gaussian_row(0, means, stds, mu, sigma)]
    for n, size in enumerate(sizes, start=1):
        ddof = 1 if estimator == "unbiased" else 0
        step = max(1, CHUNK_DRAWS // int(size))
        new_means, new_stds = np.empty(chains), np.empty(chains)
        for start in range(0, chains, step):
            part = slice(start, start + step)
            draws = rng.normal(means[part, None], stds[part, None], (len(means[part]), size))
            new_means[part] = draws.mean(axis=1)
            new_stds[part] = draws.std(axis=1, ddof=ddof)
        means, stds = new_means, new_stds
        rows.append(_gaussian_row(n, means, stds, mu, sigma))
    table = pd.DataFrame(rows)
    exact = gaussian_expectations(sizes.tolist(), sigma=sigma, estimator=estimator)
    return exact.merge(table, on="generation")


def _gaussian_row(n: int, means, stds, mu: float, sigma: float) -> dict:
    row = {"generation": n}
    error = (means - mu) ** 2
    _columns(row, "variance", stds**2)
    _columns(row, "std", stds)
    _columns(row, "mean_error", error)
    _columns(row, "w2", error + (stds - sigma) ** 2)
    return row


# ---- the discrete chain -----------------------------------------------------------------


def start_distribution(probabilities: list[float] | None, support: int | None) -> np.ndarray:
    """``p_0``: the given probabilities (normalised), or uniform over ``support`` states."""
    if (probabilities is None) == (support is None):
        raise ConfigError("give exactly one of probabilities and support for the discrete chain")
    if probabilities is None:
        if support < 2:
            raise ConfigError(f"support must be >= 2 states, got {support}")
        return np.full(support, 1.0 / support)
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or len(p) < 2 or p.min() < 0 or not p.sum() > 0:
        raise ConfigError("probabilities must list >= 2 non-negative numbers with a positive sum")
    return p / p.sum()


def gini_simpson(p: np.ndarray) -> np.ndarray:
    """``1 - sum_i p_i^2`` of each row."""
    return 1.0 - (np.asarray(p, dtype=float) ** 2).sum(axis=-1)


def _discrete_paths(p0: np.ndarray, sizes: np.ndarray, chains: int, seed: int):
    """Yield ``(n, p_n)`` with ``p_n`` of shape (chains, K), from ``n = 0``."""
    if chains < 2:
        raise ConfigError(f"chains must be >= 2 (a standard error), got {chains}")
    rng = seeds.rng(seed, 0xD15C)
    p = np.broadcast_to(p0, (chains, len(p0))).copy()
    yield 0, p
    for n, size in enumerate(sizes, start=1):
        p = rng.multinomial(int(size), p) / float(size)
        yield n, p


def discrete_chain(
    M: int | list[int],
    generations: int | None = None,
    chains: int = 2000,
    probabilities: list[float] | None = None,
    support: int | None = None,
    tail_quantile: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate ``chains`` categorical refitting chains; one row per generation with the
    mean, SE and 95 % CI over chains of ``gini_simpson``, ``support`` (states with
    ``p > 0``), ``tail_mass`` (of ``p_0``'s tail at ``tail_quantile``), ``tail_lost``
    (share of chains whose tail mass is 0) and ``absorbed`` (share of chains in a
    delta), with ``gini_simpson_exact = H_0 prod (1 - 1/M_i)`` and ``tail_mass_exact``
    (constant: ``p_n`` is a martingale)."""
    sizes = schedule(M, generations)
    p0 = start_distribution(probabilities, support)
    tail = tail_set(p0, tail_quantile)
    decay = np.concatenate([[1.0], np.cumprod(1.0 - 1.0 / sizes)])
    rows = []
    for n, p in _discrete_paths(p0, sizes, chains, seed):
        row = {"generation": n, "M": 0 if n == 0 else int(sizes[n - 1])}
        _columns(row, "gini_simpson", gini_simpson(p))
        _columns(row, "support", (p > 0).sum(axis=1))
        _columns(row, "tail_mass", tail_mass(p, tail))
        _columns(row, "tail_lost", (tail_mass(p, tail) == 0).astype(float))
        _columns(row, "absorbed", (p.max(axis=1) >= 1.0).astype(float))
        row["gini_simpson_exact"] = float(gini_simpson(p0) * decay[n])
        row["tail_mass_exact"] = float(tail_mass(p0, tail))
        rows.append(row)
    return pd.DataFrame(rows)


def discrete_absorption(
    M: int | list[int],
    generations: int | None = None,
    chains: int = 2000,
    probabilities: list[float] | None = None,
    support: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Where the chains of :func:`discrete_chain` (same arguments, same chains) end: one
    row per state with ``q_exact = p_0[i]`` (the absorption probability), the share of
    all chains absorbed at ``i`` (``absorbed``, its SE) and the share among the absorbed
    chains (``absorbed_given_absorbed``)."""
    sizes = schedule(M, generations)
    p0 = start_distribution(probabilities, support)
    _, p = deque(_discrete_paths(p0, sizes, chains, seed), maxlen=1)[0]  # the last fit
    at_state = p >= 1.0  # (chains, K): absorbed at state i
    share = at_state.mean(axis=0)
    n_absorbed = at_state.any(axis=1).sum()
    return pd.DataFrame(
        {
            "state": np.arange(len(p0)),
            "q_exact": p0,
            "absorbed": share,
            "absorbed_se": np.sqrt(share * (1 - share) / chains),
            "absorbed_given_absorbed": at_state.sum(axis=0) / max(int(n_absorbed), 1),
            "chains": chains,
            "chains_absorbed": int(n_absorbed),
        }
    )
