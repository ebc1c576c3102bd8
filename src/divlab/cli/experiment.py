"""``divlab experiment run|validate``, ``divlab results`` and ``divlab report``: whole
experiments from one spec, any kind (the registry finds it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from divlab.cli.common import console

app = typer.Typer(
    help="Whole experiments from one YAML spec (Beyond Scale II plans).", no_args_is_help=True
)


@app.command("run")
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
    # lazy: the library loads torch (see divlab.cli)
    from divlab import experiments
    from divlab.experiments.executors import executor_for

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


@app.command("validate")
def experiment_validate(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Check a spec (fields, plan, fairness, inputs, this machine) and print its plan in
    words and the planned cost of one run; no compute."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab import experiments

    loaded = experiments.load_spec(spec)
    loaded.check_machine()
    lines = experiments.get(loaded.kind).describe(loaded)
    cost = loaded.run_cost()
    if as_json:
        plan = {"kind": loaded.kind, "plan": lines, "run": cost and cost.as_dict()}
        print(json.dumps(plan, indent=2))
        return
    for line in lines:
        console.print(line, highlight=False)
    if cost is None:
        console.print("cost: planned once the tokenizer's vocabulary is known", highlight=False)
        return
    gib = 2**30
    console.print(
        f"one run of the spec's recipe: {cost.parameters:,} parameters "
        f"({cost.parameters_non_embedding:,} non-embedding), {cost.tokens:,} tokens, "
        f"{cost.flops:.3g} FLOPs; peak memory about {cost.memory_bytes / gib:.2f} GiB at "
        f"micro-batch {cost.micro_batch_size} (budget {cost.memory_budget_bytes / gib:.1f} "
        f"GiB); disk about {cost.disk_bytes / gib:.2f} GiB",
        highlight=False,
    )


def results_command(
    spec_or_folder: Annotated[Path, typer.Argument(help="Experiment folder, or its spec.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The folder of a spec (default runs/NAME).")
    ] = None,
) -> None:
    """Rebuild an experiment's results tables from its run folders (pandas/DuckDB)."""
    # lazy: the library loads torch (see divlab.cli)
    from divlab import experiments
    from divlab.experiments.registry import kind_of_folder

    folder = spec_or_folder
    if not folder.is_dir():  # a spec: its experiment's folder
        folder = out or Path("runs") / experiments.load_spec(folder).name
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
