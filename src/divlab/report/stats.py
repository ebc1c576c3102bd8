"""Statistics for the report: correlations with bootstrap CIs, condition means, effect sizes.

Pure functions: arrays (or one pandas table) in, numbers out. Nothing here raises on
small or degenerate input; a statistic that cannot be computed is NaN, with a ``reason``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from divlab.errors import DataError

NAN = float("nan")
EXACT_SPEARMAN_MAX_N = 8  # 8! = 40,320 pairings: exact in about 0.1 s


def correlation(x, y, n_boot: int = 2000, seed: int = 0) -> dict:
    """Pearson r and Spearman rho of paired values, each with a p-value and a 95% CI.

    * Pearson r = cov(x, y) / (sd(x) sd(y)); Spearman rho = Pearson r of the ranks
      (average ranks for ties). p-values are two-sided and scipy's: Pearson's from the
      exact null distribution under normality; Spearman's from the t approximation with
      n - 2 degrees of freedom, except for n <= 8, where that approximation is far too
      small (0 for a perfect ranking) and the exact permutation p-value over all n!
      pairings is used instead (2 / 720 for a perfect ranking of 6 points).
    * CI: percentile bootstrap over points. Each of ``n_boot`` resamples draws n
      (x, y) pairs with replacement; resamples whose x or y is constant have no
      correlation and are skipped; the CI is the 2.5th and 97.5th percentile of the rest.

    Pairs with a non-finite x or y are dropped first. With n < 3 or a constant x or y
    every statistic is NaN and ``reason`` says why.

    Returns ``{"n", "pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high",
    "spearman_rho", "spearman_p", "spearman_ci_low", "spearman_ci_high", "n_boot_used",
    "reason"}``.
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.shape != y.shape:
        raise DataError(f"x and y differ in length ({len(x)} vs {len(y)})")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    out = {
        "n": n,
        **dict.fromkeys(["pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high"], NAN),
        **dict.fromkeys(["spearman_rho", "spearman_p", "spearman_ci_low", "spearman_ci_high"], NAN),
        "n_boot_used": 0,
        "reason": None,
    }
    if n < 3:
        out["reason"] = f"only {n} finite point(s); a correlation needs at least 3"
        return out
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        out["reason"] = "x or y is constant, so there is no correlation to measure"
        return out

    pearson = sps.pearsonr(x, y)
    spearman = sps.spearmanr(x, y)
    spearman_p = float(spearman.pvalue)
    if n <= EXACT_SPEARMAN_MAX_N:
        exact = sps.PermutationMethod(n_resamples=np.inf)
        spearman_p = float(sps.pearsonr(sps.rankdata(x), sps.rankdata(y), method=exact).pvalue)
    out.update(
        pearson_r=float(pearson.statistic),
        pearson_p=float(pearson.pvalue),
        spearman_rho=float(spearman.statistic),
        spearman_p=spearman_p,
    )
    if n_boot <= 0:
        return out
    index = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    bx, by = x[index], y[index]
    valid = (np.ptp(bx, axis=1) > 0) & (np.ptp(by, axis=1) > 0)
    bx, by = bx[valid], by[valid]
    out["n_boot_used"] = int(valid.sum())
    if len(bx) == 0:
        out["reason"] = "every bootstrap resample was constant; no CI"
        return out
    r_boot = _rowwise_pearson(bx, by)
    rho_boot = _rowwise_pearson(
        sps.rankdata(bx, axis=1),
        sps.rankdata(by, axis=1),
    )
    out["pearson_ci_low"], out["pearson_ci_high"] = _percentile_ci(r_boot)
    out["spearman_ci_low"], out["spearman_ci_high"] = _percentile_ci(rho_boot)
    return out


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b`` (rows are resamples)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    r = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def _percentile_ci(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def mean_ci(values, confidence: float = 0.95) -> dict:
    """Mean, sample SD (ddof=1), n and the t-based CI of the mean of finite ``values``.

    CI = mean +- t_{(1+confidence)/2, n-1} * sd / sqrt(n); NaN for n < 2.
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    n = len(v)
    mean = float(v.mean()) if n else NAN
    sd = float(v.std(ddof=1)) if n > 1 else NAN
    if n < 2:
        low = high = NAN
    elif sd == 0:
        low = high = mean
    else:
        half = sps.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"mean": mean, "std": sd, "n": n, "ci_low": float(low), "ci_high": float(high)}


def condition_means(df: pd.DataFrame, x: str, metric: str) -> pd.DataFrame:
    """One row per condition: its ``x`` value (the mean over its rows) and the mean, SD, n
    and t-based 95% CI (:func:`mean_ci`) of ``metric`` over its seeds, sorted by ``x``.

    Columns: ``condition, x, mean, std, n, ci_low, ci_high``.
    """
    rows = []
    for condition, group in df.groupby("condition", sort=False):
        x_values = pd.to_numeric(group[x], errors="coerce").astype(float)
        x_value = float(x_values.mean()) if x_values.notna().any() else NAN
        rows.append(
            {
                "condition": condition,
                "x": x_value,
                **mean_ci(pd.to_numeric(group[metric], errors="coerce").astype(float)),
            }
        )
    columns = ["condition", "x", "mean", "std", "n", "ci_low", "ci_high"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("x", kind="stable", na_position="last").reset_index(drop=True)


def effect_size(a, b) -> dict:
    """Effect of going from sample ``a`` (e.g. the lowest-diversity condition's seeds) to
    sample ``b`` (the highest-diversity condition's seeds).

    * difference = mean(b) - mean(a)
    * Hedges' g = J * difference / s_pooled, with
      s_pooled = sqrt(((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2)) and the
      small-sample correction J = 1 - 3 / (4 (n_a + n_b - 2) - 1) (Hedges 1981).
    * p: Welch's two-sided t-test (unequal variances).

    Returns ``{"difference", "hedges_g", "welch_p", "n_a", "n_b", "reason"}``; g and p are
    NaN (with a reason) when a sample has fewer than 2 values or both have zero variance.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {
        "difference": float(b.mean() - a.mean()) if len(a) and len(b) else NAN,
        "hedges_g": NAN,
        "welch_p": NAN,
        "n_a": len(a),
        "n_b": len(b),
        "reason": None,
    }
    if len(a) < 2 or len(b) < 2:
        out["reason"] = "each side needs at least 2 seeds"
        return out
    dof = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / dof)
    if pooled == 0:
        out["reason"] = "both samples have zero variance"
        return out
    correction = 1 - 3 / (4 * dof - 1)
    out["hedges_g"] = float(correction * out["difference"] / pooled)
    with warnings.catch_warnings():  # seeds that agree to ~1e-15 trip a precision warning
        warnings.simplefilter("ignore", RuntimeWarning)
        out["welch_p"] = float(sps.ttest_ind(b, a, equal_var=False).pvalue)
    return out


def fit_line(x, y) -> dict:
    """Least-squares line y = slope * x + intercept over finite pairs (scipy linregress).

    Returns ``{"slope", "intercept"}``, NaN when fewer than 2 points or x is constant.
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.ptp(x) == 0:
        return {"slope": NAN, "intercept": NAN}
    fit = sps.linregress(x, y)
    return {"slope": float(fit.slope), "intercept": float(fit.intercept)}
