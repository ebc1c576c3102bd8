"""``divlab experiment run|validate``, ``divlab results`` and ``divlab report``: whole
experiments from one spec, any kind (the registry finds it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from divlab.cli.common import (
    App,
    ProgressOption,
    QuietOption,
    console,
    deprecated_option,
    out_option,
    renamed,
    show_progress,
)
from divlab.errors import ConfigError
from divlab.io import load_yaml
from divlab.specs import other_file_kind

app = App(help="Whole experiments from one YAML spec (Beyond Scale II plans).")


def read_quickly(spec: Path) -> None:
    """A spec file that is not a YAML mapping is refused before the library (and torch,
    several seconds) loads; the full check follows."""
    if spec.is_file():
        other = other_file_kind(load_yaml(spec))
        if other:
            raise ConfigError(f"config {spec} is {other}, not an experiment spec")


@app.command("run")
def experiment_run(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML), or its folder.")],
    out: Annotated[
        Path | None,
        out_option("Experiment folder (default: runs/NAME; a spec's folder: that folder)."),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="local or ray (default: the spec's executor.kind, else local)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Parallel runs (default: the spec's executor.workers).")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="ray: an existing cluster (default: the spec's, else a local one)."),
    ] = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Live curves of every run in a tracker: tensorboard, wandb or trackio "
            "(repeatable; adds to the spec's logging; pip install 'divlab[NAME]').",
        ),
    ] = None,
    report: Annotated[bool, typer.Option(help="Build the HTML report at the end.")] = True,
    progress: ProgressOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run (or resume) an experiment of any kind (diversity, collapse, merging, mixtures,
    curriculum, scaling): its data, every run, the results tables and the report.
    Relaunching skips what is finished."""
    read_quickly(spec)
    # lazy: the library loads torch (see divlab.cli)
    from divlab import experiments
    from divlab.experiments.executors import executor_for

    loaded = experiments.load(spec)  # validates the whole spec before any compute
    if log:
        loaded = experiments.with_logging(loaded, log)
    folder = spec if spec.is_dir() else (out or Path("runs") / loaded.name)
    chosen = executor_for(loaded, executor, workers, address)
    result = experiments.run(
        loaded, folder, executor=chosen, progress=show_progress(progress, quiet), report=report
    )
    console.print(f"[green]done[/] {loaded.kind} experiment in {result['out']}")
    if "runs" in result and "finished" in result:
        console.print(
            f"{result['finished']} of {result['runs']} runs finished"
            + (f" ({result['ran_now']} now)" if "ran_now" in result else "")
        )
    if "report" in result:
        console.print(f"report: {result['report']}")


@app.command("validate")
def experiment_validate(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    gpu: Annotated[
        str | None,
        typer.Option(
            help="Plan for one GPU per run of this model (H200, H100, 'H100 PCIe', 'H100 NVL', "
            "A100, A100-40GB, L40S, L40, A10G, A10, L4) instead of this machine (the "
            "default); skips this machine's checks."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        out_option(
            "The --out that `experiment run` will get, for the disk check (default: runs/NAME)."
        ),
    ] = None,
) -> None:
    """Check a spec (fields, plan, fairness, inputs, this machine's memory and disk) and
    print its plan in words and its cost: per group of runs and in total, parameters,
    tokens, epochs, FLOPs, time, peak memory at the micro-batch it will use, disk. The
    only compute is about a second of training steps that measures this CPU's rate."""
    read_quickly(spec)
    # lazy: the library loads torch (see divlab.cli)
    from divlab import experiments
    from divlab.experiments import plan as planning
    from divlab.train.plan import gpu_target
    from divlab.train.trackers import check_trackers

    loaded = experiments.load_spec(spec)
    if gpu is not None:
        gpu_target(gpu)  # an unknown GPU is refused even where no cost can be planned yet
    else:
        loaded.check_machine()
    check_trackers(loaded.logging)
    experiments.check_harness(loaded)
    lines = experiments.get(loaded.kind).describe(loaded)
    cost = experiments.cost(loaded, gpu)
    if cost is not None and gpu is None:
        planning.check_disk(cost["total"], out or Path("runs") / loaded.name)
    if as_json:
        print(json.dumps({"kind": loaded.kind, "plan": lines, "cost": cost}, indent=2))
        return
    for line in lines:
        console.print(line, highlight=False)
    if cost is None:
        console.print("cost: planned once the tokenizer's vocabulary is known", highlight=False)
        return
    console.print("[bold]cost[/]")
    for line in planning.as_words(cost):
        console.print(f"  {line}", highlight=False)


def results_command(
    spec_or_folder: Annotated[Path, typer.Argument(help="Experiment folder, or its spec.")],
    folder: Annotated[
        Path | None,
        typer.Option(
            "--folder", help="Given a spec: its experiment's folder (default: runs/NAME)."
        ),
    ] = None,
    out: Annotated[Path | None, deprecated_option("--out", "--folder", "-o")] = None,
) -> None:
    """Rebuild an experiment's results tables from its run folders (pandas/DuckDB)."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab import experiments
    from divlab.experiments.registry import kind_of_folder

    folder = renamed(folder, out, "--folder", "--out")
    if spec_or_folder.is_dir():
        folder = spec_or_folder
    else:  # a spec: its experiment's folder
        folder = folder or Path("runs") / experiments.load_spec(spec_or_folder).name
    kind = kind_of_folder(folder)
    if kind.collect is None:
        console.print(
            f"a {kind.name} experiment writes its tables as it runs: "
            + ", ".join(str(folder / t) for t in kind.tables)
        )
        return
    tables = kind.collect(folder)
    console.print(f"[green]wrote[/] {', '.join(f'{k}: {v}' for k, v in tables.items())}")


def report_command(
    folder: Annotated[Path, typer.Argument(help="Experiment folder.")],
) -> None:
    """Build the HTML report (figures, statistics) of an experiment folder of any kind."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab import experiments

    console.print(f"[green]wrote[/] {experiments.build_report(folder)}")
