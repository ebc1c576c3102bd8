"""``divlab data prepare``: real-text corpora as divlab data sets."""

from __future__ import annotations

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
