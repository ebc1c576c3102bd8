"""Every shipped example spec loads and validates, so examples never rot."""

from pathlib import Path

import pytest

from divlab.data.ginc import GincSpec
from divlab.io import load_yaml
from divlab.train import TrainSpec

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))
KINDS = {"ginc": GincSpec, "train": TrainSpec}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_spec_validates(path):
    kind = path.name.split("-")[0]
    assert kind in KINDS, f"name examples <kind>-<name>.yaml with kind in {sorted(KINDS)}"
    spec = KINDS[kind].from_dict(load_yaml(path), source=str(path))
    if isinstance(spec, GincSpec):
        assert spec.concepts.resolve()
    else:
        assert spec.steps >= 1


def test_there_are_examples():
    assert {p.name.split("-")[0] for p in EXAMPLES} == set(KINDS)
