"""Every shipped example spec loads and validates, so examples never rot.

``ginc-*.yaml`` are data specs, ``train-*.yaml`` training runs; every other example is an
experiment spec of some kind (``divlab.experiments.kinds``): a diversity experiment is
resolved to its conditions and runs (with the fairness check), any other kind to its plan
in words."""

from pathlib import Path

import pytest

from divlab.data.ginc import GincSpec
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.diversity.plan import conditions, runs
from divlab.experiments.kinds.diversity.spec import DiversitySpec as ExperimentSpec
from divlab.io import load_yaml
from divlab.train import TrainSpec

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))
KINDS = {"ginc": GincSpec, "train": TrainSpec}


def _kind(path: Path):
    return KINDS.get(path.name.split("-")[0], ExperimentSpec)


def _load(path: Path):
    if _kind(path) is ExperimentSpec:
        return kinds.spec_from_dict(load_yaml(path), source=str(path))
    return _kind(path).from_dict(load_yaml(path), source=str(path))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_spec_validates(path):
    spec = _load(path)
    if isinstance(spec, GincSpec):
        assert spec.concepts.resolve()
    elif isinstance(spec, TrainSpec):
        assert spec.steps >= 1
    elif isinstance(spec, ExperimentSpec):
        assert spec.name == path.stem
        assert len(runs(spec)) == len(conditions(spec)) * len(spec.seeds) >= 2
    else:
        assert spec.name == path.stem
        assert kinds.get(spec.kind).describe(spec)


def test_there_are_examples():
    names = {p.stem for p in EXAMPLES if _kind(p) is ExperimentSpec}
    assert {"quickstart", "plan2", "real-text", "paper-scale"} <= names
    shipped = {_load(p).kind for p in EXAMPLES if _kind(p) is ExperimentSpec}
    assert shipped == set(kinds.KINDS), f"an example per experiment kind: {shipped}"
    assert {_kind(p) for p in EXAMPLES} == {GincSpec, TrainSpec, ExperimentSpec}
