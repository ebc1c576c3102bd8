"""A kind registered from outside divlab runs end to end through the CLI: adding a kind is
one package (here: this module) and one registry line, touching no framework file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd
import pytest
from pydantic import Field
from typer.testing import CliRunner

from divlab.cli import app
from divlab.data.store import open_dataset
from divlab.errors import ConfigError
from divlab.experiments import Kind, registry
from divlab.experiments.data import ginc_eval_set
from divlab.experiments.folder import claim_folder, finish, now
from divlab.experiments.spec import CommonSpec
from divlab.io import write_table
from divlab.report.page import note, table
from divlab.specs import Spec

from .tiny import tiny_kind_spec, write_spec


class CountSection(Spec):
    top: int = Field(3, ge=1, description="concepts listed in the report")


class CountSpec(CommonSpec):
    """``kind: toy``: count the eval set's documents per concept."""

    kind: Literal["toy"] = "toy"
    toy: CountSection = CountSection()


def run(spec: CountSpec, out, *, executor=None, progress=True, report=True, log=None) -> dict:
    root = claim_folder(out, spec)
    started = now()
    concepts = open_dataset(ginc_eval_set(spec, root)).table("eval", ["concept"]).to_pandas()
    counts = concepts.value_counts("concept").rename("documents").reset_index()
    write_table(counts.sort_values("concept"), root / "toy.parquet")
    return finish(root, spec, {"table": str(root / "toy.parquet")}, report, started)


def describe(spec: CountSpec) -> list[str]:
    return [f"count the documents of {spec.eval.n_concepts} eval concepts"]


def sections(folder: Path, report_dir: Path):
    counts = pd.read_parquet(folder / "toy.parquet").sort_values("documents", ascending=False)
    rows = [[str(r.concept), str(r.documents)] for r in counts.head(3).itertuples()]
    body = table(["concept", "documents"], rows, "toy-table") + note("from the eval set")
    return [("Documents per concept", body, "toy")], {"documents": int(counts.documents.sum())}


KIND = Kind(
    name="toy",
    spec=CountSpec,
    run=run,
    describe=describe,
    report=sections,
    tables=("toy.parquet",),
)


@pytest.fixture
def toy_kind():
    registry.register("toy", __name__)
    yield
    del registry.KINDS["toy"]


def test_a_toy_kind_runs_through_the_cli_and_reports(toy_kind, tmp_path):
    spec = write_spec(tmp_path / "toy.yaml", tiny_kind_spec("toy", name="toy-run"))
    runner = CliRunner()
    checked = runner.invoke(app, ["experiment", "validate", str(spec)])
    assert checked.exit_code == 0, checked.output
    assert "count the documents of 4 eval concepts" in checked.output

    out = tmp_path / "out"
    args = ["experiment", "run", str(spec), "--out", str(out), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    counts = pd.read_parquet(out / "toy.parquet")
    assert counts.documents.sum() == 24  # the tiny spec's eval.n_docs
    assert sorted(counts.concept) == [0, 1, 2, 3]
    record = json.loads((out / "experiment.json").read_text())
    assert record["kind"] == "toy" and record["spec"]["toy"] == {"top": 3}

    (out / "report").rename(tmp_path / "first-report")
    rebuilt = runner.invoke(app, ["report", str(out)])
    assert rebuilt.exit_code == 0, rebuilt.output
    html = (out / "report" / "index.html").read_text()
    assert "divlab toy report: toy-run" in html and "toy-table" in html
    assert "spec-dump" in html and "provenance-table" in html  # the framework's sections
    assert json.loads((out / "report" / "summary.json").read_text()) == {
        "kind": "toy",
        "documents": 24,
    }
    tables = runner.invoke(app, ["results", str(out)])
    assert tables.exit_code == 0 and "toy.parquet" in tables.output


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"invalid test: kind 'toy' is not an experiment kind.*diversity"
    ):
        registry.spec_from_dict({"kind": "toy", "name": "x"}, source="test")
