"""The runner end to end on the tiny experiment: results table, resume after a real kill,
and the Ray executor giving the same results as the local one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from divlab.cli import app
from divlab.experiments.kinds.diversity.run import run_experiment
from divlab.experiments.kinds.diversity.spec import DiversitySpec as ExperimentSpec
from tests.experiments.tiny import assert_plan_matches

from ..tiny import tiny_spec, write_spec

# What a run computes; wall-clock columns and paths differ between two executions.
VALUES = [
    "loss",
    "gap",
    "oracle_loss",
    "icl_accuracy",
    "edit_distance",
    "token_match",
    "speed_auc",
    "diversity",
    "diversity_ci_low",
    "alignment",
    "align2",
    "noise_floor",
    "gt_hellinger",
    "tokens",
    "flops",
    "parameters",
]


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "results.parquet").sort_values("run_id").reset_index(drop=True)


def test_tiny_experiment_writes_a_table_equal_to_the_per_run_records(tiny_experiment):
    from divlab.experiments.registry import spec_of_folder

    assert_plan_matches(spec_of_folder(tiny_experiment[0]), tiny_experiment[0])
    out, result = tiny_experiment
    table = _table(out)
    assert result["finished"] == result["runs"] == len(table) == 6
    assert sorted(table.condition.unique()) == ["k=1", "k=2", "k=4"]
    assert table.groupby("condition").seed.apply(sorted).tolist() == [[0, 1]] * 3
    for row in table.itertuples():
        record = json.loads((Path(row.run_dir) / "result.json").read_text())
        for key in ("loss", "gap", "icl_accuracy", "edit_distance", "tokens", "flops"):
            assert getattr(row, key) == record[key], key
        measures = json.loads((out / "measures" / f"{row.condition_id}.json").read_text())
        assert row.diversity == measures["diversity"]["diversity"]
        assert row.alignment == measures["alignment"]["align1"]
    # the fair budget: every run trained on the same tokens, so the same FLOPs
    assert table.tokens.nunique() == 1 and table.flops.nunique() == 1
    assert (table.tokens == 8192).all()
    # ground truth: more concepts, a larger effective number of concepts
    truth = table.groupby("n_concepts").gt_effective_concepts.first()
    assert truth.to_dict() == pytest.approx({1: 1.0, 2: 2.0, 4: 4.0})
    # the floor is the 1-concept set's diversity
    assert (table.noise_floor == table[table.k == 1].diversity.iloc[0]).all()
    curves = pd.read_parquet(out / "curves.parquet")
    assert set(curves.run_id) == set(table.run_id)
    assert curves.groupby("run_id").tokens.max().eq(8192).all()
    meta = json.loads((out / "experiment.json").read_text())
    assert meta["runs"] == {"planned": 6, "finished": 6}
    assert meta["probe"]["source"] == "random:tiny"


def test_tiny_experiment_report_has_every_plot_and_the_table_numbers(tiny_experiment):
    out, result = tiny_experiment
    index = Path(result["report"])
    assert index == out / "report" / "index.html"
    figures = {p.stem for p in (out / "report" / "figures").glob("*.png")}
    for metric in ("loss", "gap", "icl_accuracy", "edit_distance"):  # the spec's metrics
        assert {f"A_{metric}", f"B_{metric}"} <= figures
    assert {"C_diversity_alignment", "E_ground_truth", "learning_curves"} <= figures
    assert {p.stem for p in (out / "report" / "figures").glob("*.svg")} == figures
    html = index.read_text()
    assert html.count("<img") == html.count("src='data:image/png;base64,") == len(figures)
    # the headline is the Spearman correlation of the table's own columns
    from divlab.report.stats import correlation

    table = _table(out)
    summary = json.loads((out / "report" / "summary.json").read_text())
    expected = correlation(table.diversity, table.loss)
    assert summary["metrics"]["loss"]["spearman_rho"] == pytest.approx(expected["spearman_rho"])
    assert summary["n_runs"] == 6 and summary["metrics"]["loss"]["headline"] in html


def test_relaunching_a_finished_experiment_runs_nothing(tiny_experiment):
    out, _ = tiny_experiment
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    result = run_experiment(
        ExperimentSpec.from_dict(tiny_spec()), out, progress=False, report=False
    )
    assert result["ran_now"] == 0 and result["finished"] == 6
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")} == before


def test_a_different_spec_in_the_same_folder_is_refused(tiny_experiment):
    from divlab.errors import ConfigError

    out, _ = tiny_experiment
    with pytest.raises(ConfigError, match="different spec"):
        run_experiment(ExperimentSpec.from_dict(tiny_spec(seeds=[0])), out, progress=False)


@pytest.mark.slow
def test_killed_experiment_resumes_to_the_same_runs(tiny_experiment, tmp_path):
    """SIGKILL the whole runner (and its workers) mid-experiment, relaunch, compare."""
    reference, _ = tiny_experiment
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec())
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-c",
        "from divlab.cli import main; main()",
        "experiment",
        "run",
        str(spec),
        "--out",
        str(out),
        "--no-report",
        "--quiet",
    ]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while len(list(out.glob("runs/*/result.json"))) < 2:  # some runs done, others not
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)  # a hang is pytest-timeout's to catch (pyproject.toml)
    finally:  # the runner and its workers, also when the test fails or times out
        with contextlib.suppress(ProcessLookupError):  # already gone: its error is the news
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = len(list(out.glob("runs/*/result.json")))
    assert 2 <= finished < 6, "the kill came too late to test a resume"
    assert not (out / "results.parquet").exists()  # no table that looks complete

    relaunch = subprocess.run(command, capture_output=True, text=True)
    assert relaunch.returncode == 0, relaunch.stderr
    resumed, expected = _table(out), _table(reference)
    assert resumed.run_id.tolist() == expected.run_id.tolist()  # none lost, none duplicated
    pd.testing.assert_frame_equal(resumed[VALUES], expected[VALUES])


@pytest.mark.slow
def test_ray_executor_gives_the_same_results_as_local(tiny_experiment, tmp_path):
    pytest.importorskip("ray")
    from divlab.experiments.executors import RayExecutor

    reference, _ = tiny_experiment
    out = tmp_path / "ray"
    result = run_experiment(
        ExperimentSpec.from_dict(tiny_spec()),
        out,
        executor=RayExecutor(workers=2),
        progress=False,
        report=False,
    )
    assert result["finished"] == 6
    pd.testing.assert_frame_equal(_table(out)[VALUES], _table(reference)[VALUES])


def test_the_runner_leaves_the_callers_torch_threads_alone(tiny_experiment):
    import torch

    out, _ = tiny_experiment
    before = torch.get_num_threads()
    run_experiment(ExperimentSpec.from_dict(tiny_spec()), out, progress=False, report=False)
    assert torch.get_num_threads() == before == 1  # tests/conftest.py pins one thread


def test_curation_arms_train_on_curated_versions_of_the_same_data(tmp_path):
    """Plan 'sets' with raw / exact-dedup / perplexity-filtered / D4 arms of ONE noisy,
    duplicated training set: same budget (fair), curated data written beside the raw."""
    from divlab.data.store import open_dataset

    knobs = {"noise": {"fraction": 0.3, "rate": 0.5}, "duplicates": {"fraction": 0.3}}
    concepts = {"plan": "ids", "ids": [0, 1]}
    plan = {
        "kind": "sets",
        "sets": [
            {"name": "raw", "concepts": concepts, **knobs},
            {"name": "exact", "concepts": concepts, **knobs, "curate": {"method": "exact"}},
            {
                "name": "ppl",
                "concepts": concepts,
                **knobs,
                "curate": {"method": "perplexity", "keep_high": 0.7},
            },
            {
                "name": "d4",
                "concepts": concepts,
                **knobs,
                "curate": {"method": "d4", "clusters": 4, "r_dedup": 0.8, "r_proto": 0.6},
            },
        ],
    }
    spec = tiny_spec(
        plan=plan, seeds=[0], probe={"source": "trained", "preset": "tiny", "token_budget": 16384}
    )
    out = tmp_path / "arms"
    result = run_experiment(ExperimentSpec.from_dict(spec), out, progress=False, report=False)
    assert result["finished"] == 4
    table = _table(out).set_index("condition")
    assert table.tokens.nunique() == 1  # the same budget for every arm
    conditions = json.loads((out / "experiment.json").read_text())["conditions"]
    data = {c["name"]: open_dataset(c["data"]).table("train").to_pandas() for c in conditions}
    raw, exact, ppl = data["raw"], data["exact"], data["ppl"]
    assert len(data["d4"]) == round(0.6 * len(raw))  # D4 on the probe's embeddings
    group = dict(
        zip(raw.doc_id, raw.duplicate_of.where(raw.duplicate_of >= 0, raw.doc_id), strict=True)
    )  # a copy's group is its source
    assert (raw.duplicate_of >= 0).sum() > 0
    kept_groups = [group[d] for d in exact.doc_id]
    assert len(kept_groups) == len(set(kept_groups)) == (raw.duplicate_of < 0).sum()
    assert ppl.noise.mean() < raw.noise.mean() / 2  # the filter removed most noisy docs


def test_results_rebuilds_the_tables_from_the_run_folders(tiny_experiment, tmp_path):
    """`divlab results SPEC --out FOLDER` gives the same table again, and keeps the
    hardware the runs ran on (a rebuild on another machine does not overwrite it)."""
    out, _ = tiny_experiment
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    record = json.loads((copy / "experiment.json").read_text())
    record["provenance"]["hardware"] = {"platform": "cluster-node"}
    (copy / "experiment.json").write_text(json.dumps(record))
    (copy / "results.parquet").unlink()
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec())
    result = CliRunner().invoke(app, ["results", str(spec), "--out", str(copy)])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(
        _table(copy).drop(columns="run_dir"), _table(out).drop(columns="run_dir")
    )
    rebuilt = json.loads((copy / "experiment.json").read_text())
    assert rebuilt["provenance"]["hardware"] == {"platform": "cluster-node"}
    assert rebuilt["runs"] == {"planned": 6, "finished": 6}
