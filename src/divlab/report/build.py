"""Build the report of an experiment folder: figures, tables and one HTML file."""

from __future__ import annotations

from pathlib import Path

from divlab.errors import DataError
from divlab.io import atomic_directory, write_json
from divlab.report.analysis import analyse
from divlab.report.html import render
from divlab.report.load import read_experiment
from divlab.report.plots import make_figures
from divlab.report.summary import summary_json


def build_report(experiment_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the experiment in ``experiment_dir`` and return its index.html.

    ``out`` (default ``experiment_dir/report``) receives ``index.html`` (self-contained),
    ``figures/`` (PNG and SVG), ``stats.parquet`` (the correlation table) and
    ``summary.json`` (headline numbers). A previous report there is replaced in one rename.
    """
    tables = read_experiment(experiment_dir)
    out = Path(out) if out is not None else tables.path / "report"
    if out.exists() and (not out.is_dir() or _foreign(out)):
        raise DataError(f"{out} exists and is not a divlab report; choose another output folder")
    analysis = analyse(tables)
    with atomic_directory(out, overwrite=True) as tmp:
        figures = make_figures(analysis, tmp / "figures")
        analysis.correlations.to_parquet(tmp / "stats.parquet", index=False)
        write_json(tmp / "summary.json", summary_json(analysis))
        (tmp / "index.html").write_text(render(analysis, figures), encoding="utf-8")
    return out / "index.html"


def _foreign(folder: Path) -> bool:
    """A non-empty folder without a report's index.html: never overwrite it."""
    return any(folder.iterdir()) and not (folder / "index.html").exists()
