"""``divlab curate dedup|ppl-filter|semdedup|d4``: curated copies of data sets and corpora.

INPUT is a divlab data set folder (the curated copy is a data set folder, its ground
truth recomputed) or a raw corpus: JSONL (.gz, .zst), Parquet, a folder of them or a
Hugging Face ``save_to_disk`` folder (the curated copy has the same format and fields;
:mod:`divlab.curate.corpus`). Either way ``--out`` gets ``curation/removed.parquet`` and
``curation/report.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from divlab.cli.common import (
    App,
    DataSplitOption,
    FieldOption,
    ProgressOption,
    console,
    deprecated,
    deprecated_option,
    renamed,
    show_progress,
)
from divlab.errors import ConfigError

app = App(help="Curate data sets and raw corpora into new folders (dedup, filters).")

InputArgument = Annotated[
    list[Path],
    typer.Argument(
        help="A divlab data set folder, or a raw corpus: .jsonl (.gz, .zst) or .parquet "
        "files, a folder of them, or a Hugging Face save_to_disk folder."
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="New folder (the input is not touched). Required.", show_default=False
    ),
]
SkipBadOption = Annotated[
    bool,
    typer.Option(
        "--skip-bad",
        help="Raw corpora: drop bad records (not JSON, not UTF-8, no text field) and list them "
        "in removed.parquet, instead of stopping.",
    ),
]
OverwriteOption = Annotated[bool, typer.Option(help="Replace --out if it exists.")]


def _source(inputs: list[Path], out: Path | None) -> tuple[list[Path], Path, bool]:
    """(inputs, out, whether the input is a divlab data set). ``curate X OUT`` (OUT as a
    second argument) is the old spelling of ``--out OUT``: it works for one release."""
    from divlab.curate.records import is_data_set

    if out is None:
        last = inputs[-1] if len(inputs) >= 2 else None
        if last is None:
            raise ConfigError("give the output folder: --out OUT")
        # the old spelling: after a data set (one is curated at a time) the second argument
        # can only be OUT; after corpus files, only a folder that does not exist yet (or is
        # empty) is taken for it, so --overwrite is never applied to an input
        fresh = not last.exists() or (last.is_dir() and not any(last.iterdir()))
        if not (len(inputs) == 2 and is_data_set(inputs[0])) and not fresh:
            raise ConfigError(
                f"{last} exists, so it is read as an input; give the output folder as --out "
                "OUT (with --overwrite to replace an existing one)"
            )
        deprecated("the output folder as a second argument", "--out OUT")
        inputs, out = inputs[:-1], last
    data_set = len(inputs) == 1 and is_data_set(inputs[0])
    if not data_set and any(is_data_set(p) for p in inputs):
        raise ConfigError("curate one divlab data set at a time (or raw corpus files)")
    return inputs, out, data_set


@app.command("dedup")
def curate_dedup(
    inputs: InputArgument,
    out: OutOption = None,
    method: Annotated[str, typer.Option(help="exact or near (MinHash-LSH).")] = "near",
    minhash_preset: Annotated[
        str | None,
        typer.Option(
            help="slimpajama (char 13-grams, 9 x 13 bands) or datatrove (word 5-grams, 14 x 8); "
            "default: neither, the settings below.",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[str | None, deprecated_option("--preset", "--minhash-preset")] = None,
    shingle: Annotated[
        str | None,
        typer.Option(help="char, word or token (default: char for text, token for GINC)."),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option(help="Shingle size (default: 13 for char, 5 for word, 3 for token)."),
    ] = None,
    num_perm: Annotated[int, typer.Option(help="MinHash permutations.")] = 128,
    threshold: Annotated[float, typer.Option(help="Jaccard threshold.")] = 0.8,
    verify: Annotated[bool, typer.Option(help="Check candidate pairs by exact Jaccard.")] = False,
    keep: Annotated[str, typer.Option(help="first or longest, per duplicate cluster.")] = "first",
    split: DataSplitOption = None,
    field: FieldOption = "text",
    workers: Annotated[
        int, typer.Option(help="Raw corpora: processes that sign batches in parallel.")
    ] = 1,
    executor: Annotated[str, typer.Option(help="Raw corpora: local or ray.")] = "local",
    skip_bad: SkipBadOption = False,
    overwrite: OverwriteOption = False,
    progress: ProgressOption = None,
) -> None:
    """Remove exact or near-duplicate documents; print what was kept and removed.

    A raw corpus streams in bounded memory (signatures spilled per batch; a killed run
    resumes at the first unsigned batch) and keeps the same documents whatever the number
    of files, workers or the executor."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.curate.minhash import PRESETS, settings_for

    inputs, out, data_set = _source(inputs, out)
    # --preset names a model preset everywhere else (train)
    preset = renamed(minhash_preset, preset, "--minhash-preset", "--preset")
    settings = None
    if method == "near":
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
            settings = PRESETS[preset]
        else:
            is_text = not data_set or _is_text(inputs[0])
            settings = settings_for(is_text, shingle, n, num_perm, threshold)
    if data_set:
        from divlab.curate.dedup import dedup_dataset

        report = dedup_dataset(
            inputs[0], out, method, settings, split, verify, keep, overwrite,
            show_progress(progress),
        )  # fmt: skip
    else:
        from divlab.curate.corpus import dedup_corpus

        report = dedup_corpus(
            inputs, out, method, settings, field, keep, verify, workers, executor,
            skip_bad=skip_bad, overwrite=overwrite, progress=show_progress(progress),
        )  # fmt: skip
    _print_curation(out, report, f"in {report['duplicate_clusters']:,} duplicate clusters")


