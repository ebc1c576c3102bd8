"""``kind: curriculum``: the same training data in different orders, at the same budget.

One training set of GINC domains (``divlab.experiments.domains``: ``shares`` of each
domain, default uniform; one pass over the trained tokens) is written once per ordering
in that ordering's document order, and trained with ``shuffle: false``, so every arm sees
the same multiset of documents and only their order differs:

* ``shuffle``: a uniform random permutation (the reference arm);
* ``staged``: domain after domain (``stages``, default the domains' order), shuffled
  within each stage;
* ``schedule``: piecewise-linear mixture weights over training progress (``weights``:
  K rows of one weight per domain at progress 0, 1/(K-1), ..., 1); see
  ``domains.scheduled_order``.

Speed of learning per ordering, from each run's learning curve on the domains' eval set
(``divlab.evaluate.speed``): the area under the loss curve (its mean over training, lower
= learned sooner) and the tokens to reach ``oracle + threshold_gap``, per concept, per
domain (token-weighted concept losses; threshold from the domain's oracle loss) and
overall. Every seed trains each ordering from its own init; differences to the shuffle
arm are paired by seed.

Tables: ``curriculum.parquet`` (one row per run and series: ordering, seed, level
``all`` / ``domain`` / ``concept``, series, AUC, threshold, tokens to threshold, final
loss) and ``curriculum_curves.parquet`` (ordering, seed, tokens, level, series, loss).
"""

from divlab.experiments.kinds.curriculum import report, run
from divlab.experiments.kinds.curriculum.spec import CurriculumExperimentSpec
from divlab.experiments.registry import Kind

KIND = Kind(
    name="curriculum",
    spec=CurriculumExperimentSpec,
    run=run.run,
    describe=run.describe,
    workload=run.workload,
    report=report.sections,
    tables=("curriculum.parquet", "curriculum_curves.parquet"),
)
