"""A synthetic experiment folder in the runner's format, with a planted relation.

Diversity rises with log2(number of concepts) and eval loss falls with it, so the report
must find a strong negative rank correlation between diversity and loss. Two conditions of
plan "added" (concepts from outside the eval set, lower alignment, a larger energy distance
to the eval set) make plots D and G render;
``token_match`` is entirely null and must be skipped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

NESTED = [1, 2, 4, 8]
ADDED = [(2, 2), (2, 4), (4, 4)]  # (k, k_added)
SEEDS = [0, 1]
NOISE_FLOOR = 0.012
TOKENS = 20_000
# Two real metrics (one lower-is-better, one higher-is-better) keep the test's drawing short;
# gap and edit_distance are in the table but not requested, so they get no figures.
METRICS = ["loss", "icl_accuracy", "token_match"]


def _conditions() -> list[dict]:
    rows = []
    for k in NESTED:
        rows.append(
            {"condition": f"k={k}", "plan": "nested", "k": k, "k_added": 0, "base_condition": None}
        )
    for k, added in ADDED:
        rows.append(
            {
                "condition": f"k={k}+{added}",
                "plan": "added",
                "k": k,
                "k_added": added,
                "base_condition": f"k={k}",
            }
        )
    for row in rows:
        row["n_concepts"] = row["k"] + row["k_added"]
    return rows


def _results(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for c in _conditions():
        n, k = c["n_concepts"], c["k"]
        diversity = 0.015 + 0.006 * math.log2(n) + rng.normal(0, 0.0005)
        half = 0.002
        # added concepts are not in the eval set: alignment drops with every added one
        alignment = 0.80 + 0.03 * math.log2(k) - 0.01 * c["k_added"]
        energy = 0.05 - 0.01 * math.log2(k) + 0.004 * c["k_added"]
        for seed in SEEDS:
            loss = 3.0 - 0.25 * math.log2(n) + 0.05 * c["k_added"] / 4 + rng.normal(0, 0.02)
            rows.append(
                {
                    "experiment": "synthetic",
                    "run_id": f"{c['condition']}-s{seed}",
                    "seed": seed,
                    **c,
                    "gt_n_concepts": float(n),
                    "gt_weight_entropy": math.log(n),
                    "gt_effective_concepts": float(n),
                    "gt_hellinger": 1 - 1 / math.sqrt(n),
                    "diversity": diversity,
                    "diversity_ci_low": diversity - half,
                    "diversity_ci_high": diversity + half,
                    "diversity_std": half,
                    "alignment": alignment,
                    "alignment_ci_low": alignment - 0.01,
                    "alignment_ci_high": alignment + 0.01,
                    "align2": alignment - 0.02,
                    "energy_distance": energy,
                    "energy_distance_ci_low": energy - 0.002,
                    "energy_distance_ci_high": energy + 0.002,
                    "noise_floor": NOISE_FLOOR,
                    "probe": "trained",
                    "loss": loss,
                    "perplexity": math.exp(loss),
                    "oracle_loss": 2.0,
                    "gap": loss - 2.0,
                    "icl_accuracy": min(0.2 + 0.08 * math.log2(n) + rng.normal(0, 0.02), 1.0),
                    "edit_distance": 0.6 - 0.05 * math.log2(n) + rng.normal(0, 0.01),
                    "token_match": None,
                    "speed_auc": loss + 0.5,
                    "tokens_to_threshold": None if n == 1 else 15_000.0 - 1_000 * math.log2(n),
                    "prequential_bits_per_token": (loss + 0.6) / math.log(2),
                    "tokens": TOKENS,
                    "parameters": 50_000,
                    "flops": 6 * 50_000 * TOKENS,
                    "model": "llama",
                    "train_seconds": 1.5,
                    "wall_seconds": 2.0,
                    "device": "cpu",
                    "divlab_version": "0.1.0",
                    "torch_version": "2.13.0",
                    "transformers_version": "5.23.0",
                }
            )
    return pd.DataFrame(rows).astype({"token_match": "float64", "tokens_to_threshold": "float64"})


def _curves(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in results.itertuples():
        for step in range(6):
            tokens = step * TOKENS // 5
            loss = 4.0 - (4.0 - r.loss) * (1 - math.exp(-step / 1.5))
            rows.append(
                {
                    "run_id": r.run_id,
                    "condition": r.condition,
                    "seed": r.seed,
                    "step": step,
                    "tokens": tokens,
                    "loss": loss,
                    "gap": loss - 2.0,
                }
            )
    return pd.DataFrame(rows)


def make_synthetic_experiment(path: str | Path) -> Path:
    """Write results.parquet, curves.parquet and experiment.json into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    results = _results(np.random.default_rng(0))
    results.to_parquet(path / "results.parquet", index=False)
    _curves(results).to_parquet(path / "curves.parquet", index=False)
    info = {
        "name": "synthetic",
        "spec": {
            "name": "synthetic",
            "plan": {"nested": NESTED, "added": ADDED},
            "seeds": SEEDS,
            "note": "<script>alert('escaped')</script>",
        },
        "provenance": {
            "git_sha": None,
            "versions": {"divlab": "0.1.0", "torch": "2.13.0"},
            "hardware": {"platform": "test", "cpu_cores": 2},
            "started": "2025-01-01T00:00:00+00:00",
            "finished": "2025-01-01T00:01:00+00:00",
            "seeds": SEEDS,
        },
        "metrics": METRICS,
        "probe": {"source": "trained"},
    }
    (path / "experiment.json").write_text(json.dumps(info, indent=2))
    return path
