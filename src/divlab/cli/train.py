"""``divlab train``, ``divlab evaluate`` and ``divlab merge``: models on data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from divlab.cli.common import (
    ProgressOption,
    QuietOption,
    SpecField,
    SplitOption,
    console,
    deprecated_option,
    out_option,
    renamed,
    set_field,
    show_progress,
    spec_overrides,
)
from divlab.errors import ConfigError
from divlab.io import load_yaml, write_json


def train_command(
    out: Annotated[Path, out_option("Run folder (a killed run there resumes).")],
    data: Annotated[
        Path | None,
        SpecField("data"),
        typer.Option(
            help="Data set folder (GINC or prepared text); required unless --config sets data."
        ),
    ] = None,
    preset: Annotated[
        str | None,
        SpecField("model.preset"),
        typer.Option(help="Model preset: tiny, mini, small, 10m, 30m or 125m (default tiny)."),
    ] = None,
    model: Annotated[str | None, deprecated_option("--model", "--preset")] = None,
    architecture: Annotated[
        str | None,
        SpecField("model.architecture"),
        typer.Option(help="llama or gpt2 (default llama)."),
    ] = None,
    tokens: Annotated[
        int | None,
        SpecField("token_budget"),
        typer.Option(help="Token budget of the run; required unless --config sets token_budget."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML TrainSpec; flags override it.")
    ] = None,
    seq_len: Annotated[
        int | None, SpecField("seq_len"), typer.Option(help="Tokens per sequence (default 128).")
    ] = None,
    batch_tokens: Annotated[
        int | None,
        SpecField("batch_tokens"),
        typer.Option(help="Tokens per optimizer step (default 4096)."),
    ] = None,
    micro_batch_size: Annotated[
        str | None,
        SpecField("micro_batch_size"),
        typer.Option(
            help="Sequences per forward pass (accumulation), or auto: the largest that fits "
            "the device's memory (the default)."
        ),
    ] = None,
    activation_checkpointing: Annotated[
        bool,
        SpecField("activation_checkpointing"),
        typer.Option(
            "--activation-checkpointing", help="Recompute layers in the backward: less memory."
        ),
    ] = False,
    lr: Annotated[
        float | None,
        SpecField("optimizer.lr"),
        typer.Option(help="Peak learning rate (default 0.003)."),
    ] = None,
    schedule: Annotated[
        str | None,
        SpecField("schedule.kind"),
        typer.Option(help="cosine, linear or constant (default cosine)."),
    ] = None,
    seed: Annotated[
        int | None,
        SpecField("seed"),
        typer.Option(help="Seed of init, data order, dropout (default 0)."),
    ] = None,
    eval_every: Annotated[
        int | None,
        SpecField("eval_every_tokens"),
        typer.Option(help="Eval every N tokens (default: every tenth of the budget)."),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        SpecField("checkpoint_every_tokens"),
        typer.Option(help="Checkpoint every N tokens (default: every quarter of the budget)."),
    ] = None,
    device: Annotated[
        str | None, SpecField("device"), typer.Option(help="auto, cpu or cuda (default auto).")
    ] = None,
    compile_model: Annotated[
        bool,
        SpecField("compile"),  # only when given: False is the default, not an override
        typer.Option("--compile", help="torch.compile the model (CUDA)."),
    ] = False,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Live curves in a tracker: tensorboard, wandb or trackio (repeatable; pip "
            "install 'divlab[NAME]'). TensorBoard writes to OUT/tensorboard.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over in --out.")] = False,
    progress: ProgressOption = None,
    quiet: QuietOption = False,
) -> None:
    """Train a decoder on a data set for a fixed token budget (resumes a killed run in
    --out; returns at once if the run there is finished)."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.train import TrainSpec, train
    from divlab.train.trackers import check_trackers, tracker

    preset = renamed(preset, model, "--preset", "--model")
    overrides = spec_overrides(train_command, locals())
    tree: dict = load_yaml(config) if config else {}
    for key, value in overrides.items():
        set_field(tree, key, value)
    for needed, flag in (("data", "--data"), ("token_budget", "--tokens")):
        if needed not in tree:
            raise ConfigError(f"{flag} is required (or set {needed} in --config)")
    spec = TrainSpec.from_dict(tree, source=f"config {config}" if config else "options")
    check_trackers(log or [])  # unknown or not installed: one error before any work
    trackers = [tracker(name) for name in dict.fromkeys(log or [])]
    quiet = not show_progress(progress, quiet)
    summary = train(spec, out, overwrite=overwrite, quiet=quiet, callbacks=trackers)
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


def evaluate_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder (e.g. RUN/model).")],
    data: Annotated[Path, typer.Option(help="Data set folder to evaluate on.")],
    split: SplitOption = "eval",
    limit: Annotated[
        int | None,
        typer.Option(
            help="Score at most this many documents (default: every document of the split; "
            "continuations: at most 64)."
        ),
    ] = None,
    prefix: Annotated[int, typer.Option(help="Prefix tokens for continuations.")] = 32,
    length: Annotated[int, typer.Option(help="Continuation tokens.")] = 16,
    icl: Annotated[bool, typer.Option("--icl/--no-icl", help="GINC ICL accuracy.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[
        Path | None, out_option("Write the results as JSON here (default: none).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    progress: ProgressOption = None,
) -> None:
    """Loss, perplexity and gap to the oracle; continuation metrics; ICL exact match."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.evaluate.checkpoint import evaluate_checkpoint

    result = evaluate_checkpoint(
        checkpoint, data, split, limit, prefix, length, icl, device, show_progress(progress)
    )
    if out:
        write_json(out, result)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    loss = result["loss"]
    line = f"loss {loss['loss']:.4f} nats/token, perplexity {loss['perplexity']:.3f}"
    if "gap" in loss:
        line += f", oracle {loss['oracle_loss']:.4f}, gap {loss['gap']:.4f}"
    total = result["split_docs"]
    scored = f"{loss['n_docs']} docs" + ("" if loss["n_docs"] == total else f" of {total}")
    console.print(f"[bold]{checkpoint}[/] on {data} ({split}, {scored}): {line}")
    c = result["continuation"]
    if "skipped" in c:
        console.print(f"continuation: skipped, {c['skipped']}")
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


def merge_command(
    checkpoints: Annotated[
        list[Path], typer.Argument(help="Checkpoint folders of one architecture (RUN/model).")
    ],
    out: Annotated[Path, out_option("The merged checkpoint's folder.")],
    weights: Annotated[
        str | None,
        typer.Option(help="Positive weights, one per checkpoint, e.g. 1,2 (default: uniform)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Average checkpoints' parameters into one checkpoint (float tensors averaged, the
    rest must agree): the merge of divlab's data-ablation experiments, as a normal model."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab.train.merging import average_checkpoints

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
