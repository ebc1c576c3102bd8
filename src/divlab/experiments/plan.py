"""The cost of a whole experiment, planned before any compute: every kind's runs (its
``Kind.workload``), costed one group at a time by ``divlab.train.plan``, in total, with
the data it generates, the Task2Vec measurements and the disk it needs.

A kind's workload lists its runs in groups that share a recipe (``RunGroup``: how many,
their token budget and model where they differ from the spec's, the tokens of the data
each trains on, for the epochs a budget implies), the GINC tokens it generates, and the
data sets it measures. ``plan(spec, target)`` prices it on a ``divlab.train.plan.Target``:
this machine, or a named GPU (``divlab experiment validate --gpu H100``).

The Task2Vec measurements are costed as one probe forward pass per batch (``2 N`` FLOPs
per token): the closed-form estimator's measured cost (bench/bench_task2vec.py: 1.08x one
forward on SmolLM2, 0.99x on random:10m); a head fine-tune (``finetune_epochs``) adds
about that many forward-backward passes, which the plan leaves out and says so.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from divlab.errors import ConfigError
from divlab.experiments.spec import CommonSpec
from divlab.train.plan import GIB, RunCost, Target, model_shape, run_cost

TOKEN_BYTES = 2  # uint16 tokens: an upper bound of the compressed Parquet files


@dataclass(frozen=True)
class RunGroup:
    """Runs of one recipe: ``count`` runs of ``token_budget`` tokens on the spec's model
    (or ``model``, a ModelSpec dump), each on a training set of ``data_tokens`` tokens
    (None: not known before the data is prepared, e.g. real text)."""

    label: str
    count: int
    token_budget: int
    data_tokens: int | None = None
    model: dict | None = None


@dataclass(frozen=True)
class Workload:
    """What an experiment will do: its runs, the GINC tokens it generates (and copies)
    and the data sets it measures with Task2Vec: how many, the tokens through the probe
    in all, the probe's model (a ModelSpec dump; None where it is a checkpoint or a hub
    model, known once it is loaded)."""

    runs: tuple[RunGroup, ...]
    generated_tokens: int = 0
    measured_sets: int = 0
    measured_tokens: int = 0
    probe: dict | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def eval_tokens(spec: CommonSpec) -> int:
    """Tokens of the GINC eval set (none for a text eval corpus, which exists already)."""
    return 0 if spec.is_text else spec.eval.n_docs * spec.eval.doc_length


def probe_model(source: str, preset: str | None = None) -> dict | None:
    """The model of a probe source where the spec alone says it: ``trained`` (``preset``)
    or ``random:PRESET``."""
    if source == "trained":
        return {"preset": preset}
    if source.startswith("random:"):
        return {"preset": source.removeprefix("random:")}
    return None


@dataclass(frozen=True)
class GroupPlan:
    label: str
    count: int
    epochs: float | None  # passes over the training set a run's budget implies
    run: RunCost
    seconds_per_run: float | None


def plan(spec: CommonSpec, workload: Workload, target: Target) -> dict:
    """The experiment's cost on ``target``: per group and in total (runs, FLOPs, time,
    peak memory per run, disk). Raises ConfigError (naming the knob) when a run cannot fit
    the target's memory."""
    vocab = spec.vocab_size()
    if vocab is None:
        raise ConfigError("the cost is planned once the tokenizer's vocabulary is known")
    groups = []
    for group in workload.runs:
        recipe = spec.model_copy(update={"token_budget": group.token_budget})
        if group.model is not None:
            recipe = recipe.model_copy(update={"model": type(spec.model)(**group.model)})
        cost = run_cost(recipe, vocab, target.memory_bytes, target.cuda)
        rate = target.rate(recipe, vocab)
        groups.append(
            GroupPlan(
                group.label,
                group.count,
                group.data_tokens and cost.tokens / group.data_tokens,
                cost,
                cost.flops / rate if rate else None,
            )
        )
    measure = _measure_cost(spec, workload, vocab)
    train_flops = sum(g.count * g.run.flops for g in groups)
    seconds = None
    rate = target.rate(spec, vocab)  # the measurements: at the recipe's model's rate
    if rate and all(g.seconds_per_run is not None for g in groups):
        seconds = sum(g.count * g.seconds_per_run for g in groups) + measure["flops"] / rate
    models = sum(g.count * 4 * g.run.parameters for g in groups)  # final float32 weights
    resumable = max((12 * g.run.parameters for g in groups), default=0)  # per live run
    disk = workload.generated_tokens * TOKEN_BYTES + models + resumable * _parallel(spec)
    return {
        "target": target.as_dict(),
        "groups": [
            {
                "label": g.label,
                "runs": g.count,
                "epochs": g.epochs,
                "seconds_per_run": g.seconds_per_run,
                **g.run.as_dict(),
            }
            for g in groups
        ],
        "measure": measure,
        "total": {
            "runs": sum(g.count for g in groups),
            "flops": train_flops + measure["flops"],
            "seconds": seconds,
            "peak_memory_bytes": max((g.run.memory_bytes for g in groups), default=0),
            "disk_bytes": disk,
            "generated_tokens": workload.generated_tokens,
        },
        "notes": list(workload.notes),
    }


