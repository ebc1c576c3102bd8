"""``divlab measure diversity|alignment`` (also ``divlab diversity`` and ``divlab
alignment``, the spellings of the Task2Vec issue and the papers, registered in
:mod:`divlab.cli`): Task2Vec coefficients of data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from divlab.cli.common import (
    App,
    DataSplitOption,
    FieldOption,
    ProgressOption,
    QuietOption,
    console,
    out_option,
    show_progress,
)
from divlab.errors import ConfigError
from divlab.io import write_json
from divlab.specs import tiny_scale

if TYPE_CHECKING:  # annotations only
    from divlab.measure import DiversitySettings
    from divlab.measure.cache import EmbeddingCache

app = App(help="Task2Vec diversity and alignment coefficients of data sets.")


def _probe_for(data: Path, probe: str, device: str):
    """A probe, with a random-init probe sized to the data's vocabulary."""
    if probe.startswith("random:") and not (Path(data) / "summary.json").exists():
        raise ConfigError(
            f"a {probe} probe has no tokenizer to read the raw corpus {data} with; give a "
            "probe that has one (a checkpoint, a .gguf file, smollm2), measure the "
            "probe-free measures (--metric distinct-n,compression,vendi-ngram), or "
            "prepare the corpus first (divlab data prepare)"
        )
    # lazy: the library loads torch (see divlab.cli)
    from divlab.data.store import open_dataset
    from divlab.measure import load_probe

    vocab_size, special = None, None
    if probe.startswith("random:"):
        dataset = open_dataset(data)
        vocab_size, special = dataset.vocab_size, dataset.summary["tokenizer"]
    return load_probe(probe, vocab_size=vocab_size, special=special, device=device)


def _measure_settings(**fields) -> DiversitySettings:
    # lazy: the library loads torch (see divlab.cli)
    from divlab.measure import DiversitySettings

    if fields["estimator"] not in ("closed-form", "montecarlo"):
        raise ConfigError("--estimator must be closed-form or montecarlo")
    if fields["construction"] not in ("blocks", "documents"):
        raise ConfigError("--construction must be blocks or documents")
    return DiversitySettings(**tiny_scale(fields))  # DIVLAB_TINY: the README's test


ProbeOption = Annotated[
    str,
    typer.Option(help="Model folder / divlab checkpoint, .gguf file, 'smollm2', or random:PRESET."),
]
EstimatorOption = Annotated[str, typer.Option(help="closed-form or montecarlo.")]
BatchesOption = Annotated[int, typer.Option("--batches", help="Number of batches.")]
BatchSizeOption = Annotated[int, typer.Option(help="Sequences per batch.")]
SeqLenOption = Annotated[int, typer.Option(help="Tokens per sequence.")]
ConstructionOption = Annotated[
    str, typer.Option(help="blocks (consecutive) or documents (one doc per sequence).")
]
FinetuneOption = Annotated[int, typer.Option(help="Head fine-tune epochs (0: none).")]
CacheOption = Annotated[
    Path | None,
    typer.Option(help="Embedding cache folder: batches already embedded are not recomputed."),
]


def _cache(folder: Path | None) -> EmbeddingCache | None:
    # lazy: the library loads torch (see divlab.cli)
    from divlab.measure.cache import EmbeddingCache

    return EmbeddingCache(folder) if folder else None


