"""Model-collapse workflows (replace, accumulate, accumulate-subsample) for the analytic
chains: every simulated generation against its closed form, the orderings of the papers
(Gerstgrasser et al. 2024, Kazdan et al. 2025) and bad input.

Monte Carlo checks as in ``test_collapse``: fixed seeds, 10,000 chains, a tolerance of 4
standard errors of the mean over chains at every generation, and the standard error
itself asserted small against the value (a tight test)."""

import math

import numpy as np
import pandas as pd
import pytest

from divlab.errors import ConfigError
from divlab.experiments.kinds.collapse import chains, workflows
from divlab.experiments.kinds.collapse.workflows import WORKFLOWS

TOLERANCE = 4.0  # standard errors
CHAINS = 10_000
M, GENERATIONS, SIGMA = 50, 20, 2.0
T, D, NOISE = 30, 5, 0.5
HARMONIC2 = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, GENERATIONS + 1) ** 2)])


def _within(frame: pd.DataFrame, stat: str) -> None:
    """Every generation with a closed form lies within 4 SE of it (generation 0 is the
    truth itself)."""
    part = frame.iloc[1:]
    part = part[part[f"{stat}_exact"].notna()]
    assert len(part) > 0, stat
    se = part[f"{stat}_se"].to_numpy()
    error = np.abs(part[f"{stat}_mean"] - part[f"{stat}_exact"]).to_numpy()
    assert np.all(error <= TOLERANCE * se + 1e-12), (stat, (error / np.maximum(se, 1e-300)).max())


def _tight(frame: pd.DataFrame, stat: str, share: float) -> None:
    last = frame.iloc[-1]
    assert last[f"{stat}_se"] < share * last[f"{stat}_mean"], stat


@pytest.fixture(scope="module")
def known():
    """Known variance (only the mean refitted), M = 50, 20 generations, sigma = 2."""
    return {
        workflow: workflows.gaussian_workflow(
            workflow, M, GENERATIONS, chains=CHAINS, sigma=SIGMA, known_variance=True, seed=0
        )
        for workflow in WORKFLOWS
    }


@pytest.fixture(scope="module")
def refitted():
    """Mean and (unbiased) variance refitted, M = 50, 20 generations, sigma = 2."""
    return {
        workflow: workflows.gaussian_workflow(
            workflow, M, GENERATIONS, chains=CHAINS, sigma=SIGMA, seed=1
        )
        for workflow in WORKFLOWS
    }


@pytest.fixture(scope="module")
def regression():
    """T = 30 rows, d = 5 features, noise 0.5, 20 generations."""
    return {
        workflow: workflows.regression_workflow(
            workflow, T, D, GENERATIONS, chains=CHAINS, sigma=NOISE, seed=2
        )
        for workflow in WORKFLOWS
    }


# ---- closed forms -----------------------------------------------------------------------
def test_known_variance_hand_forms(known):
    n = np.arange(GENERATIONS + 1)
    hand = {"replace": n * SIGMA**2 / M, "accumulate": SIGMA**2 / M * HARMONIC2}
    for workflow, expected in hand.items():
        frame = known[workflow]
        assert np.allclose(frame.mean_error_exact, expected, rtol=1e-12)
        assert np.allclose(frame.w2_exact, expected) and (frame.std_exact == SIGMA).all()
        assert (frame.variance_mean == SIGMA**2).all() and (frame.variance_se == 0).all()
        for stat in chains.GAUSSIAN_STATS:
            _within(frame, stat)
        _tight(frame, "mean_error", 0.03)
    assert known["accumulate"].mean_error_exact.iloc[-1] < math.pi**2 / 6 * SIGMA**2 / M


def test_known_variance_subsample(known):
    frame = known["accumulate-subsample"]
    assert (frame.fit_samples.iloc[1:] == M).all()  # the default subsample: M
    # fit 1 is the real data itself (S = M): the same as the other workflows'
    assert frame.mean_error_exact.iloc[1] == pytest.approx(SIGMA**2 / M)
    _within(frame, "mean_error")
    _within(frame, "w2")
    _tight(frame, "mean_error", 0.03)


