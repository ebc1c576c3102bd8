"""The ``divlab`` command. Thin: it parses, calls the library, prints.

User errors (:class:`divlab.errors.DivlabError`) become one red line and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import divlab
from divlab import experiments
from divlab.curate.dedup import dedup_dataset
from divlab.curate.minhash import PRESETS, settings_for
from divlab.curate.perplexity import perplexity_filter
from divlab.curate.semantic import semantic_dataset
from divlab.data.ginc.dataset import GincDataset, GincSpec, generate
from divlab.data.store import open_dataset
from divlab.data.text import prepare_text
from divlab.errors import ConfigError, DivlabError
from divlab.evaluate.checkpoint import evaluate_checkpoint
from divlab.experiments.executors import executor_for
from divlab.experiments.registry import kind_of_folder
from divlab.io import load_yaml, write_json
from divlab.measure import (
    DiversitySettings,
    alignment,
    bounds,
    diversity_coefficient,
    load_probe,
    normalized_diversity,
    probe_documents,
)
from divlab.measure.cache import EmbeddingCache
from divlab.train import TrainSpec, train
from divlab.train.merging import average_checkpoints

app = typer.Typer(
    help="divlab: controlled experiments on language-model training data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",  # a docstring's wrapped lines are one paragraph
)
ginc_app = typer.Typer(
    help="Synthetic data with known structure (GINC: mixtures of HMM concepts).",
    no_args_is_help=True,
)
app.add_typer(ginc_app, name="ginc")

console = Console()
error_console = Console(stderr=True)


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


def _set(tree: dict, dotted: str, value: Any) -> None:
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


@ginc_app.command("generate")
def ginc_generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (must not exist).")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML spec; flags override it.")
    ] = None,
    vocab_size: Annotated[int | None, typer.Option(help="Symbols incl. the delimiter.")] = None,
    n_values: Annotated[int | None, typer.Option(help="Values per family.")] = None,
    n_slots: Annotated[int | None, typer.Option(help="Slots per family (slot 0 = '/').")] = None,
    family_seed: Annotated[int | None, typer.Option(help="Seed that defines the family.")] = None,
    n_eval: Annotated[int | None, typer.Option(help="Size of the eval concept set C_test.")] = None,
    plan: Annotated[
        str | None, typer.Option(help="Concept set: eval | nested (k of C_test) | added.")
    ] = None,
    k: Annotated[int | None, typer.Option(help="Concepts taken from C_test.")] = None,
    k_added: Annotated[int | None, typer.Option(help="Concepts added from outside.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the documents and prompts.")] = None,
    train_docs: Annotated[int | None, typer.Option(help="Training documents.")] = None,
    train_tokens: Annotated[int | None, typer.Option(help="Or: training tokens.")] = None,
    doc_length: Annotated[int | None, typer.Option(help="Tokens per training doc.")] = None,
    eval_docs: Annotated[int | None, typer.Option(help="Eval documents.")] = None,
    eval_doc_length: Annotated[int | None, typer.Option(help="Tokens per eval doc.")] = None,
    noise_fraction: Annotated[
        float | None, typer.Option(help="Fraction of training docs with noise.")
    ] = None,
    noise_rate: Annotated[float | None, typer.Option(help="Per-token substitution rate.")] = None,
    duplicate_fraction: Annotated[
        float | None, typer.Option(help="Fraction of training docs that are copies.")
    ] = None,
    duplicate_edit_rate: Annotated[
        float | None, typer.Option(help="Substitution rate of a copy (0 = exact).")
    ] = None,
    zipf: Annotated[
        float | None, typer.Option(help="Zipf exponent of the training concept weights.")
    ] = None,
    prompts: Annotated[
        bool | None, typer.Option("--prompts/--no-prompts", help="Write ICL prompt sets.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate a GINC data set: documents with per-document ground truth, ICL prompts,
    oracle losses and a tokenizer."""

    tree: dict = load_yaml(config) if config else {}
    overrides = {
        "family.vocab_size": vocab_size,
        "family.n_values": n_values,
        "family.n_slots": n_slots,
        "family.seed": family_seed,
        "concepts.n_eval": n_eval,
        "concepts.plan": plan,
        "concepts.k": k,
        "concepts.k_added": k_added,
        "seed": seed,
        "splits.train.doc_length": doc_length,
        "splits.eval.n_docs": eval_docs,
        "splits.eval.doc_length": eval_doc_length,
        "splits.train.noise.fraction": noise_fraction,
        "splits.train.noise.rate": noise_rate,
        "splits.train.duplicates.fraction": duplicate_fraction,
        "splits.train.duplicates.edit_rate": duplicate_edit_rate,
    }
    if train_docs is not None and train_tokens is not None:
        raise ConfigError("give --train-docs or --train-tokens, not both")
    if zipf is not None:
        overrides["splits.train.weighting"] = "zipf"
        overrides["splits.train.zipf_exponent"] = zipf
    overrides["splits.train.n_docs"] = train_docs
    overrides["splits.train.n_tokens"] = train_tokens
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith("splits.") and "splits" not in tree:
            tree["splits"] = GincSpec().model_dump()["splits"]  # start from the defaults
        _set(tree, key, value)
    train = (tree.get("splits") or {}).get("train")
    if isinstance(train, dict):  # a size given on the command line replaces the config's
        if train_docs is not None:
            train.pop("n_tokens", None)
        if train_tokens is not None:
            train.pop("n_docs", None)
    if prompts is False:
        tree["prompts"] = None
    spec = GincSpec.from_dict(tree, source=f"config {config}" if config else "options")
    path = generate(spec, out, overwrite=overwrite, show_progress=not quiet)
    console.print(f"[green]wrote[/] {path}")


