"""The results store: per-run files are the source of truth; one Parquet table is built
from them (``divlab results``) for pandas / DuckDB.

``results.parquet``: one row per finished run — the condition's fields (plan, k,
k_added, number of concepts, base condition), its ground-truth diversity, its Task2Vec
diversity and alignment with D_eval (with CIs, the probe and the noise floor), the
measures beside them and the rival explanations (``measures.columns``: Vendi, compression,
distinct-n, Self-BLEU, embedding dispersion, eval overlap, size, coverage, typicality,
energy distance, each with its CI), every metric, FLOPs, tokens, wall time and versions.
``curves.parquet``: the learning curves in long form (run, tokens, eval loss, gap). Runs
not yet finished are absent, never partial.
"""

from __future__ import annotations

from divlab.experiments.kinds.diversity import measures as side_measures
from divlab.io import read_json, write_table
from divlab.train.loop import load_curve


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
        **side_measures.columns(measures),
    }


def consolidate(experiment, probe_info: dict | None = None) -> tuple[dict, dict]:
    """Build ``results.parquet`` and ``curves.parquet`` from the run folders of
    ``experiment`` (a ``run.Experiment``); return (the tables' paths and the number of
    finished runs, the fields this kind adds to ``experiment.json``)."""
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
    write_table(rows, results_path)
    write_table(curves, curves_path)
    fields = {
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
    }
    tables = {"results": str(results_path), "curves": str(curves_path), "finished": len(rows)}
    return tables, fields
