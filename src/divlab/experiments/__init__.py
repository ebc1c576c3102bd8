"""Experiments from one spec: the framework that every experiment kind shares.

* ``spec.CommonSpec``: what every kind's spec shares (data family, eval set, training
  data knobs, ONE training recipe, seeds, evaluation, executor);
* ``registry``: the kinds by name, each a typed ``Kind`` record; ``load`` reads any spec
  file or experiment folder;
* ``runs``: the run contract (``RunPayload`` -> ``execute_run`` -> ``RunRecord``);
  ``executors``: where runs execute (local process pool, Ray) and ``run_all``;
* ``folder``: claiming a folder for a spec, ``experiment.json``, ``finish``;
* ``data``: GINC eval and training sets generated once; ``ids``: ids and seeds;
* ``report.build_report``: any kind's report on the shared page.

Adding an experiment kind ``foo``:

1. a package ``divlab/experiments/kinds/foo/`` with ``spec.py`` (``FooSpec(CommonSpec)``
   with ``kind: Literal["foo"]`` and its own section), ``run.py`` (``run`` and
   ``describe``: build ``RunPayload``s with ``runs.run_payload``, run them with
   ``executors.run_all``, write tables with ``divlab.io.write_table``, end with
   ``folder.finish``) and ``report.py`` (``sections(folder, report_dir)``), and an
   ``__init__.py`` whose ``KIND = Kind(name="foo", spec=..., run=..., describe=...,
   report=..., tables=(...))``;
2. one line in ``registry.KINDS``: ``"foo": "divlab.experiments.kinds.foo"`` (or
   ``registry.register("foo", module)`` from outside divlab).

Nothing else changes: ``divlab experiment run|validate``, ``divlab report`` and
``divlab results`` find the kind through the registry.
"""

from pathlib import Path

import pandas as pd

from divlab.errors import DataError
from divlab.evaluate.harness import check_tasks
from divlab.experiments import plan as planning
from divlab.experiments.plan import RunGroup, Workload
from divlab.experiments.registry import (
    Kind,
    get,
    kind_of_folder,
    load,
    load_spec,
    register,
    spec_from_dict,
)
from divlab.experiments.report import build_report
from divlab.experiments.spec import CommonSpec
from divlab.train.plan import gpu_target, here_target
from divlab.train.trackers import check_trackers


def cost(spec: CommonSpec, gpu: str | None = None, rate: bool = True) -> dict | None:
    """The experiment's cost plan (``divlab.experiments.plan``) on this machine, or on
    one ``gpu`` of ``divlab.train.plan.GPUS`` per run; ``rate``: measure this CPU's rate
    for the time estimate (about a second). None where the vocabulary is not known yet
    (a tokenizer file: known once the data is prepared). A run that cannot fit the
    device's memory is a ConfigError naming the knob."""
    vocab = spec.vocab_size()
    if vocab is None:
        return None
    target = gpu_target(gpu) if gpu else here_target(spec, rate)
    kind = get(spec.kind)
    if kind.workload is not None:
        workload = kind.workload(spec)
    else:
        label = f"one run of the recipe (kind {spec.kind} declares no workload)"
        workload = Workload((RunGroup(label, 1, spec.token_budget),))
    return planning.plan(spec, workload, target)


def check_harness(spec: CommonSpec) -> None:
    """The spec's lm-evaluation-harness tasks exist (and lm-eval is installed), checked
    before any compute rather than when the first run is scored."""
    harness = spec.evaluation.lm_eval
    if harness is not None:
        check_tasks(harness.tasks, include_path=harness.include_path)


def check(spec: CommonSpec, out) -> dict | None:
    """Everything about this machine a run of ``spec`` into folder ``out`` needs, checked
    before any compute: CUDA where asked, memory for every run, disk for the data and
    checkpoints. Returns the plan (without a time estimate)."""
    spec.check_machine()
    check_trackers(spec.logging)
    check_harness(spec)
    result = cost(spec, rate=False)
    if result is not None:
        planning.check_disk(result["total"], Path(out))
    return result


def with_logging(spec: CommonSpec, trackers: list[str]) -> CommonSpec:
    """``spec`` with ``trackers`` added to its ``logging`` (validated: a ConfigError names
    an unknown tracker)."""
    tree = spec.model_dump(mode="json")
    tree["logging"] = list(dict.fromkeys([*tree["logging"], *trackers]))
    return spec_from_dict(tree, source="--log")


def run(spec: CommonSpec, out, **options) -> dict:
    """Run (or resume) the experiment ``spec`` of any kind in folder ``out`` (what it
    asks of this machine is checked first: ``check``)."""
    check(spec, out)
    return get(spec.kind).run(spec, out, **options)


def load_results(folder, table: str | None = None):
    """A table of an experiment folder as a pandas DataFrame (default: its kind's first)."""

    kind = kind_of_folder(folder)
    name = table or kind.tables[0]
    if name not in kind.tables:
        raise DataError(
            f"a {kind.name} experiment has no table {name!r}; it writes {', '.join(kind.tables)}"
        )
    path = Path(folder) / name
    if not path.exists():
        raise DataError(
            f"{path} does not exist; run `divlab results {folder}` or the experiment first"
        )
    return pd.read_parquet(path)


__all__ = [
    "CommonSpec",
    "Kind",
    "build_report",
    "check",
    "cost",
    "get",
    "load",
    "load_results",
    "load_spec",
    "register",
    "run",
    "spec_from_dict",
    "with_logging",
]
