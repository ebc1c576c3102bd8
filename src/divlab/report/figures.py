"""Figures of every report: one style, and each figure saved as PNG (for the page) and
SVG (a vector copy) with its title and caption.

Figures are ``matplotlib.figure.Figure`` objects drawn on their own canvas: no pyplot, so
no global figure state carries over from one figure (or one report) to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

DPI = 110
STYLE = {"font.size": 9, "axes.titlesize": 8, "svg.hashsalt": "divlab", "svg.fonttype": "none"}


@dataclass(frozen=True)
class FigureFile:
    stem: str
    title: str
    caption: str
    png: Path
    svg: Path
    wide: bool  # several panels: the HTML gives it a full row


def save_figure(
    figure: Figure, folder: Path, stem: str, title: str, caption: str, wide: bool = False
) -> FigureFile:
    png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
    # Lay out once and freeze it: otherwise each savefig runs the constrained layout again.
    figure.get_layout_engine().execute(figure)
    figure.set_layout_engine(None)
    figure.savefig(png, dpi=DPI)
    figure.savefig(svg, metadata={"Date": None})  # no timestamp: same data, same file
    return FigureFile(stem, title, caption, png, svg, wide)
