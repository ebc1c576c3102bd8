"""``divlab data prepare``: real-text corpora as divlab data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from divlab.cli.common import (
    App,
    FieldOption,
    ProgressOption,
    console,
    deprecated_option,
    out_option,
    renamed,
    show_progress,
)
from divlab.errors import ConfigError

app = App(help="Real-text corpora as divlab data sets.")


@app.command("prepare")
def data_prepare(
    inputs: Annotated[
        list[Path], typer.Argument(help="JSONL, Parquet, .txt, fortune files or HF dataset dirs.")
    ],
    out: Annotated[Path, out_option("Output folder (must not exist, or --overwrite).")],
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="Tokenizer folder, tokenizer.json or GPT-2 BPE files (folder); this or "
            "--vocab-size is required."
        ),
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option(help="Train a byte-level BPE of this size instead.")
    ] = None,
    field: FieldOption = "text",
    by: Annotated[
        str | None,
        typer.Option(
            help="Split .txt files by line, paragraph or fortune (default: fortune when a "
            "file has a lone % line, else line)."
        ),
    ] = None,
    eval_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of docs for eval (default 0.05; 1.0: all of them, a held-out set to "
            "evaluate on, with --tokenizer)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/eval split.")] = 0,
    max_doc_tokens: Annotated[
        int | None, typer.Option(help="Truncate longer docs (default: keep them whole).")
    ] = None,
    max_docs: Annotated[
        int | None,
        typer.Option(help="Read at most this many documents (default: all of them)."),
    ] = None,
    limit: Annotated[int | None, deprecated_option("--limit", "--max-docs")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    progress: ProgressOption = None,
) -> None:
    """Tokenize a text corpus into a data set that `divlab train` and the measures read."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.data.store import open_dataset
    from divlab.data.text import prepare_text

    max_docs = renamed(max_docs, limit, "--max-docs", "--limit")
    if (tokenizer is None) == (vocab_size is None):
        raise ConfigError("give exactly one of --tokenizer and --vocab-size")
    path = prepare_text(
        inputs,
        out,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        field=field,
        by=by,
        eval_fraction=eval_fraction,
        seed=seed,
        max_doc_tokens=max_doc_tokens,
        limit=max_docs,
        overwrite=overwrite,
        progress=show_progress(progress),
    )
    info = open_dataset(path).info()
    splits = ", ".join(
        f"{name}: {s['n_docs']:,} docs, {s['n_tokens']:,} tokens"
        for name, s in info["splits"].items()
    )
    console.print(f"[green]wrote[/] {path} (vocab {info['tokenizer']['vocab_size']:,}; {splits})")


@app.command("info")
def data_info(
    path: Annotated[Path, typer.Argument(help="A data set folder (divlab data prepare).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a text data set: sources, tokenizer, documents and tokens per split, and
    each curation step recorded in the folder (what it held before and after)."""
    from rich.table import Table

    from divlab.cli.common import curation_lines
    from divlab.io import read_json

    summary_path = Path(path) / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(
            f"{path} is not a divlab data set (no summary.json); make one with divlab data "
            "prepare, or curate a raw corpus directly (divlab curate dedup FILE --out OUT)"
        )
    info = read_json(summary_path)
    if info.get("kind") != "text":
        raise ConfigError(f"{path} is a {info.get('kind', 'GINC')} data set: use divlab ginc info")
    if as_json:
        print(json.dumps(info, indent=2))
        return
    sources, tokenizer = info.get("sources", {}), info.get("tokenizer", {})
    console.print(
        f"[bold]{path}[/]  text from {', '.join(sources.get('paths', [])) or '?'} (field "
        f"{sources.get('field', 'text')!r}); tokenizer: {tokenizer.get('source', '?')}, "
        f"{tokenizer.get('vocab_size', '?'):,} tokens"
    )
    table = Table(title="splits")
    for column in ("split", "docs", "tokens", "mean tokens/doc", "truncated"):
        table.add_column(column, justify="right")
    for name, split in info["splits"].items():
        table.add_row(
            name, f"{split['n_docs']:,}", f"{split['n_tokens']:,}",
            f"{split.get('mean_doc_tokens', 0):,.1f}", f"{split.get('n_truncated', 0):,}",
        )  # fmt: skip
    console.print(table)
    for line in curation_lines(info):
        console.print(line)
