"""``divlab curate dedup|ppl-filter|semdedup|d4``: curated copies of data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from divlab.cli.common import ProgressOption, console, show_progress
from divlab.errors import ConfigError

app = typer.Typer(help="Curate data sets into new folders (dedup).", no_args_is_help=True)


@app.command("dedup")
def curate_dedup(
    data: Annotated[Path, typer.Argument(help="Data set folder (GINC or prepared text).")],
    out: Annotated[Path, typer.Argument(help="New data set folder (the input is not touched).")],
    method: Annotated[str, typer.Option(help="exact or near (MinHash-LSH).")] = "near",
    preset: Annotated[
        str | None, typer.Option(help="slimpajama (char 13-grams) or datatrove (word 5-grams).")
    ] = None,
    shingle: Annotated[str | None, typer.Option(help="char, word or token.")] = None,
    n: Annotated[int | None, typer.Option(help="Shingle size.")] = None,
    num_perm: Annotated[int, typer.Option(help="MinHash permutations.")] = 128,
    threshold: Annotated[float, typer.Option(help="Jaccard threshold.")] = 0.8,
    verify: Annotated[bool, typer.Option(help="Check candidate pairs by exact Jaccard.")] = False,
    keep: Annotated[str, typer.Option(help="first or longest, per duplicate cluster.")] = "first",
    split: Annotated[str, typer.Option(help="The split to deduplicate.")] = "train",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Remove exact or near-duplicate documents; print what was kept and removed."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.curate.dedup import dedup_dataset
    from divlab.curate.minhash import PRESETS, settings_for
    from divlab.data.store import open_dataset

    settings = None
    if method == "near":
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
            settings = PRESETS[preset]
        else:
            is_text = open_dataset(data).summary.get("kind") == "text"
            settings = settings_for(is_text, shingle, n, num_perm, threshold)
    report = dedup_dataset(data, out, method, settings, split, verify, keep, overwrite)
    console.print(
        f"[green]wrote[/] {out}: kept {report['kept']:,} of {report['documents_in']:,} "
        f"documents, removed {report['removed']:,} in {report['duplicate_clusters']:,} "
        f"duplicate clusters ({method}); details in {out}/curation/"
    )


@app.command("ppl-filter")
def curate_ppl_filter(
    data: Annotated[Path, typer.Argument(help="Data set folder (GINC or prepared text).")],
    out: Annotated[Path, typer.Argument(help="New data set folder (the input is not touched).")],
    model: Annotated[Path, typer.Option(help="Scoring model: a divlab checkpoint or HF folder.")],
    keep_low: Annotated[float, typer.Option(help="Lower end of the kept band.")] = 0.0,
    keep_high: Annotated[float, typer.Option(help="Upper end of the kept band.")] = 0.9,
    absolute: Annotated[
        bool, typer.Option(help="The band is in perplexity, not in quantiles.")
    ] = False,
    split: Annotated[str, typer.Option(help="The split to filter.")] = "train",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Keep the documents whose perplexity under MODEL lies in a band (quantiles by
    default: 0.0..0.9 drops the 10 % least likely)."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.curate.perplexity import perplexity_filter

    report = perplexity_filter(
        data, out, model, keep_low, keep_high, absolute, split, device, overwrite
    )
    low, high = report["settings"]["band"]
    console.print(
        f"[green]wrote[/] {out}: kept {report['kept']:,} of {report['documents_in']:,} "
        f"documents with perplexity in [{low:.3g}, {high:.3g}], removed {report['removed']:,}; "
        f"details in {out}/curation/"
    )


EmbedderOption = Annotated[
    str,
    typer.Option(help="Text: a sentence-transformers folder or 'minilm'; GINC: a checkpoint."),
]


@app.command("semdedup")
def curate_semdedup(
    data: Annotated[Path, typer.Argument(help="Data set folder (GINC or prepared text).")],
    out: Annotated[Path, typer.Argument(help="New data set folder (the input is not touched).")],
    embedder: EmbedderOption = "minilm",
    clusters: Annotated[int, typer.Option(help="Spherical k-means clusters.")] = 20,
    eps: Annotated[
        float | None, typer.Option(help="Remove points with similarity > 1 - eps.")
    ] = None,
    ratio: Annotated[float | None, typer.Option(help="Or: keep this fraction.")] = None,
    split: Annotated[str, typer.Option(help="The split to curate.")] = "train",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    progress: ProgressOption = None,
) -> None:
    """SemDeDup: drop semantic near-duplicates within embedding clusters."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.curate.semantic import semantic_dataset

    report = semantic_dataset(
        data, out, "semdedup", embedder, clusters, eps, ratio, split=split,
        overwrite=overwrite, progress=show_progress(progress),
    )  # fmt: skip
    _print_curation(out, report)


@app.command("d4")
def curate_d4(
    data: Annotated[Path, typer.Argument(help="Data set folder (GINC or prepared text).")],
    out: Annotated[Path, typer.Argument(help="New data set folder (the input is not touched).")],
    embedder: EmbedderOption = "minilm",
    clusters: Annotated[int, typer.Option(help="Spherical k-means clusters.")] = 20,
    r_dedup: Annotated[float, typer.Option(help="Fraction kept by the SemDeDup step.")] = 0.75,
    r_proto: Annotated[float, typer.Option(help="Fraction of the data finally kept.")] = 0.5,
    split: Annotated[str, typer.Option(help="The split to curate.")] = "train",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    progress: ProgressOption = None,
) -> None:
    """D4: SemDeDup, re-cluster, then drop the most prototypical documents."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.curate.semantic import semantic_dataset

    report = semantic_dataset(
        data,
        out,
        "d4",
        embedder,
        clusters,
        r_dedup=r_dedup,
        r_proto=r_proto,
        split=split,
        overwrite=overwrite,
        progress=show_progress(progress),
    )
    _print_curation(out, report)


def _print_curation(out: Path, report: dict) -> None:
    console.print(
        f"[green]wrote[/] {out}: kept {report['kept']:,} of {report['documents_in']:,} "
        f"documents, removed {report['removed']:,} ({report['method']}); details in "
        f"{out}/curation/"
    )
