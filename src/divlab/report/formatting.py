"""Numbers as the report prints them (ASCII only, so the text is easy to search)."""

from __future__ import annotations

import math


def number(value, digits: int = 3) -> str:
    """``value`` with ``digits`` significant figures; "n/a" for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    value = float(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.{max(digits - 1, 0)}e}"
    return f"{value:.{digits}g}"


def fixed(value, decimals: int = 2) -> str:
    """``value`` with a fixed number of decimals (correlations, effect sizes)."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.{decimals}f}"


def p_value(p) -> str:
    """Two significant figures; scientific below 0.001."""
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    p = float(p)
    return f"{p:.1e}" if p < 1e-3 else f"{p:.2g}"


def interval(low, high, formatter=fixed) -> str:
    """``[low, high]``, or "" when the interval is unknown."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"[{formatter(low)}, {formatter(high)}]"


def with_ci(value, low, high, digits: int = 3, ci_digits: int | None = None) -> str:
    """``value [low, high]`` (``number`` with ``digits``; the bounds with ``ci_digits``,
    default the same), or the value alone when the interval is unknown."""
    ci = interval(low, high, lambda v: number(v, digits if ci_digits is None else ci_digits))
    return f"{number(value, digits)} {ci}".strip()


def finite(value) -> float | None:
    """A number for JSON: None for None, NaN and infinities."""
    return None if value is None or not math.isfinite(value) else float(value)


def spearman_text(corr: dict) -> str:
    """E.g. ``rho = -0.93 [95% CI -0.98, -0.80], p = 1.2e-05``."""
    ci = interval(corr["spearman_ci_low"], corr["spearman_ci_high"])
    ci = f" [95% CI {ci[1:-1]}]" if ci else ""
    return f"rho = {fixed(corr['spearman_rho'])}{ci}, p = {p_value(corr['spearman_p'])}"


def pearson_text(corr: dict) -> str:
    """E.g. ``r = -0.95 [95% CI -0.99, -0.81], p = 2.1e-06``."""
    ci = interval(corr["pearson_ci_low"], corr["pearson_ci_high"])
    ci = f" [95% CI {ci[1:-1]}]" if ci else ""
    return f"r = {fixed(corr['pearson_r'])}{ci}, p = {p_value(corr['pearson_p'])}"