@pytest.mark.parametrize(
    "workflow, subsample, estimator",
    [
        ("accumulate", None, "unbiased"),
        ("accumulate", None, "biased"),
        ("accumulate-subsample", None, "unbiased"),
        ("accumulate-subsample", 30, "biased"),
    ],
)
def test_refitted_variance_follows_the_recursion(workflow, subsample, estimator, refitted):
    if (subsample, estimator) == (None, "unbiased"):
        frame = refitted[workflow]
    else:
        frame = workflows.gaussian_workflow(
            workflow, M, 12, chains=CHAINS, sigma=SIGMA, estimator=estimator,
            subsample=subsample, seed=3,
        )  # fmt: skip
    for stat in ("mean_error", "variance"):
        _within(frame, stat)
        _tight(frame, stat, 0.03)
    # E[s_n] is exact only at fit 1 (m i.i.d. draws from the truth), NaN after
    assert frame.std_exact.iloc[:2].notna().all() and frame.std_exact.iloc[2:].isna().all()
    _within(frame, "std")
    _within(frame, "w2")


def test_accumulate_recursion_by_hand():
    # E[SS_n] = E[SS_{n-1}] + (M - 1 + (n-1)/n) E[s_{n-1}^2], E[s_n^2] = E[SS_n] / (nM - 1)
    exact = workflows.gaussian_workflow_expectations("accumulate", M, 6, sigma=SIGMA)
    ss, variance, error = (M - 1) * SIGMA**2, [SIGMA**2, SIGMA**2], [0.0, SIGMA**2 / M]
    for n in range(2, 7):
        error.append(error[-1] + variance[-1] / (n**2 * M))
        ss += (M - 1 + (n - 1) / n) * variance[-1]
        variance.append(ss / (n * M - 1))
    assert np.allclose(exact.variance_exact, variance, rtol=1e-12)
    assert np.allclose(exact.mean_error_exact, error, rtol=1e-12)
    assert exact.fit_samples.tolist() == [M * n for n in range(7)]


def test_replace_is_the_refitting_chain(refitted):
    for estimator in ("unbiased", "biased"):
        mine = workflows.gaussian_workflow_expectations(
            "replace", M, GENERATIONS, sigma=SIGMA, estimator=estimator
        )
        theirs = chains.gaussian_expectations(M, GENERATIONS, sigma=SIGMA, estimator=estimator)
        for column in theirs.columns:
            assert np.allclose(mine[column], theirs[column], rtol=1e-12), (estimator, column)
    frame = refitted["replace"]
    for stat in chains.GAUSSIAN_STATS:
        _within(frame, stat)
    _tight(frame, "w2", 0.03)
    same = chains.gaussian_chain(M, 2, chains=10, sigma=SIGMA)
    assert set(frame.columns) == set(same.columns) | {"workflow", "fit_samples"}


def test_regression_closed_forms(regression):
    unit = NOISE**2 * D / (T - D - 1)
    n = np.arange(GENERATIONS + 1)
    hand = {"replace": unit * n, "accumulate": unit * HARMONIC2}
    for workflow, expected in hand.items():
        frame = regression[workflow]
        assert np.allclose(frame.test_error_exact, expected, rtol=1e-12)
        assert np.allclose(
            workflows.regression_expectations(workflow, T, D, GENERATIONS, NOISE).test_error_exact,
            expected,
        )
        _within(frame, "test_error")
        _tight(frame, "test_error", 0.02)
    subsample = regression["accumulate-subsample"]
    assert subsample.test_error_exact.iloc[1] == pytest.approx(unit)  # fit 1: T real rows
    assert subsample.test_error_exact.iloc[2:].isna().all()
    _within(subsample, "test_error")


# ---- the orderings of the papers ----------------------------------------------------------
def _below(low: pd.Series, high: pd.Series, stat: str) -> bool:
    """``low``'s mean is below ``high``'s by more than 4 SE of the difference."""
    gap = high[f"{stat}_mean"] - low[f"{stat}_mean"]
    return gap > TOLERANCE * math.hypot(high[f"{stat}_se"], low[f"{stat}_se"])


