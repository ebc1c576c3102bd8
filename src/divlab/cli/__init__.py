"""The ``divlab`` command. Thin: it parses, calls the library, prints.

One module per command group (``ginc``, ``data``, ``train``, ``measure``, ``experiment``,
``curate``), each with its typer sub-app or commands; :mod:`divlab.cli.common` holds the
consoles and the flag -> spec field mapping (:class:`~divlab.cli.common.SpecField`).
This module assembles the root ``app``.

The library imports torch and transformers at module level (about 5 s here), so each
command imports the library modules it calls inside its body: ``divlab --help``, a typo
in a flag or a bad spec path answer at once, before any heavy import.

User errors (:class:`divlab.errors.DivlabError`) become one red line and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import divlab
from divlab.cli import curate, data, experiment, ginc, measure, train
from divlab.cli.common import console, error_console
from divlab.errors import DivlabError

app = typer.Typer(
    help="divlab: controlled experiments on language-model training data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",  # a docstring's wrapped lines are one paragraph
)


def _version(value: bool) -> None:
    if value:
        console.print(f"divlab {divlab.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """divlab: controlled experiments on language-model training data."""


# the order of `divlab --help`: top-level commands first, then the groups
app.command("train")(train.train_command)
app.command("evaluate")(train.evaluate_command)
app.command("merge")(train.merge_command)
# the spellings of the Task2Vec issue and the papers: `divlab diversity`, `divlab alignment`
app.command("diversity", help="Same as `divlab measure diversity`.")(measure.measure_diversity)
app.command("alignment", help="Same as `divlab measure alignment`.")(measure.measure_alignment)
app.command("results")(experiment.results_command)
app.command("report")(experiment.report_command)
app.add_typer(ginc.app, name="ginc")
app.add_typer(data.app, name="data")
app.add_typer(measure.app, name="measure")
app.add_typer(experiment.app, name="experiment")
app.add_typer(curate.app, name="curate")


def main() -> None:
    try:
        app()
    except DivlabError as e:
        error_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        error_console.print(
            "interrupted; finished work is kept, relaunch the same command to resume"
        )
        sys.exit(130)
