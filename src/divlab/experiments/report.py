"""The report of any experiment folder: its kind's sections on the shared page.

``build_report(folder)`` finds the folder's kind (``spec.json``) in the registry, asks the
kind's ``report`` for its sections and headline numbers, adds the Spec and Provenance
sections of ``experiment.json`` unless the kind wrote its own, and writes one
self-contained ``report/index.html`` beside ``figures/`` and ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path

from divlab.errors import DataError
from divlab.experiments import registry
from divlab.io import atomic_directory, read_json, write_json
from divlab.report.page import page, provenance_section, spec_section


def build_report(experiment_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the experiment in ``experiment_dir`` and return its index.html.

    ``out`` (default ``experiment_dir/report``) receives ``index.html`` (self-contained),
    ``figures/`` (PNG and SVG), ``summary.json`` (headline numbers) and whatever tables
    the kind adds. A previous report there is replaced in one rename.
    """
    folder = Path(experiment_dir)
    kind = registry.kind_of_folder(folder)
    info_path = folder / "experiment.json"
    if not info_path.exists():
        raise DataError(f"{folder} has no experiment.json yet; run the experiment first")
    info = read_json(info_path)
    out = Path(out) if out is not None else folder / "report"
    if out.exists() and (not out.is_dir() or _foreign(out)):
        raise DataError(f"{out} exists and is not a divlab report; choose another output folder")
    with atomic_directory(out, overwrite=True) as tmp:
        sections, summary = kind.report(folder, tmp)
        ids = {id_ for _, _, id_ in sections}
        if "spec" not in ids:
            sections.append(("Spec", spec_section(info), "spec"))
        if "provenance" not in ids:
            sections.append(("Provenance", provenance_section(info), "provenance"))
        write_json(tmp / "summary.json", {"kind": kind.name, **summary})
        title = f"divlab {kind.name} report: {info.get('name', folder.name)}"
        (tmp / "index.html").write_text(page(title, sections), encoding="utf-8")
    return out / "index.html"


def _foreign(folder: Path) -> bool:
    """A non-empty folder without a report's index.html: never overwrite it."""
    return any(folder.iterdir()) and not (folder / "index.html").exists()
