"""Every shipped example spec loads and validates, so examples never rot."""

from pathlib import Path

import pytest

from divlab.data.ginc import GincSpec

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_spec_validates(path):
    spec = GincSpec.from_yaml(path)
    assert spec.concepts.resolve()


def test_there_are_examples():
    assert EXAMPLES
