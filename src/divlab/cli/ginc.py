"""``divlab ginc generate`` and ``divlab ginc info``: synthetic data with known structure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from divlab.cli.common import (
    App,
    ProgressOption,
    QuietOption,
    SpecField,
    console,
    curation_lines,
    out_option,
    set_field,
    show_progress,
    spec_overrides,
)
from divlab.errors import ConfigError
from divlab.io import load_yaml

app = App(help="Synthetic data with known structure (GINC: mixtures of HMM concepts).")


@app.command("generate")
def ginc_generate(
    out: Annotated[Path, out_option("Output folder (must not exist, or --overwrite).")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML spec; flags override it. A flag left out takes the config's value, "
            "else the default it names.",
        ),
    ] = None,
    vocab_size: Annotated[
        int | None,
        SpecField("family.vocab_size"),
        typer.Option(help="Symbols incl. the delimiter (default 50)."),
    ] = None,
    n_values: Annotated[
        int | None,
        SpecField("family.n_values"),
        typer.Option(help="Values per family (default 10)."),
    ] = None,
    n_slots: Annotated[
        int | None,
        SpecField("family.n_slots"),
        typer.Option(help="Slots per family (slot 0 = '/'; default 10)."),
    ] = None,
    family_seed: Annotated[
        int | None,
        SpecField("family.seed"),
        typer.Option(help="Seed that defines the family (default 0)."),
    ] = None,
    n_eval: Annotated[
        int | None,
        SpecField("concepts.n_eval"),
        typer.Option(help="Size of the eval concept set C_test (default 5)."),
    ] = None,
    plan: Annotated[
        str | None,
        SpecField("concepts.plan"),
        typer.Option(help="Concept set: eval | nested (k of C_test) | added (default eval)."),
    ] = None,
    k: Annotated[
        int | None,
        SpecField("concepts.k"),
        typer.Option(help="Concepts taken from C_test (nested, added)."),
    ] = None,
    k_added: Annotated[
        int | None,
        SpecField("concepts.k_added"),
        typer.Option(help="Concepts added from outside (default 0)."),
    ] = None,
    seed: Annotated[
        int | None,
        SpecField("seed"),
        typer.Option(help="Seed of the documents and prompts (default 0)."),
    ] = None,
    train_docs: Annotated[
        int | None,
        SpecField("splits.train.n_docs"),
        typer.Option(help="Training documents (default 1000)."),
    ] = None,
    train_tokens: Annotated[
        int | None,
        SpecField("splits.train.n_tokens"),
        typer.Option(help="Or: training tokens (instead of --train-docs)."),
    ] = None,
    doc_length: Annotated[
        int | None,
        SpecField("splits.train.doc_length"),
        typer.Option(help="Tokens per training doc (default 1024)."),
    ] = None,
    eval_docs: Annotated[
        int | None,
        SpecField("splits.eval.n_docs"),
        typer.Option(help="Eval documents (default 100)."),
    ] = None,
    eval_doc_length: Annotated[
        int | None,
        SpecField("splits.eval.doc_length"),
        typer.Option(help="Tokens per eval doc (default 1024)."),
    ] = None,
    noise_fraction: Annotated[
        float | None,
        SpecField("splits.train.noise.fraction"),
        typer.Option(help="Fraction of training docs with noise (default 0)."),
    ] = None,
    noise_rate: Annotated[
        float | None,
        SpecField("splits.train.noise.rate"),
        typer.Option(help="Per-token substitution rate of a noisy doc (default 0.1)."),
    ] = None,
    duplicate_fraction: Annotated[
        float | None,
        SpecField("splits.train.duplicates.fraction"),
        typer.Option(help="Fraction of training docs that are copies (default 0)."),
    ] = None,
    duplicate_edit_rate: Annotated[
        float | None,
        SpecField("splits.train.duplicates.edit_rate"),
        typer.Option(help="Substitution rate of a copy (default 0: exact)."),
    ] = None,
    zipf: Annotated[
        float | None,
        SpecField("splits.train.zipf_exponent"),  # and weighting: zipf, below
        typer.Option(
            help="Zipf exponent of the training concept weights (default: uniform weights)."
        ),
    ] = None,
    prompts: Annotated[
        bool | None,
        typer.Option(
            "--prompts/--no-prompts",
            help="Write ICL prompt sets (default: as the config says; without one, yes).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    progress: ProgressOption = None,
    quiet: QuietOption = False,
) -> None:
    """Generate a GINC data set: documents with per-document ground truth, ICL prompts,
    oracle losses and a tokenizer."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.data.ginc.dataset import GincSpec, generate

    overrides = spec_overrides(ginc_generate, locals())
    tree: dict = load_yaml(config) if config else {}
    if train_docs is not None and train_tokens is not None:
        raise ConfigError("give --train-docs or --train-tokens, not both")
    if zipf is not None:
        overrides["splits.train.weighting"] = "zipf"
    for key, value in overrides.items():
        if key.startswith("splits.") and "splits" not in tree:
            tree["splits"] = GincSpec().model_dump()["splits"]  # start from the defaults
        set_field(tree, key, value)
    train = (tree.get("splits") or {}).get("train")
    if isinstance(train, dict):  # a size given on the command line replaces the config's
        if train_docs is not None:
            train.pop("n_tokens", None)
        if train_tokens is not None:
            train.pop("n_docs", None)
    if prompts is False:
        tree["prompts"] = None
    spec = GincSpec.from_dict(tree, source=f"config {config}" if config else "options")
    path = generate(spec, out, overwrite=overwrite, show_progress=show_progress(progress, quiet))
    console.print(f"[green]wrote[/] {path}")


@app.command("info")
def ginc_info(
    path: Annotated[Path, typer.Argument(help="A folder written by `divlab ginc generate`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a GINC data set: counts, concepts, oracle loss, ground-truth diversity, knobs."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.data.ginc.dataset import GincDataset

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
    for line in curation_lines(info):
        console.print(line)
    if info.get("prompts"):
        counts = ", ".join(f"{k}: {v:,}" for k, v in info["prompts"]["counts"].items())
        console.print(
            f"ICL prompts: {counts} (n_examples {info['prompts']['n_examples']}, "
            f"lengths {info['prompts']['example_lengths']})"
        )
