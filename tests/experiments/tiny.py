"""A tiny experiment spec (seconds): 4 eval concepts, k in {1, 2, 4}, 2 seeds, a tiny model."""

from __future__ import annotations

import copy
import dataclasses

import yaml

from divlab.experiments.executors import Executor
from divlab.experiments.runs import execute_run

TINY = {
    "name": "tiny",
    "family": {"vocab_size": 20, "n_values": 4, "n_slots": 4, "seed": 0},
    "eval": {
        "n_concepts": 4,
        "n_docs": 24,
        "doc_length": 128,
        "seed": 1,
        "prompts": {
            "n_prompts": 8,
            "n_examples": [0, 2],
            "example_lengths": [3],
            "n_ood_concepts": 0,
            "max_tokens": 64,
        },
    },
    "plan": {"kind": "nested", "k": [1, 2, 4]},
    "training_data": {"n_tokens": 20000, "doc_length": 512, "seed": 2},
    "probe": {"source": "random:tiny"},
    "diversity": {
        "n_batches": 4,
        "batch_size": 8,
        "seq_len": 32,
        "finetune_epochs": 1,
        "finetune_lr": 0.01,
        "bootstrap": 100,
    },
    "model": {"preset": "tiny"},
    "token_budget": 8192,
    "seq_len": 64,
    "batch_tokens": 1024,
    "eval_every_tokens": 2048,
    "curve_docs": 8,
    "seeds": [0, 1],
    "evaluation": {"limit": 8, "prefix": 16, "length": 8},
    "executor": {"kind": "local", "workers": 2},
}


def tiny_spec(**overrides) -> dict:
    spec = copy.deepcopy(TINY)
    for key, value in overrides.items():
        spec[key] = value
    return spec


def tiny_kind_spec(kind: str, **overrides) -> dict:
    """The tiny spec as another experiment kind: without the diversity kind's own
    sections (plan, probe, diversity), which other kinds refuse."""
    spec = tiny_spec(kind=kind, **overrides)
    for key in ("plan", "probe", "diversity"):
        del spec[key]
    return spec


def write_spec(path, spec: dict):
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class InProcess(Executor):
    """Runs the payloads one after another in this process, on the caller's threads, and
    records which ran: tiny runs cost less than a spawned worker's imports (the local and
    Ray executors have their own tests in kinds/test_diversity.py)."""

    name = "in-process"
    workers = 1

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, payloads, on_result) -> None:
        for payload in payloads:
            self.ran.append(payload.run_id)
            on_result(execute_run(dataclasses.replace(payload, threads=None)))


def assert_plan_matches(spec, out) -> dict:
    """The cost plan (``divlab.experiments.cost``) counts the runs the experiment trained
    (``runs/*/run.json``; a trained diversity probe has its own folder) and the tokens of
    the data sets it generated, within rounding."""
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    from divlab import experiments

    plan = experiments.cost(spec, rate=False)
    summaries = [*Path(out).glob("runs/*/run.json"), *Path(out).glob("probe/run/run.json")]
    assert plan["total"]["runs"] == len(summaries)
    # the models planned are the models trained (sizes, config overrides)
    trained = {json.loads(s.read_text())["parameters"]["total"] for s in summaries}
    assert {g["parameters"] for g in plan["groups"]} == trained
    tokens = 0
    for split in [*Path(out).glob("**/train.parquet"), *Path(out).glob("**/eval.parquet")]:
        if "tokens" in pq.read_schema(split).names:
            column = pq.read_table(split, columns=["tokens"]).column("tokens")
            tokens += sum(len(t) for t in column.to_pylist())
    # documents are whole (counts rounded up); pools and copies are planned at their size
    assert (
        0.8 * plan["total"]["generated_tokens"] <= tokens <= 1.1 * plan["total"]["generated_tokens"]
    )
    return plan
