"""``kind: scaling``: predictable scaling of the eval loss in tokens ``D`` and model size ``N``.

One GINC training set of the eval concepts (``training_data`` knobs, generated large enough
that the largest budget sees each document at most about once) is trained on at every
token budget of ``scaling.token_budgets`` by every model of ``scaling.model_presets`` (the
spec's ``model`` with its preset swapped; none listed: the spec's model alone), for every
seed, and each run is evaluated on ``D_eval``. ``N`` is a run's non-embedding parameter
count and ``D`` the tokens it trained on.

Fits (``divlab.experiments.scaling_laws``: log-space Huber fit from a grid of starts,
percentile bootstrap over runs for every interval):

* ``L(D) = E + B / D^beta`` per model size, on all its runs (parameters with 95% CIs);
* ``L(N, D) = E + A / N^alpha + B / D^beta`` over every run, when there are >= 3 model
  sizes (fewer cannot identify A, alpha and E apart);
* ``holdout: largest``: each law refitted without its largest configuration (the largest
  budget of each model; for the joint law the largest model at the largest budget), which
  it then predicts: predicted loss with its bootstrap interval, realised loss (mean over
  seeds) and relative error ``(predicted - realised) / realised``.

Tables: ``scaling.parquet`` (one row per run: model, N, N total, budget, D, seed, loss,
oracle loss, perplexity, flops, held_out), ``scaling_fits.parquet`` (one row per law,
model, fitted-on set (``all`` / ``holdout``) and parameter: value, ci_low, ci_high) and
``scaling_holdout.parquet`` (one row per held-out prediction).
"""

from divlab.experiments.kinds.scaling import report, run
from divlab.experiments.kinds.scaling.spec import TABLES, ScalingExperimentSpec
from divlab.experiments.registry import Kind

KIND = Kind(
    name="scaling",
    spec=ScalingExperimentSpec,
    run=run.run,
    describe=run.describe,
    workload=run.workload,
    report=report.sections,
    tables=TABLES,
)
