"""Read an experiment folder (results.parquet, curves.parquet, experiment.json) and name
its metrics: axis labels and which direction is better."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from divlab.errors import DataError
from divlab.io import read_json


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # the axis label, with unit and direction
    short: str  # a few words for sentences and table headers
    lower_is_better: bool | None  # None: no better direction (a measure, not a score)


METRICS = {
    m.name: m
    for m in [
        Metric("loss", "eval loss (nats/token, lower is better)", "eval loss", True),
        Metric("perplexity", "eval perplexity (lower is better)", "eval perplexity", True),
        Metric("oracle_loss", "oracle loss (nats/token)", "oracle loss", None),
        Metric(
            "gap", "eval loss - oracle loss (nats/token, lower is better)", "gap to oracle", True
        ),
        Metric(
            "icl_accuracy",
            "ICL exact-match accuracy (fraction, higher is better)",
            "ICL accuracy",
            False,
        ),
        Metric(
            "edit_distance",
            "normalised token edit distance (lower is better)",
            "edit distance",
            True,
        ),
        Metric("token_match", "token match (fraction, higher is better)", "token match", False),
        Metric(
            "speed_auc",
            "area under eval-loss curve (nats/token, lower is better)",
            "area under the loss curve",
            True,
        ),
        Metric(
            "tokens_to_threshold",
            "tokens to reach the loss threshold (lower is better)",
            "tokens to threshold",
            True,
        ),
        Metric(
            "prequential_bits_per_token",
            "prequential code length (bits/token, lower is better)",
            "prequential code length",
            True,
        ),
        Metric(
            "diversity",
            "Task2Vec diversity coefficient (mean cosine distance)",
            "Task2Vec diversity",
            None,
        ),
        Metric(
            "alignment",
            "Task2Vec alignment with the eval set (align1)",
            "alignment",
            None,
        ),
        Metric(
            "energy_distance",
            "energy distance to the eval set (batch embeddings; 0 = same distribution)",
            "energy distance",
            None,
        ),
    ]
}
DEFAULT_METRICS = ["loss", "gap", "icl_accuracy", "edit_distance"]
REQUIRED_COLUMNS = ["run_id", "condition", "seed"]


def metric(name: str) -> Metric:
    """The metadata of ``name``; an unknown column gets a plain label."""
    return METRICS.get(name, Metric(name, name, name.replace("_", " "), None))


@dataclass
class ExperimentTables:
    """What a report is built from. ``notes`` collects what was missing, in plain words."""

    path: Path
    name: str
    results: pd.DataFrame
    curves: pd.DataFrame | None
    info: dict
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        """The metrics the experiment asked for (experiment.json), in its order."""
        return list(self.info.get("metrics") or DEFAULT_METRICS)


def read_experiment(path: str | Path) -> ExperimentTables:
    """Read ``path``/results.parquet (required), curves.parquet and experiment.json."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path} is not a folder; pass the experiment's output folder")
    results_path = path / "results.parquet"
    if not results_path.exists():
        raise DataError(
            f"{path} has no results.parquet; run the experiment first (divlab experiment run)"
        )
    results = _read_parquet(results_path)
    missing = [c for c in REQUIRED_COLUMNS if c not in results.columns]
    if missing:
        raise DataError(f"{results_path} lacks the column(s) {', '.join(missing)}")
    if results.empty:
        raise DataError(f"{results_path} has no runs")
    notes = []
    curves = None
    if (path / "curves.parquet").exists():
        curves = _read_parquet(path / "curves.parquet")
    else:
        notes.append("No curves.parquet: the learning-curve figure is left out.")
    info = {}
    if (path / "experiment.json").exists():
        info = read_json(path / "experiment.json")
    else:
        notes.append("No experiment.json: the spec and provenance sections are empty.")
    name = str(info.get("name") or path.name)
    return ExperimentTables(path, name, results, curves, info, notes)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"cannot read {path}: {e}") from None


def has_values(df: pd.DataFrame | None, column: str) -> bool:
    """True if ``column`` exists in ``df`` and holds at least one finite number."""
    if df is None or column not in df.columns:
        return False
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(float)
    return bool(np.isfinite(values).any())
