"""What the command modules share: the consoles, the vocabulary of the command line (the
options every command spells the same way, listed in :mod:`divlab.cli`), the deprecation
of old spellings, and flags that map to spec fields.

A flag that overrides a spec field says which one on its own declaration, with a
:class:`SpecField` next to its ``typer.Option`` in ``Annotated``::

    vocab_size: Annotated[int | None, SpecField("family.vocab_size"), typer.Option(...)] = None

Typer keeps only the ``typer.Option`` of an ``Annotated`` parameter and ignores other
metadata (checked with typer 0.29), so the marker changes nothing on the command line;
:func:`spec_overrides` reads it back with ``typing.get_type_hints(include_extras=True)``.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from divlab.errors import ConfigError

console = Console()
error_console = Console(stderr=True)


class SpecField:
    """Marks a command's parameter as the override of the spec field at a dotted path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"SpecField({self.path!r})"


def spec_fields(command: Callable[..., Any]) -> dict[str, str]:
    """{parameter name: dotted spec path} of the parameters marked with a SpecField."""
    fields = {}
    for name, hint in typing.get_type_hints(command, include_extras=True).items():
        marks = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, SpecField)]
        if len(marks) > 1:
            raise TypeError(f"{command.__name__}({name}): more than one SpecField")
        if marks:
            fields[name] = marks[0].path
    return fields


def spec_overrides(command: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """{dotted spec path: value} of the flags of ``command`` that were given, from its
    parameters' ``values`` (e.g. ``locals()`` at the top of the command).

    A flag counts as given when its value is neither None nor its default (so a plain
    ``--compile`` flag, default False, overrides only when set). Paths become strings,
    as a YAML config writes them."""
    defaults = inspect.signature(command).parameters
    overrides = {}
    for name, path in spec_fields(command).items():
        value = values[name]
        if value is None or value == defaults[name].default:
            continue
        overrides[path] = str(value) if isinstance(value, Path) else value
    return overrides


def set_field(tree: dict, dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted = "a.b.c"``, making the mappings on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"config field {'.'.join(parents)} must be a mapping")
        node = child
    node[leaf] = value


def curation_lines(info: dict) -> list[str]:
    """One line per curation step recorded in a data set's summary: the method, the split
    and what it held before and after (documents, and on GINC noisy documents,
    duplicates and the mean oracle NLL)."""
    lines = []
    for number, step in enumerate(info.get("curation") or [], start=1):
        before, after = step.get("before") or {}, step.get("after") or {}
        parts = [f"docs {before.get('n_docs', '?'):,} -> {after.get('n_docs', '?'):,}"]
        for key, label in (("noise", "noisy docs"), ("duplicates", "duplicates")):
            if isinstance(before.get(key), dict) and isinstance(after.get(key), dict):
                parts.append(f"{label} {before[key]['docs']:,} -> {after[key]['docs']:,}")
        if "with_source" in (after.get("duplicates") or {}):
            parts[-1] += f" ({after['duplicates']['with_source']:,} with their source kept)"
        if before.get("oracle_nll") is not None and after.get("oracle_nll") is not None:
            parts.append(f"oracle nll {before['oracle_nll']:.4f} -> {after['oracle_nll']:.4f}")
        where = f" on {step['split']}" if step.get("split") else ""
        lines.append(f"curation {number}: {step.get('method', '?')}{where}: " + ", ".join(parts))
    return lines


# -- the vocabulary: one spelling per meaning (the table is in divlab.cli's docstring) --


def out_option(help: str) -> Any:
    """``--out``/``-o``: where a command writes. Every output is ``--out``, never an input."""
    return typer.Option("--out", "-o", help=help)


FieldOption = Annotated[
    str,
    typer.Option(
        "--field", help="The text field of JSONL, Parquet or Hugging Face dataset inputs."
    ),
]

SPLIT_RULE = (
    "commands that score a model read eval; commands that change or measure data act on train"
)


# ``--split``; a command's default follows SPLIT_RULE: `= "eval"` or `= "train"`
SplitOption = Annotated[str, typer.Option("--split", help=f"The split to read ({SPLIT_RULE}).")]


# ``--split`` of the commands that read a data set's documents (curate, measure): the one
# asked for, else train, else the set's only split (TokenDataset.data_split)
DataSplitOption = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="The split of a data set folder (commands that change or measure data act on "
        "train; default: train, else the set's only split).",
        show_default=False,
    ),
]


ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Progress bars on stderr (default: when stderr is a terminal).",
        show_default=False,
    ),
]


def deprecated(old: str, new: str) -> None:
    """The one line on stderr that says a spelling is deprecated and what replaces it."""
    error_console.print(
        f"warning: {old} is deprecated; use {new} (it will be removed in the next release)",
        highlight=False,
        soft_wrap=True,
    )


def deprecated_option(old: str, new: str, *short: str) -> Any:
    """A hidden option for the old spelling ``old`` of ``new``: it works for one release
    and prints :func:`deprecated`'s line when given. Give its parameter the default None
    (False for a flag) and merge it with :func:`renamed`."""

    def warn(value: Any) -> Any:
        if value not in (None, False):
            deprecated(old, new)
        return value

    return typer.Option(old, *short, hidden=True, callback=warn, show_default=False)


def renamed(value: Any, old_value: Any, new: str, old: str) -> Any:
    """The value of an option given by its new or (deprecated) old spelling, not both."""
    if old_value is None:
        return value
    if value is not None:
        raise ConfigError(f"give {new} only ({old} is its deprecated spelling)")
    return old_value


QuietOption = Annotated[bool, deprecated_option("--quiet", "--no-progress", "-q")]


def show_progress(progress: bool | None, quiet: bool = False) -> bool:
    """Whether to draw progress bars: ``--progress/--no-progress``, else when stderr is a
    terminal; the deprecated ``--quiet`` means ``--no-progress``."""
    if quiet:
        if progress is not None:
            raise ConfigError("give --no-progress only (--quiet is its deprecated spelling)")
        return False
    return sys.stderr.isatty() if progress is None else progress


# -- help: flags shown without a value placeholder --


def _flags_without_metavar(params: list) -> list:
    # typer (0.29) shows every flag, --help included, with a <bool> placeholder as if it
    # took a value (`--json true` then fails); an empty metavar shows none
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose help shows flags as flags."""

    def get_params(self, ctx: Any) -> list:
        return _flags_without_metavar(super().get_params(ctx))


class Group(TyperGroup):
    """A command group whose help shows flags as flags."""

    def get_params(self, ctx: Any) -> list:
        return _flags_without_metavar(super().get_params(ctx))


class App(typer.Typer):
    """``typer.Typer`` whose groups and commands are :class:`Group` and :class:`Command`
    (help without ``<bool>`` on flags); no arguments shows the help."""

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("cls", Group)
        settings.setdefault("no_args_is_help", True)
        super().__init__(**settings)

    def command(self, name: str | None = None, *, cls: Any = None, **settings: Any) -> Any:
        return super().command(name, cls=cls or Command, **settings)