@app.command("diversity")
def measure_diversity(
    data: Annotated[Path, typer.Argument(help="Data set folder or corpus file.")],
    probe: Annotated[
        str | None,
        typer.Option(
            help="Model folder / divlab checkpoint, .gguf file, 'smollm2', or random:PRESET "
            "(Task2Vec and the probe-embedding measures need one)."
        ),
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            help="Measures, comma-separated: task2vec, vendi-ngram, compression, distinct-n, "
            "self-bleu, vendi-embedding, embedding-dispersion; or all (those the given "
            "--probe / --embedder allow)."
        ),
    ] = "task2vec",
    sample: Annotated[
        int | None,
        typer.Option(
            help="Documents per Vendi / Self-BLEU sample (default min(256, half the "
            "documents)); compare sets only at one sample size."
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(help="Resamples behind each baseline's CI.")] = 50,
    embedder: Annotated[
        str | None,
        typer.Option(help="Text embeddings for the embedding measures: minilm (offline)."),
    ] = None,
    field: FieldOption = "text",
    split: DataSplitOption = None,
    estimator: EstimatorOption = "closed-form",
    n_batches: BatchesOption = 20,
    batch_size: BatchSizeOption = 64,
    seq_len: SeqLenOption = 128,
    construction: ConstructionOption = "blocks",
    finetune_epochs: FinetuneOption = 0,
    with_bounds: Annotated[
        bool, typer.Option("--bounds", help="Also the lower/upper bounds and normalised value.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the batch draw.")] = 0,
    cache: CacheOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[
        Path | None, out_option("Write the result as JSON here (default: none).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    progress: ProgressOption = None,
    quiet: QuietOption = False,
) -> None:
    """Diversity of a data set or corpus: the Task2Vec coefficient (mean distance between
    batches of the data; the default), or with --metric any of the measures beside it,
    each with its CI, settings and cost in seconds."""
    # lazy: the library loads torch (see divlab.cli)
    import numpy as np

    from divlab.measure import bounds, diversity_coefficient, normalized_diversity, probe_documents
    from divlab.measure.suite import measure_suite, parse_metrics

    names = parse_metrics(metric, probe is not None, embedder is not None)
    settings = _measure_settings(
        estimator=estimator, n_batches=n_batches, batch_size=batch_size, seq_len=seq_len,
        construction=construction, finetune_epochs=finetune_epochs, seed=seed,
    )  # fmt: skip
    if names != ["task2vec"]:
        the_probe = _probe_for(data, probe, device) if probe else None
        result = measure_suite(
            data, names, the_probe, settings, sample=sample, rounds=rounds, seed=seed,
            embedder=embedder, field=field, split=split, progress=show_progress(progress, quiet),
        )  # fmt: skip
        _print_suite(result, out, as_json)
        return
    the_probe = _probe_for(data, probe, device)
    prepared = probe_documents(data, the_probe, field=field, split=split)
    show = show_progress(progress, quiet)
    result = diversity_coefficient(prepared, the_probe, settings, _cache(cache), show)
    if with_bounds:  # bounds over the symbols the data actually uses
        symbols = np.unique(np.concatenate(prepared.documents))
        result["bounds"] = bounds(the_probe, symbols, settings, show)
        result["normalized"] = normalized_diversity(
            result["diversity"], result["bounds"]["lower"], result["bounds"]["upper"]
        )
    if out:
        write_json(out, result)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    b = result["batches"]
    low, high = result["ci95"]
    console.print(
        f"diversity {result['diversity']:.4f} (bootstrap 95% CI [{low:.4f}, {high:.4f}]; "
        f"paper-style +-{result['paper_ci95']:.4f}) of {result['data']}"
    )
    console.print(
        f"probe {result['probe']}, {settings.estimator}, {b['n_batches']} batches of "
        f"{b['batch_size']} x {b['seq_len']} ({b['construction']}: {b['tokens_per_batch']:,.0f} "
        f"tokens, {b['documents_per_batch']:.1f} documents per batch)"
    )
    if with_bounds:
        console.print(
            f"bounds: lower {result['bounds']['lower']:.4f}, upper "
            f"{result['bounds']['upper']:.4f}; normalised diversity {result['normalized']:.4f}"
        )


def _print_suite(result: dict, out: Path | None, as_json: bool) -> None:
    from rich.table import Table

    if out:
        write_json(out, result)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"{result['data']}: {result['documents']:,} documents")
    for column in ("measure", "value", "95% CI", "seconds"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, r in result["measures"].items():
        ci = r.get("ci")
        interval = "-" if not ci else f"[{ci[0]:.4g}, {ci[1]:.4g}]"
        table.add_row(name, f"{r['value']:.4g}", interval, f"{r['seconds']:.2f}")
    console.print(table)
    console.print(f"Vendi and Self-BLEU on samples of {result['sample']} documents")


@app.command("alignment")
def measure_alignment(
    data_a: Annotated[Path, typer.Argument(help="First data set folder or corpus.")],
    data_b: Annotated[Path, typer.Argument(help="Second data set folder or corpus.")],
    probe: ProbeOption,
    field: FieldOption = "text",
    split: DataSplitOption = None,
    estimator: EstimatorOption = "closed-form",
    n_batches: BatchesOption = 20,
    batch_size: BatchSizeOption = 64,
    seq_len: SeqLenOption = 128,
    construction: ConstructionOption = "blocks",
    finetune_epochs: FinetuneOption = 0,
    align2_repeats: Annotated[
        int, typer.Option(help="Large-batch pairs for align2 (> 1 gives its 95% CI).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the batch draws.")] = 0,
    cache: CacheOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[
        Path | None, out_option("Write the result as JSON here (default: none).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    progress: ProgressOption = None,
    quiet: QuietOption = False,
) -> None:
    """The Task2Vec alignment coefficient of two data sets (align1, align2 and the energy
    distance of their batch embeddings) and their overlap (n-gram Jaccard, unigram
    cross-entropy of the second under the first)."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.measure import alignment, probe_documents
    from divlab.measure.suite import overlap_of

    settings = _measure_settings(
        estimator=estimator, n_batches=n_batches, batch_size=batch_size, seq_len=seq_len,
        construction=construction, finetune_epochs=finetune_epochs, seed=seed,
        align2_repeats=align2_repeats,
    )  # fmt: skip
    the_probe = _probe_for(data_a, probe, device)
    prepared = [probe_documents(d, the_probe, field=field, split=split) for d in (data_a, data_b)]
    show = show_progress(progress, quiet)
    result = alignment(*prepared, the_probe, settings, _cache(cache), show)
    result["overlap"] = overlap_of(data_a, data_b, seed=seed, field=field, split=split)
    if out:
        write_json(out, result)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    low, high = result["align1_ci95"]
    align2 = f"{result['align2']:.4f}"
    if result["align2_ci95"]:
        align2 += " (95% CI [{:.4f}, {:.4f}])".format(*result["align2_ci95"])
    console.print(
        f"align1 {result['align1']:.4f} (95% CI [{low:.4f}, {high:.4f}]), align2 {align2}, "
        f"energy distance {result['energy_distance']:.4f}; probe {result['probe']}, "
        f"{settings.estimator}"
    )
    overlap = result["overlap"]
    jaccard = ", ".join(f"{n}-gram {v['value']:.3f}" for n, v in overlap["jaccard"].items())
    console.print(
        f"overlap: Jaccard {jaccard}; cross-entropy {overlap['cross_entropy']['value']:.3f} "
        "nats (second's unigrams under the first's)"
    )
