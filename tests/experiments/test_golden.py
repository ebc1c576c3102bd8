"""Golden values taken before the experiments layer was restructured: a refactor that
changes a run id (so a relaunch would not find finished runs) or a number is caught.

* ``example_run_ids.json``: the ids of the runs each shipped example plans first (every
  run of a diversity experiment; the first batch a kind submits to its executor).
* ``TINY``: loss, gap, Task2Vec diversity and alignment of every run of the tiny
  experiment (``tiny_experiment`` in conftest.py), on this CPU build of torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from divlab.experiments import registry as kinds
from divlab.experiments.executors import Executor
from divlab.experiments.kinds.diversity.plan import runs
from divlab.io import load_yaml

EXAMPLES = Path(__file__).parents[2] / "examples"
PINNED = json.loads((Path(__file__).parent / "example_run_ids.json").read_text())

TINY = {  # run_id: (loss, gap, diversity, alignment)
    "k=1-s0-dccf6e33eb8e": (
        2.653078699600883,
        1.9193035191793957,
        0.0052621325996493,
        0.9966046059783656,
    ),
    "k=1-s1-750686c8bd35": (
        2.6680145883001387,
        1.9342394078786516,
        0.0052621325996493,
        0.9966046059783656,
    ),
    "k=2-s0-47f541c18eac": (
        2.403470308170654,
        1.6696951277491667,
        0.002359849192845024,
        0.997988745089075,
    ),
    "k=2-s1-a79037bc7518": (
        2.4286867037881166,
        1.6949115233666294,
        0.002359849192845024,
        0.997988745089075,
    ),
    "k=4-s0-4082343b784a": (
        2.241236013942398,
        1.507460833520911,
        0.005231717917793792,
        0.996948883308925,
    ),
    "k=4-s1-d8787745964c": (
        2.2433148792479187,
        1.5095396988264316,
        0.005231717917793792,
        0.996948883308925,
    ),
}


class _Planned(Exception):
    """Raised by the recorder once a kind has handed over its first batch of runs."""


class _Recorder(Executor):
    name, workers = "recorder", 1

    def __init__(self) -> None:
        self.ids: list[str] = []

    def run(self, payloads, on_result) -> None:
        self.ids = sorted(p.run_id for p in payloads)
        raise _Planned


def planned_run_ids(path: Path, folder: Path) -> list[str]:
    spec = kinds.spec_from_dict(load_yaml(path), source=str(path))
    if spec.kind == "diversity":
        return sorted(r.id for r in runs(spec))
    recorder = _Recorder()
    with pytest.raises(_Planned):
        kinds.get(spec.kind).run(spec, folder, executor=recorder, progress=False, report=False)
    return recorder.ids


@pytest.mark.parametrize("name", sorted(PINNED))
def test_example_run_ids_are_unchanged(name, tmp_path):
    assert planned_run_ids(EXAMPLES / name, tmp_path / "x") == PINNED[name]


def test_every_experiment_example_is_pinned():
    shipped = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {n for n in shipped if n.split("-")[0] not in ("ginc", "train")} == set(PINNED)


def test_tiny_experiment_numbers_are_unchanged(tiny_experiment):
    out, _ = tiny_experiment
    table = pd.read_parquet(out / "results.parquet").set_index("run_id")
    assert set(table.index) == set(TINY)
    for run_id, values in TINY.items():
        row = table.loc[run_id]
        got = (row.loss, row.gap, row.diversity, row.alignment)
        assert got == pytest.approx(values, rel=1e-9), run_id