def _is_text(data: Path) -> bool:
    from divlab.data.store import open_dataset

    return open_dataset(data).summary.get("kind") == "text"


@app.command("ppl-filter")
def curate_ppl_filter(
    inputs: InputArgument,
    out: OutOption = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Scoring model: a divlab checkpoint or HF folder (its tokenizer tokenizes a "
            "raw corpus). Required.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[Path | None, deprecated_option("--model", "--checkpoint")] = None,
    keep_low: Annotated[float, typer.Option(help="Lower end of the kept band.")] = 0.0,
    keep_high: Annotated[float, typer.Option(help="Upper end of the kept band.")] = 0.9,
    absolute: Annotated[
        bool, typer.Option(help="The band is in perplexity, not in quantiles.")
    ] = False,
    split: DataSplitOption = None,
    field: FieldOption = "text",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    skip_bad: SkipBadOption = False,
    overwrite: OverwriteOption = False,
    progress: ProgressOption = None,
) -> None:
    """Keep the documents whose perplexity under --checkpoint lies in a band (quantiles by
    default: 0.0..0.9 drops the 10 % least likely)."""
    inputs, out, data_set = _source(inputs, out)
    checkpoint = renamed(checkpoint, model, "--checkpoint", "--model")
    if checkpoint is None:
        raise ConfigError("give the scoring model: --checkpoint DIR")
    # lazy: the library loads torch (see divlab.cli)
    from divlab.curate.perplexity import perplexity_corpus, perplexity_filter

    if data_set:
        report = perplexity_filter(
            inputs[0], out, checkpoint, keep_low, keep_high, absolute, split, device, overwrite,
            show_progress(progress),
        )  # fmt: skip
    else:
        report = perplexity_corpus(
            inputs, out, checkpoint, keep_low, keep_high, absolute, field, device, skip_bad,
            overwrite, show_progress(progress),
        )  # fmt: skip
    low, high = report["settings"]["band"]
    _print_curation(out, report, f"outside perplexity [{low:.3g}, {high:.3g}]")


EmbedderOption = Annotated[
    str,
    typer.Option(help="Text: a sentence-transformers folder or 'minilm'; GINC: a checkpoint."),
]
ClustersOption = Annotated[int, typer.Option(help="Spherical k-means clusters.")]


def _semantic(
    inputs: list[Path],
    out: Path | None,
    method: str,
    embedder: str,
    clusters: int,
    field: str,
    split: str | None,
    skip_bad: bool,
    overwrite: bool,
    progress: bool | None,
    **settings,
) -> None:
    inputs, out, data_set = _source(inputs, out)
    # lazy: the library loads torch (see divlab.cli)
    from divlab.curate.semantic import semantic_corpus, semantic_dataset

    if data_set:
        report = semantic_dataset(
            inputs[0], out, method, embedder, clusters, split=split, overwrite=overwrite,
            progress=show_progress(progress), **settings,
        )  # fmt: skip
    else:
        report = semantic_corpus(
            inputs, out, method, embedder, clusters, text_field=field, skip_bad=skip_bad,
            overwrite=overwrite, progress=show_progress(progress), **settings,
        )  # fmt: skip
    _print_curation(out, report, f"({method})")


@app.command("semdedup")
def curate_semdedup(
    inputs: InputArgument,
    out: OutOption = None,
    embedder: EmbedderOption = "minilm",
    clusters: ClustersOption = 20,
    eps: Annotated[
        float | None,
        typer.Option(help="Remove points with similarity > 1 - eps (default 0.05 unless --ratio)."),
    ] = None,
    ratio: Annotated[float | None, typer.Option(help="Or: keep this fraction.")] = None,
    split: DataSplitOption = None,
    field: FieldOption = "text",
    skip_bad: SkipBadOption = False,
    overwrite: OverwriteOption = False,
    progress: ProgressOption = None,
) -> None:
    """SemDeDup: drop semantic near-duplicates within embedding clusters."""
    _semantic(inputs, out, "semdedup", embedder, clusters, field, split, skip_bad, overwrite,
              progress, eps=eps, ratio=ratio)  # fmt: skip


@app.command("d4")
def curate_d4(
    inputs: InputArgument,
    out: OutOption = None,
    embedder: EmbedderOption = "minilm",
    clusters: ClustersOption = 20,
    r_dedup: Annotated[float, typer.Option(help="Fraction kept by the SemDeDup step.")] = 0.75,
    r_proto: Annotated[float, typer.Option(help="Fraction of the data finally kept.")] = 0.5,
    split: DataSplitOption = None,
    field: FieldOption = "text",
    skip_bad: SkipBadOption = False,
    overwrite: OverwriteOption = False,
    progress: ProgressOption = None,
) -> None:
    """D4: SemDeDup, re-cluster, then drop the most prototypical documents."""
    _semantic(inputs, out, "d4", embedder, clusters, field, split, skip_bad, overwrite,
              progress, r_dedup=r_dedup, r_proto=r_proto)  # fmt: skip


def _print_curation(out: Path, report: dict, how: str) -> None:
    bad = f", {report['bad_records']:,} bad records" if report.get("bad_records") else ""
    console.print(
        f"[green]wrote[/] {out}: kept {report['kept']:,} of {report['documents_in']:,} "
        f"documents, removed {report['removed']:,} {how}{bad}; details in {out}/curation/"
    )