@ginc_app.command("info")
def ginc_info(
    path: Annotated[Path, typer.Argument(help="A folder written by `divlab ginc generate`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a GINC data set: counts, concepts, oracle loss, ground-truth diversity, knobs."""

    info = GincDataset(path).info()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    family = info["family"]
    console.print(
        f"[bold]{info['path']}[/]  GINC family: vocab {family['vocab_size']}, "
        f"{family['n_values']} values x {family['n_slots']} slots, "
        f"vic {family['value_identity_coeff']}, T_trans {family['transition_temp']}, "
        f"T_start {family['start_temp']}, seed {family['seed']}"
    )
    ids = info["concepts"]["ids"]
    shown = ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")
    console.print(f"concepts ({info['concepts']['plan']}): {len(ids)} [{shown}]")

    table = Table(title="splits")
    for column in ("split", "docs", "tokens", "weights", "noisy docs", "duplicates", "oracle nll"):
        table.add_column(column, justify="right")
    for name, split in info["splits"].items():
        weights = split["weighting"]
        if split["zipf_exponent"] is not None:
            weights += f" {split['zipf_exponent']:g}"
        noise, duplicates = split["noise"], split["duplicates"]
        table.add_row(
            name,
            f"{split['n_docs']:,} x {split['doc_length']}",
            f"{split['n_tokens']:,}",
            weights,
            f"{noise['docs']:,} ({noise['tokens']:,} tok)",
            f"{duplicates['docs']:,}",
            f"{split['oracle_nll']:.4f}" if split["oracle_nll"] is not None else "-",
        )
    console.print(table)
    for name, split in info["splits"].items():
        bayes = split["bayes_mixture"]
        if bayes:
            console.print(
                f"{name}: Bayes-optimal mixture {bayes['bayes_mixture_nll']:.4f} nats/token vs "
                f"oracle {bayes['oracle_nll']:.4f} on its first {bayes['docs']} docs"
            )

    truth = Table(title="ground-truth diversity")
    for column in (
        "split",
        "concepts",
        "H(weights)",
        "eff. concepts",
        "mean Hellinger",
        "expected Hellinger",
    ):
        truth.add_column(column, justify="right")
    for name, split in info["splits"].items():
        g = split["ground_truth_diversity"]
        truth.add_row(
            name,
            str(g["n_concepts"]),
            f"{g['weight_entropy']:.4f}",
            f"{g['effective_concepts']:.2f}",
            f"{g['mean_pairwise_hellinger']:.4f}",
            f"{g['expected_hellinger']:.4f}",
        )
    console.print(truth)
    if info.get("prompts"):
        counts = ", ".join(f"{k}: {v:,}" for k, v in info["prompts"]["counts"].items())
        console.print(
            f"ICL prompts: {counts} (n_examples {info['prompts']['n_examples']}, "
            f"lengths {info['prompts']['example_lengths']})"
        )


data_app = typer.Typer(help="Real-text corpora as divlab data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
def data_prepare(
    inputs: Annotated[
        list[Path], typer.Argument(help="JSONL, Parquet, .txt, fortune files or HF dataset dirs.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="Tokenizer folder, tokenizer.json or GPT-2 BPE files (folder)."),
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option(help="Train a byte-level BPE of this size instead.")
    ] = None,
    field: Annotated[str, typer.Option(help="Text field of JSONL/Parquet/HF inputs.")] = "text",
    by: Annotated[
        str | None, typer.Option(help="Split .txt files by line, paragraph or fortune.")
    ] = None,
    eval_fraction: Annotated[float | None, typer.Option(help="Share of docs for eval.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/eval split.")] = 0,
    max_doc_tokens: Annotated[int | None, typer.Option(help="Truncate longer docs.")] = None,
    limit: Annotated[int | None, typer.Option(help="Read at most this many docs.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Tokenize a text corpus into a data set that `divlab train` and the measures read."""

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
        limit=limit,
        overwrite=overwrite,
    )
    info = open_dataset(path).info()
    splits = ", ".join(
        f"{name}: {s['n_docs']:,} docs, {s['n_tokens']:,} tokens"
        for name, s in info["splits"].items()
    )
    console.print(f"[green]wrote[/] {path} (vocab {info['tokenizer']['vocab_size']:,}; {splits})")


@app.command("train")
def train_command(
    data: Annotated[
        Path | None, typer.Option(help="Data set folder (GINC or prepared text).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.")] = None,
    model: Annotated[str | None, typer.Option(help="Model preset (tiny ... 125m).")] = None,
    architecture: Annotated[str | None, typer.Option(help="llama or gpt2.")] = None,
    tokens: Annotated[int | None, typer.Option(help="Token budget of the run.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML TrainSpec; flags override it.")
    ] = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    batch_tokens: Annotated[int | None, typer.Option(help="Tokens per optimizer step.")] = None,
    micro_batch_size: Annotated[
        int | None, typer.Option(help="Sequences per forward pass (accumulation).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    schedule: Annotated[str | None, typer.Option(help="cosine, linear or constant.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of init, data order, dropout.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Eval every N tokens.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N tokens.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model (CUDA).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Start over in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a decoder on a data set for a fixed token budget (resumes a killed run in
    --out; returns at once if the run there is finished)."""

    tree: dict = load_yaml(config) if config else {}
    overrides = {
        "data": str(data) if data else None,
        "model.preset": model,
        "model.architecture": architecture,
        "token_budget": tokens,
        "seq_len": seq_len,
        "batch_tokens": batch_tokens,
        "micro_batch_size": micro_batch_size,
        "optimizer.lr": lr,
        "schedule.kind": schedule,
        "seed": seed,
        "eval_every_tokens": eval_every,
        "checkpoint_every_tokens": checkpoint_every,
        "device": device,
        "compile": compile_model or None,
    }
    for key, value in overrides.items():
        if value is not None:
            _set(tree, key, value)
    if out is None:
        raise ConfigError("--out is required: the folder the run writes to")
    for needed, flag in (("data", "--data"), ("token_budget", "--tokens")):
        if needed not in tree:
            raise ConfigError(f"{flag} is required (or set {needed} in --config)")
    spec = TrainSpec.from_dict(tree, source=f"config {config}" if config else "options")
    summary = train(spec, out, overwrite=overwrite, quiet=quiet)
    table = Table(title=f"run {out}")
    table.add_column("", justify="left")
    table.add_column("value", justify="right")
    parameters = summary["parameters"]
    final = summary.get("final_eval") or {}
    rows = [
        (
            "parameters (non-embedding)",
            f"{parameters['total']:,} ({parameters['non_embedding']:,})",
        ),
        ("tokens", f"{summary['tokens_seen']:,}"),
        ("FLOPs (6ND, total N)", f"{summary['flops_total']:.3e}"),
        ("final train loss", f"{summary['final_train_loss']:.4f}"),
        ("eval loss", f"{final['loss']:.4f}" if "loss" in final else "-"),
        ("gap to oracle", f"{final['gap']:.4f}" if "gap" in final else "-"),
        ("prequential bits/token", f"{summary['prequential_bits_per_token']:.4f}"),
        ("tokens/s", f"{summary['tokens_per_second']:,.0f} ({summary['device']})"),
    ]
    if summary.get("mfu") is not None:
        rows.append(("MFU", f"{summary['mfu']:.1%}"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"checkpoint: {Path(out) / 'model'}")


@app.command("evaluate")
def evaluate_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder (e.g. RUN/model).")],
    data: Annotated[Path, typer.Option(help="Data set folder to evaluate on.")],
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "eval",
    limit: Annotated[int, typer.Option(help="At most this many eval documents.")] = 64,
    prefix: Annotated[int, typer.Option(help="Prefix tokens for continuations.")] = 32,
    length: Annotated[int, typer.Option(help="Continuation tokens.")] = 16,
    icl: Annotated[bool, typer.Option("--icl/--no-icl", help="GINC ICL accuracy.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Loss, perplexity and gap to the oracle; continuation metrics; ICL exact match."""

    result = evaluate_checkpoint(checkpoint, data, split, limit, prefix, length, icl, device)
    if out:
        write_json(out, result)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    loss = result["loss"]
    line = f"loss {loss['loss']:.4f} nats/token, perplexity {loss['perplexity']:.3f}"
    if "gap" in loss:
        line += f", oracle {loss['oracle_loss']:.4f}, gap {loss['gap']:.4f}"
    console.print(f"[bold]{checkpoint}[/] on {data} ({split}, {loss['n_docs']} docs): {line}")
    c = result["continuation"]
    for key in ("vs_truth", "vs_oracle"):
        if key in c:
            m = c[key]
            console.print(
                f"continuation {key.replace('_', ' ')} ({c['prefix']} + {c['length']} tokens): "
                f"edit distance {m['edit_distance']:.3f}, token match {m['token_match']:.3f}, "
                f"exact match {m['exact_match']:.3f}"
            )
    if result.get("icl"):
        rows = result["icl"]
        counts = sorted({r["n_examples"] for r in rows})
        table = Table(title="ICL exact match by number of in-context examples (--json: CIs)")
        table.add_column("kind, example length")
        for n in counts:
            table.add_column(f"n={n}", justify="right")
        for kind, length in sorted({(r["kind"], r["example_length"]) for r in rows}):
            cells = {r["n_examples"]: r["accuracy"] for r in rows
                     if r["kind"] == kind and r["example_length"] == length}  # fmt: skip
            table.add_row(f"{kind} L={length}", *(f"{cells[n]:.2f}" if n in cells else "-"
                                                  for n in counts))  # fmt: skip
        console.print(table)


@app.command("merge")
def merge_command(
    checkpoints: Annotated[
        list[Path], typer.Argument(help="Checkpoint folders of one architecture (RUN/model).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The merged checkpoint's folder.")],
    weights: Annotated[
        str | None,
        typer.Option(help="Positive weights, one per checkpoint, e.g. 1,2 (default: uniform)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Average checkpoints' parameters into one checkpoint (float tensors averaged, the
    rest must agree): the merge of divlab's data-ablation experiments, as a normal model."""

    parsed = None
    if weights is not None:
        try:
            parsed = [float(w) for w in weights.split(",")]
        except ValueError:
            raise ConfigError(
                f"--weights {weights!r}: write comma-separated numbers, e.g. 1,2"
            ) from None
    path = average_checkpoints(checkpoints, out, parsed, overwrite=overwrite)
    shown = weights or "uniform"
    console.print(f"[green]wrote[/] {path}: average of {len(checkpoints)} checkpoints ({shown})")


measure_app = typer.Typer(
    help="Task2Vec diversity and alignment coefficients of data sets.", no_args_is_help=True
)
app.add_typer(measure_app, name="measure")


def _probe_for(data: Path, probe: str, device: str):
    """A probe, with a random-init probe sized to the data's vocabulary."""

    vocab_size, special = None, None
    if probe.startswith("random:"):
        dataset = open_dataset(data)
        vocab_size, special = dataset.vocab_size, dataset.summary["tokenizer"]
    return load_probe(probe, vocab_size=vocab_size, special=special, device=device)


def _measure_settings(**fields):

    if fields["estimator"] not in ("closed-form", "montecarlo"):
        raise ConfigError("--estimator must be closed-form or montecarlo")
    if fields["construction"] not in ("blocks", "documents"):
        raise ConfigError("--construction must be blocks or documents")
    return DiversitySettings(**fields)


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
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Progress bars on stderr (default: when stderr is a terminal).",
        show_default=False,
    ),
]


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def _cache(folder: Path | None):

    return EmbeddingCache(folder) if folder else None


@measure_app.command("diversity")
def measure_diversity(
    data: Annotated[Path, typer.Argument(help="Data set folder or corpus file.")],
    probe: ProbeOption,
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
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    progress: ProgressOption = None,
) -> None:
    """The Task2Vec diversity coefficient: mean distance between batches of the data."""
    import numpy as np

    settings = _measure_settings(
        estimator=estimator, n_batches=n_batches, batch_size=batch_size, seq_len=seq_len,
        construction=construction, finetune_epochs=finetune_epochs, seed=seed,
    )  # fmt: skip
    the_probe = _probe_for(data, probe, device)
    prepared = probe_documents(data, the_probe)
    show = _show_progress(progress)
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


@measure_app.command("alignment")
def measure_alignment(
    data_a: Annotated[Path, typer.Argument(help="First data set folder or corpus.")],
    data_b: Annotated[Path, typer.Argument(help="Second data set folder or corpus.")],
    probe: ProbeOption,
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
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    progress: ProgressOption = None,
) -> None:
    """The Task2Vec alignment coefficient of two data sets (align1 and align2)."""

    settings = _measure_settings(
        estimator=estimator, n_batches=n_batches, batch_size=batch_size, seq_len=seq_len,
        construction=construction, finetune_epochs=finetune_epochs, seed=seed,
        align2_repeats=align2_repeats,
    )  # fmt: skip
    the_probe = _probe_for(data_a, probe, device)
    result = alignment(data_a, data_b, the_probe, settings, _cache(cache), _show_progress(progress))
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
        f"align1 {result['align1']:.4f} (95% CI [{low:.4f}, {high:.4f}]), align2 {align2}; "
        f"probe {result['probe']}, {settings.estimator}"
    )


# the spellings of the Task2Vec issue and the papers: `divlab diversity`, `divlab alignment`
app.command("diversity", help="Same as `divlab measure diversity`.")(measure_diversity)
app.command("alignment", help="Same as `divlab measure alignment`.")(measure_alignment)


# ---- experiments ---------------------------------------------------------------------
experiment_app = typer.Typer(
    help="Whole experiments from one YAML spec (Beyond Scale II plans).", no_args_is_help=True
)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("run")
def experiment_run(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML), or its folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Experiment folder (default: runs/NAME).")
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="local or ray (overrides the spec's executor.kind).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Parallel runs (default: the spec's executor.workers).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="ray: an existing cluster.")] = None,
    report: Annotated[bool, typer.Option(help="Build the HTML report at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run (or resume) an experiment of any kind (diversity, collapse, merging, mixtures,
    curriculum, scaling): its data, every run, the results tables and the report.
    Relaunching skips what is finished."""
    loaded = experiments.load(spec)  # validates the whole spec before any compute
    folder = spec if spec.is_dir() else (out or Path("runs") / loaded.name)
    chosen = executor_for(loaded, executor, workers, address)
    result = experiments.run(loaded, folder, executor=chosen, progress=not quiet, report=report)
    console.print(f"[green]done[/] {loaded.kind} experiment in {result['out']}")
    if "runs" in result and "finished" in result:
        console.print(
            f"{result['finished']} of {result['runs']} runs finished"
            + (f" ({result['ran_now']} now)" if "ran_now" in result else "")
        )
    if "report" in result:
        console.print(f"report: {result['report']}")


@experiment_app.command("validate")
def experiment_validate(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
) -> None:
    """Check a spec (fields, plan, fairness) and print its plan in words; no compute."""
    loaded = experiments.load_spec(spec)
    for line in experiments.get(loaded.kind).describe(loaded):
        console.print(line, highlight=False)


@app.command("results")
def results_command(
    folder: Annotated[Path, typer.Argument(help="Experiment folder.")],
) -> None:
    """Rebuild an experiment's results tables from its run folders (pandas/DuckDB)."""
    kind = kind_of_folder(folder)
    if kind.collect is None:
        console.print(
            f"a {kind.name} experiment writes its tables as it runs: "
            + ", ".join(str(folder / t) for t in kind.tables)
        )
        return
    tables = kind.collect(folder)
    console.print(f"[green]wrote[/] {', '.join(f'{k}: {v}' for k, v in tables.items())}")


@app.command("report")
def report_command(
    folder: Annotated[Path, typer.Argument(help="Experiment folder.")],
) -> None:
    """Build the HTML report (figures, statistics) of an experiment folder of any kind."""
    console.print(f"[green]wrote[/] {experiments.build_report(folder)}")


# ---- curation ------------------------------------------------------------------------
curate_app = typer.Typer(help="Curate data sets into new folders (dedup).", no_args_is_help=True)
app.add_typer(curate_app, name="curate")


@curate_app.command("dedup")
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


@curate_app.command("ppl-filter")
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


@curate_app.command("semdedup")
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
) -> None:
    """SemDeDup: drop semantic near-duplicates within embedding clusters."""

    report = semantic_dataset(
        data, out, "semdedup", embedder, clusters, eps, ratio, split=split, overwrite=overwrite
    )
    _print_curation(out, report)


@curate_app.command("d4")
def curate_d4(
    data: Annotated[Path, typer.Argument(help="Data set folder (GINC or prepared text).")],
    out: Annotated[Path, typer.Argument(help="New data set folder (the input is not touched).")],
    embedder: EmbedderOption = "minilm",
    clusters: Annotated[int, typer.Option(help="Spherical k-means clusters.")] = 20,
    r_dedup: Annotated[float, typer.Option(help="Fraction kept by the SemDeDup step.")] = 0.75,
    r_proto: Annotated[float, typer.Option(help="Fraction of the data finally kept.")] = 0.5,
    split: Annotated[str, typer.Option(help="The split to curate.")] = "train",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """D4: SemDeDup, re-cluster, then drop the most prototypical documents."""

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
    )
    _print_curation(out, report)


def _print_curation(out: Path, report: dict) -> None:
    console.print(
        f"[green]wrote[/] {out}: kept {report['kept']:,} of {report['documents_in']:,} "
        f"documents, removed {report['removed']:,} ({report['method']}); details in "
        f"{out}/curation/"
    )


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


if __name__ == "__main__":
    main()