def _parallel(spec: CommonSpec) -> int:
    workers = spec.executor.workers
    return workers if isinstance(workers, int) else 1


def _measure_cost(spec: CommonSpec, workload: Workload, vocab: int) -> dict:
    tokens = workload.measured_tokens
    if not workload.measured_sets:
        return {"sets": 0, "tokens": 0, "flops": 0.0, "probe_parameters": None}
    parameters = None
    if workload.probe is not None:
        recipe = spec.model_copy(update={"model": type(spec.model)(**workload.probe)})
        parameters = model_shape(recipe, vocab)[0]["total"]
    return {
        "sets": workload.measured_sets,
        "tokens": tokens,
        "flops": float(2 * parameters * tokens) if parameters else 0.0,
        "probe_parameters": parameters,
    }


def check_disk(total: dict, folder: Path) -> None:
    """Refuse a plan whose data and checkpoints would not fit the disk under ``folder``.
    A relaunch needs only the share of its runs not yet finished (``result.json``, the
    run contract's completion marker; the plan's disk is an upper bound, so what a
    finished run wrote is never subtracted byte for byte)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    needed = total["disk_bytes"]
    if folder.exists() and total["runs"]:
        finished = len(list(folder.glob("runs/*/result.json")))
        needed = needed * max(0, total["runs"] - finished) / total["runs"]
    if needed > free:
        raise ConfigError(
            f"the experiment needs about {_size(needed)} more disk for its data and "
            f"checkpoints; {existing} has {_size(free)} free: choose another --out "
            "or lower training_data.n_tokens / the number of runs"
        )


def as_words(result: dict) -> list[str]:
    """The plan in lines for ``divlab experiment validate``."""
    target, total = result["target"], result["total"]
    lines = []
    for labels, g in _merged(result["groups"]):
        label = labels[0] if len(labels) == 1 else f"{', '.join(labels)} (each)"
        epochs = "" if g["epochs"] is None else f", {g['epochs']:.2f} epochs of its data"
        time = "" if g["seconds_per_run"] is None else f", ~{_duration(g['seconds_per_run'])}"
        lines.append(
            f"{label}: {g['runs']} run(s) x {g['parameters']:,} parameters, "
            f"{g['tokens']:,} tokens, {g['flops']:.3g} FLOPs{epochs}; peak memory "
            f"~{g['memory_bytes'] / GIB:.2f} GiB at micro-batch {g['micro_batch_size']}{time}"
        )
    measure = result["measure"]
    if measure["sets"]:
        flops = f"{measure['flops']:.3g} FLOPs" if measure["probe_parameters"] else "probe size"
        lines.append(
            f"Task2Vec: {measure['sets']} data set(s) x {measure['tokens'] // measure['sets']:,} "
            f"tokens through the probe, {flops}"
            + ("" if measure["probe_parameters"] else " known once it is loaded")
        )
    unit = (
        f"{total['seconds'] / 3600:.1f} GPU-hours, " if target["cuda"] and total["seconds"] else ""
    )
    time = (
        f"{unit}~{_duration(total['seconds'])} on one {target['name']} ({target['rate_source']})"
        if total["seconds"] is not None
        else f"time not estimated ({target['rate_source']})"
    )
    lines.append(
        f"total: {total['runs']} runs, {total['flops']:.3g} FLOPs, {time}; peak memory per run "
        f"~{total['peak_memory_bytes'] / GIB:.2f} GiB of {target['memory_bytes'] / GIB:.0f}; "
        f"disk ~{_size(total['disk_bytes'])} ({total['generated_tokens']:,} generated "
        "tokens, final models, resumable checkpoints)"
    )
    return lines + result["notes"]


def _size(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= 0.1 * GIB else f"{n / 2**20:.1f} MiB"


def _merged(groups: list[dict]) -> list[tuple[list[str], dict]]:
    """Groups that differ only in their label, as one (labels, group), in order."""
    merged: list[tuple[list[str], dict]] = []
    for g in groups:
        same = {k: v for k, v in g.items() if k != "label"}
        if merged and {k: v for k, v in merged[-1][1].items() if k != "label"} == same:
            merged[-1][0].append(g["label"])
        else:
            merged.append(([g["label"]], g))
    return merged


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = [
    "GroupPlan",
    "RunGroup",
    "Workload",
    "as_words",
    "check_disk",
    "eval_tokens",
    "plan",
    "probe_model",
]