@pytest.mark.parametrize("setting", ["known", "refitted", "regression"])
def test_replace_grows_accumulate_stays_bounded_subsample_between(setting, request):
    frames = request.getfixturevalue(setting)
    stat = "test_error" if setting == "regression" else "mean_error"
    unit = NOISE**2 * D / (T - D - 1) if setting == "regression" else SIGMA**2 / M
    replace, accumulate = frames["replace"], frames["accumulate"]
    grown = replace[f"{stat}_mean"].to_numpy()
    n = np.arange(GENERATIONS + 1)
    assert np.all(np.diff(grown) > 0)
    slope = (grown @ n) / (n @ n)  # linear growth through the origin, slope = one fit's error
    assert slope == pytest.approx(unit, rel=0.04)
    bound = math.pi**2 / 6 * unit
    assert np.all(accumulate[f"{stat}_mean"] <= bound + TOLERANCE * accumulate[f"{stat}_se"])
    last = {workflow: frame.iloc[-1] for workflow, frame in frames.items()}
    assert _below(last["accumulate"], last["accumulate-subsample"], stat)
    assert _below(last["accumulate-subsample"], last["replace"], stat)


# ---- seeds, singular designs --------------------------------------------------------------
def test_seeded():
    args = dict(chains=50, subsample=40)
    a = workflows.gaussian_workflow("accumulate-subsample", M, 3, seed=7, **args)
    b = workflows.gaussian_workflow("accumulate-subsample", M, 3, seed=7, **args)
    c = workflows.gaussian_workflow("accumulate-subsample", M, 3, seed=8, **args)
    assert a.equals(b) and not a.equals(c)
    x = workflows.regression_workflow("accumulate", T, D, 3, chains=50, seed=7)
    assert x.equals(workflows.regression_workflow("accumulate", T, D, 3, chains=50, seed=7))


def test_subsample_with_a_singular_design_is_fitted():
    # S = d rows out of T = 7: many subsamples repeat rows (fewer than d distinct rows)
    frame = workflows.regression_workflow(
        "accumulate-subsample", 7, D, 4, chains=300, subsample=D, seed=0
    )
    assert np.isfinite(frame.test_error_mean).all()
    assert frame.test_error_exact.iloc[1] == np.inf  # S <= d + 1: infinite expectation


# ---- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: workflows.gaussian_workflow("recycle", M, 3), "unknown workflow.*'replace'"),
        (lambda: workflows.regression_workflow("mix", T, D, 3), "accumulate-subsample"),
        (lambda: workflows.gaussian_workflow("replace", M, 0), "generations must be"),
        (lambda: workflows.regression_expectations("replace", T, D, 0), "generations must be"),
        (
            lambda: workflows.gaussian_workflow("accumulate-subsample", M, 3, subsample=M + 1),
            "exceeds the first pool",
        ),
        (
            lambda: workflows.gaussian_workflow("accumulate-subsample", M, 3, subsample=1),
            "subsample must be an integer >= 2",
        ),
        (
            lambda: workflows.regression_workflow("accumulate-subsample", T, D, 3, subsample=T + 1),
            "exceeds the first pool",
        ),
        (
            lambda: workflows.regression_workflow("accumulate-subsample", T, D, 3, subsample=D - 1),
            "subsample must be an integer >= 5",
        ),
        (lambda: workflows.regression_workflow("replace", D + 1, D, 3), r"exceed d \+ 1"),
        (lambda: workflows.regression_expectations("accumulate", 3, 2, 3), r"exceed d \+ 1"),
        (lambda: workflows.gaussian_workflow("replace", M, 3, chains=1), "chains must be >= 2"),
        (lambda: workflows.regression_workflow("replace", T, D, 3, chains=1), "chains must be"),
        (lambda: workflows.gaussian_workflow("replace", M, 3, subsample=10), "applies to"),
        (lambda: workflows.gaussian_workflow("accumulate", [50, 60], 2), "M must be one integer"),
        (lambda: workflows.gaussian_workflow("accumulate", 1, 2), "M_i >= 2"),
        (lambda: workflows.gaussian_workflow("replace", M, 2, estimator="median"), "estimator"),
    ],
)
def test_bad_input_raises_one_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
