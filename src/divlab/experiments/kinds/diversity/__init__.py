"""Run a whole experiment from its spec: data -> probe -> measures -> runs -> results.

An experiment folder::

    spec.json                 the resolved spec (a relaunch with another spec is refused)
    data/eval-<hash>/         D_eval (GINC: eval concepts, own seed; ICL prompts)
    data/<condition>-<hash>/  one training set per condition
    probe/                    the probe network (trained once, then reused)
    measures/<condition>.json diversity, alignment with D_eval, ground truth, probe
    runs/<run_id>/            one training run each (see divlab.experiments.runs)
    results.parquet           one row per run; curves.parquet: the learning curves
    experiment.json           spec, provenance, probe, metrics
    report/index.html         plots A-E and the summary (divlab.report)

Every stage skips what is already on disk and every write is atomic, so killing the runner
at any moment and relaunching it redoes at most the unfinished runs (each resumes from its
last checkpoint) and never trusts a half-written file.
"""

from divlab.experiments.kinds.diversity import report, run
from divlab.experiments.kinds.diversity.spec import DiversitySpec
from divlab.experiments.registry import Kind

KIND = Kind(
    name="diversity",
    spec=DiversitySpec,
    run=run.run_experiment,
    describe=run.describe,
    workload=run.workload,
    report=report.sections,
    tables=("results.parquet", "curves.parquet"),
    collect=run.collect,
)
