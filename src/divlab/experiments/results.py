"""The results store: per-run files are the source of truth; one Parquet table is built
from them (``divlab results``) for pandas / DuckDB.

``results.parquet``: one row per finished run — the condition's fields (plan, k,
k_added, number of concepts, base condition), its ground-truth diversity, its Task2Vec
diversity and alignment with D_eval (with CIs, the probe and the noise floor), every
metric, FLOPs, tokens, wall time and versions. ``curves.parquet``: the learning curves in
long form (run, tokens, eval loss, gap). Runs not yet finished are absent, never partial.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from divlab.errors import ConfigError, DataError
from divlab.io import read_json, write_json


def _measure_columns(measures: dict | None, floor: dict | None) -> dict:
    measures = measures or {}
    truth = measures.get("ground_truth") or {}
    div, align = measures.get("diversity") or {}, measures.get("alignment") or {}
    ci = div.get("ci95") or [None, None]
    align_ci = align.get("align1_ci95") or [None, None]
    return {
        "gt_n_concepts": truth.get("n_concepts"),
        "gt_weight_entropy": truth.get("weight_entropy"),
        "gt_effective_concepts": truth.get("effective_concepts"),
        "gt_hellinger": truth.get("expected_hellinger"),
        "diversity": div.get("diversity"),
        "diversity_ci_low": ci[0],
        "diversity_ci_high": ci[1],
        "diversity_std": div.get("std"),
        "diversity_paper_ci95": div.get("paper_ci95"),
        "alignment": align.get("align1"),
        "alignment_ci_low": align_ci[0],
        "alignment_ci_high": align_ci[1],
        "align2": align.get("align2"),
        "align2_ci_low": (align.get("align2_ci95") or [None, None])[0],
        "align2_ci_high": (align.get("align2_ci95") or [None, None])[1],
        "noise_floor": ((floor or {}).get("diversity") or {}).get("diversity"),
        "probe": measures.get("probe"),
    }


def _write_table(rows: list[dict], path: Path) -> None:
    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def consolidate(experiment, probe_info: dict | None = None, provenance: dict | None = None):
    """Build ``results.parquet``, ``curves.parquet`` and ``experiment.json`` from the run
    folders of ``experiment`` (a ``divlab.experiments.runner.Experiment``)."""
    from divlab.train.loop import load_curve

    layout, spec = experiment.layout, experiment.spec
    previous = layout.root / "experiment.json"
    previous = read_json(previous) if previous.exists() else {}
    floor_path = layout.measures(experiment.floor) if experiment.floor else None
    floor = read_json(floor_path) if floor_path and floor_path.exists() else None
    rows, curves = [], []
    for run in experiment.runs:
        folder = layout.run(run)
        if not (folder / "result.json").exists():
            continue
        record = read_json(folder / "result.json")
        condition = run.condition
        measures_path = layout.measures(condition)
        measures = read_json(measures_path) if measures_path.exists() else None
        rows.append(
            {
                "experiment": spec.name,
                "run_id": run.id,
                "condition": condition.name,
                "condition_id": condition.id,
                "seed": run.seed,
                "plan": condition.plan,
                "k": condition.k,
                "k_added": condition.k_added,
                "n_concepts": condition.n_concepts,
                "base_condition": condition.base_condition,
                **_measure_columns(measures, floor),
                **{k: v for k, v in record.items() if k not in ("run_id", "condition", "seed")},
                "model": spec.model.preset,
                "run_dir": str(folder),
            }
        )
        for point in load_curve(folder):
            curves.append(
                {
                    "run_id": run.id,
                    "condition": condition.name,
                    "seed": run.seed,
                    "step": point["step"],
                    "tokens": point["tokens"],
                    "loss": point["loss"],
                    "gap": point.get("gap"),
                }
            )
    results_path, curves_path = layout.root / "results.parquet", layout.root / "curves.parquet"
    _write_table(rows, results_path)
    _write_table(curves, curves_path)
    from divlab.train.checkpoint import versions

    software = versions()  # runs git once
    write_json(
        layout.root / "experiment.json",
        {
            "name": spec.name,
            "spec": spec.model_dump(mode="json"),
            "provenance": {
                **previous.get("provenance", {}),
                **(provenance or {}),
                "git_sha": software.get("git_sha"),
                "versions": software,
                "seeds": spec.seeds,
            },
            "metrics": spec.metrics,
            "probe": probe_info or previous.get("probe"),
            "runs": {"planned": len(experiment.runs), "finished": len(rows)},
            "conditions": [
                {
                    "name": c.name,
                    "id": c.id,
                    "plan": c.plan,
                    "k": c.k,
                    "k_added": c.k_added,
                    "n_concepts": c.n_concepts,
                    "base_condition": c.base_condition,
                    "curation": c.curation,
                    "data": str(layout.data(c)),
                }
                for c in experiment.conditions
            ],
        },
    )
    return {"results": str(results_path), "curves": str(curves_path), "finished": len(rows)}


def open_experiment(spec_or_dir: str | Path, out: str | Path | None = None):
    """An Experiment from a spec file (folder ``out`` or ``runs/<name>``) or a folder of a
    diversity experiment (other kinds write their own tables as they run)."""
    from divlab.experiments import kinds
    from divlab.experiments.runner import Experiment

    path = Path(spec_or_dir)
    spec = kinds.load(path)
    if spec.kind != "diversity":
        raise ConfigError(
            f"{path} is a {spec.kind} experiment; it writes its tables and report as it runs "
            "(`divlab experiment run` to resume it, `divlab report` to rebuild the report)"
        )
    return Experiment(spec, path if path.is_dir() else out or Path("runs") / spec.name)


def load_results(folder: str | Path):
    """``results.parquet`` of an experiment folder as a pandas DataFrame."""
    import pandas as pd

    path = Path(folder) / "results.parquet"
    if not path.exists():
        raise DataError(f"{path} does not exist; run `divlab results {folder}` first")
    return pd.read_parquet(path)
