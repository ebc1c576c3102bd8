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
    kind = _kind(experiment_dir)
    if kind != "diversity":
        return _build_kind_report(kind, Path(experiment_dir), out)
    tables = read_experiment(experiment_dir)
    out = Path(out) if out is not None else tables.path / "report"
    _check_out(out)
    analysis = analyse(tables)
    with atomic_directory(out, overwrite=True) as tmp:
        figures = make_figures(analysis, tmp / "figures")
        analysis.correlations.to_parquet(tmp / "stats.parquet", index=False)
        write_json(tmp / "summary.json", summary_json(analysis))
        (tmp / "index.html").write_text(render(analysis, figures), encoding="utf-8")
    return out / "index.html"


def _kind(folder) -> str:
    """The experiment kind recorded in the folder (``spec.json``, else ``experiment.json``;
    neither: a diversity experiment, whose reader names what is missing)."""
    from divlab.io import read_json

    for name in ("spec.json", "experiment.json"):
        path = Path(folder) / name
        if path.exists():
            return read_json(path).get("kind", "diversity")
    return "diversity"


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or _foreign(out)):
        raise DataError(f"{out} exists and is not a divlab report; choose another output folder")


def _build_kind_report(kind: str, folder: Path, out: str | Path | None) -> Path:
    """The report of another experiment kind: its module ``divlab.report.<kind>`` gives
    ``sections(folder, figures_dir) -> (sections, summary)``, with sections as (title,
    html, id); the page adds the spec and provenance of ``experiment.json``."""
    import importlib

    from divlab.io import read_json
    from divlab.report.page import page, provenance_section, spec_section

    info_path = folder / "experiment.json"
    if not info_path.exists():
        raise DataError(f"{folder} has no experiment.json yet; run the experiment first")
    info = read_json(info_path)
    out = Path(out) if out is not None else folder / "report"
    _check_out(out)
    sections_of = importlib.import_module(f"divlab.report.{kind}").sections
    with atomic_directory(out, overwrite=True) as tmp:
        sections, summary = sections_of(folder, tmp / "figures")
        sections = [
            *sections,
            ("Spec", spec_section(info), "spec"),
            ("Provenance", provenance_section(info), "provenance"),
        ]
        write_json(tmp / "summary.json", {"kind": kind, **summary})
        title = f"divlab {kind} report: {info.get('name', folder.name)}"
        (tmp / "index.html").write_text(page(title, sections), encoding="utf-8")
    return out / "index.html"


def _foreign(folder: Path) -> bool:
    """A non-empty folder without a report's index.html: never overwrite it."""
    return any(folder.iterdir()) and not (folder / "index.html").exists()
