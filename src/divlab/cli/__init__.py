"""The ``divlab`` command. Thin: it parses, calls the library, prints.

One module per command group (``ginc``, ``data``, ``train``, ``measure``, ``experiment``,
``curate``), each with its typer sub-app or commands; :mod:`divlab.cli.common` holds the
consoles and the flag -> spec field mapping (:class:`~divlab.cli.common.SpecField`).
This module assembles the root ``app``.

The library imports torch and transformers at module level (about 5 s here), so each
command imports the library modules it calls inside its body: ``divlab --help``, a typo
in a flag or a bad spec path answer at once, before any heavy import.

User errors (:class:`divlab.errors.DivlabError`) become one red line and exit code 2.

The vocabulary: one spelling per meaning, in every command (the helpers are in
:mod:`divlab.cli.common`; the README's "Command-line conventions" has the same table)::

    --out, -o        where a command writes (a folder or a JSON file); never an input
                     (out_option). `experiment validate --out`: the --out `run` will get.
    --progress/--no-progress
                     progress bars on stderr, default: when stderr is a terminal, on every
                     command that can run more than a few seconds (ProgressOption,
                     show_progress); stdout stays clean for --json.
    --json           print the result as JSON on stdout instead of tables
    --field NAME     the text field of JSONL / Parquet / HF inputs, wherever a corpus is
                     read; default text (FieldOption)
    --split NAME     the split read; commands that score a model read eval, commands that
                     change or measure data act on train (SplitOption, SPLIT_RULE)
    --preset NAME    a model preset to build (tiny, mini, small, 10m, 30m, 125m)
    CHECKPOINT / --checkpoint PATH
                     a trained model folder (a divlab run's RUN/model or an HF folder):
                     positional where it is what the command acts on (evaluate, merge),
                     --checkpoint where it is a tool (curate ppl-filter)
    --probe SPEC     the model whose features a measure uses: a checkpoint, a .gguf file,
                     smollm2 or random:PRESET
    --embedder NAME  a text-embedding model (minilm or a sentence-transformers folder)
    --limit N        score at most N documents (evaluate; default: all of them)
    --max-docs N     read at most N documents of the input (data prepare)
    --config, -c     a YAML spec that flags override; --overwrite replaces --out

Every option's default is shown in ``--help`` (typer's ``[default: ...]``, or the help
text's "(default ...)" where the value comes from a spec or the data); options without
one are marked required; flags show no value placeholder (:class:`common.App`).

Old spellings keep working for one release and print one line on stderr
(:func:`common.deprecated_option`): ``--quiet``/``-q`` (now ``--no-progress``), ``train
--model`` (``--preset``), ``data prepare --limit`` (``--max-docs``), ``results --out``
(``--folder``), ``curate ppl-filter --model`` (``--checkpoint``), ``curate dedup
--preset`` (``--minhash-preset``: ``--preset`` is a model preset) and ``curate COMMAND
INPUT OUT`` (``--out OUT``; only when OUT does not exist yet, so an input folder is never
taken for it).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import divlab
from divlab.cli import curate, data, experiment, ginc, measure, train
from divlab.cli.common import App, console, error_console
from divlab.errors import DivlabError

app = App(
    help="divlab: controlled experiments on language-model training data.",
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
