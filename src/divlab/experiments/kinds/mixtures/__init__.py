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

from divlab.experiments.kinds.mixtures import report, run
from divlab.experiments.kinds.mixtures.spec import MixturesExperimentSpec
from divlab.experiments.registry import Kind

KIND = Kind(
    name="mixtures",
    spec=MixturesExperimentSpec,
    run=run.run,
    describe=run.describe,
    workload=run.workload,
    report=report.sections,
    tables=("mixtures.parquet",),
)
