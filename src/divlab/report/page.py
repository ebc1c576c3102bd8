"""The page every report shares: inline CSS, sections, tables and figures as base64 PNG
data URIs (no scripts), and the Spec and Provenance sections read from
``experiment.json``. Every piece of text that comes from data goes through
``html.escape``. Every experiment kind's report is sections on this page.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from html import escape

import numpy as np
import yaml

from divlab.report.figures import FigureFile
from divlab.report.formatting import number

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; }
th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.num { font-weight: 600; } .note { color: #666; font-size: .9em; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr));
           gap: 1em; }
figure { margin: 0; } figure.wide { grid-column: 1 / -1; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .8em; }
.summary p { max-width: 60em; }
"""


@dataclass(frozen=True)
class Number:
    """A key number in a sentence or a table cell; the HTML gives it an element id."""

    text: str
    id: str

    def html(self) -> str:
        return f"<span class='num' id='{escape(self.id)}'>{escape(self.text)}</span>"


def section(title: str, body: str, id_: str) -> str:
    return f"<section id='{id_}'>\n<h2>{escape(title)}</h2>\n{body}\n</section>"


def note(text: str) -> str:
    return f"<p class='note'>{escape(text)}</p>"


def table(header: list[str], rows: list[list[str]], id_: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table id='{id_}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(value) -> str:
    """A table cell; numbers (and intervals) align right, words left; a :class:`Number`
    keeps its element id."""
    text = value.text if isinstance(value, Number) else str(value)
    numeric = re.match(r"^(-?[\d.]|\[|n/a$)", text) is not None
    inner = value.html() if isinstance(value, Number) else escape(text)
    return f"<td class='n'>{inner}</td>" if numeric else f"<td>{inner}</td>"


def figures(figures: list[FigureFile]) -> str:
    if not figures:
        return note("No figures: the experiment has nothing to plot.")
    return "<div class='figures'>" + "".join(figure(f) for f in figures) + "</div>"


def figure(figure: FigureFile) -> str:
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    wide = " class='wide'" if figure.wide else ""
    return (
        f"<figure id='figure-{escape(figure.stem)}'{wide}><h3>{escape(figure.title)}</h3>"
        f"<img src='data:image/png;base64,{data}' alt='{escape(figure.title)}'>"
        f"<figcaption>{escape(figure.caption)} (vector copy: figures/"
        f"{escape(figure.svg.name)})</figcaption></figure>"
    )


def dump(obj) -> str:
    try:
        return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return json.dumps(obj, indent=2, default=str)


def value_text(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, float | np.floating):
        return number(value, 4)
    return str(value)


def spec_section(info: dict) -> str:
    if not info.get("spec"):
        return note("No spec recorded.")
    return f"<pre id='spec-dump'>{escape(dump(info['spec']))}</pre>"


def provenance_section(info: dict) -> str:
    rows = [[key, value_text(v)] for key, v in (info.get("provenance") or {}).items()]
    if not rows:
        return note("No provenance recorded.")
    return table(["field", "value"], rows, "provenance-table")


def page(title: str, sections: list[tuple[str, str, str]]) -> str:
    """A whole HTML document: ``sections`` are (title, body html, element id)."""
    body = [f"<h1>{escape(title)}</h1>"] + [section(t, b, i) for t, b, i in sections]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
