"""The run contract: one train-and-evaluate run, the same for every kind and executor.

A kind describes each run as a ``RunPayload`` (``run_payload`` builds it from the spec's
recipe, so every kind's run ids come from ``divlab.experiments.ids.run_id``); an executor
hands payloads to ``execute_run`` (in a worker process or a Ray task), which returns the
run's ``RunRecord``. ``execute_run`` is idempotent: the training loop resumes from its
last checkpoint, and ``result.json`` — written atomically, last — is the run's completion
marker. A run folder::

    spec.json, train_log.jsonl, curve.jsonl, model/, run.json    (divlab.train)
    eval.json      every metric of divlab.evaluate on D_eval
    result.json    the flat record of the run (one row of results.parquet); written last
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any, TypedDict

import torch

from divlab.evaluate.checkpoint import evaluate_checkpoint
from divlab.evaluate.harness import score_checkpoint
from divlab.experiments import ids
from divlab.io import read_json, write_json
from divlab.train import TrainSpec, train
from divlab.train.trackers import tracker

RESULT = "result.json"
# Fields of a run's TrainSpec that it sets itself, outside the shared recipe.
PER_RUN_FIELDS = ("data", "eval_data", "seed")


@dataclasses.dataclass(frozen=True)
class RunPayload:
    """What one run trains and how it is evaluated; everything an executor ships."""

    run_id: str
    condition: str  # the arm, condition or model the run belongs to
    seed: int
    out: str  # the run folder
    train: dict[str, Any]  # TrainSpec fields, data paths included
    evaluation: dict[str, Any]  # EvaluationSpec fields
    threads: int | None = None  # torch threads; None: the executor shares the cores
    logging: tuple[str, ...] = ()  # live trackers (divlab.train.trackers); not in the id

    @property
    def eval_data(self) -> str:
        return self.train["eval_data"]

    def with_threads(self, threads: int) -> RunPayload:
        return dataclasses.replace(self, threads=threads)


class RunRecord(TypedDict, total=False):
    """The flat record of a finished run (``result.json``, one row of a results table)."""

    run_id: str
    condition: str
    seed: int
    loss: float
    perplexity: float
    oracle_loss: float | None
    gap: float | None
    icl_accuracy: float | None
    edit_distance: float
    token_match: float
    speed_auc: float | None
    tokens_to_threshold: float | None
    prequential_bits_per_token: float | None
    tokens: int
    parameters: int
    parameters_non_embedding: int
    flops: float
    train_seconds: float
    wall_seconds: float
    device: str
    git_sha: str | None


def run_payload(
    spec,
    root: Path,
    name: str,
    data: Path,
    seed: int,
    eval_data: Path,
    *,
    evaluation: dict | None = None,
    **train_overrides,
) -> RunPayload:
    """One train-and-evaluate run of the spec's recipe on ``data`` (``train_overrides``:
    TrainSpec fields such as ``token_budget``, ``init_from``, ``shuffle``). Its folder is
    ``runs/<run_id>``, the id covering the data (relative to the experiment folder), the
    recipe and the evaluation, so a changed recipe never reuses a stale run."""
    recipe = spec.train_recipe(train_overrides) | {"seed": seed}
    evaluation = evaluation or spec.evaluation.dump()
    defining = dict(recipe)
    if defining.get("init_from"):  # a model inside the folder: where the folder is is no part
        defining["init_from"] = ids.relative(defining["init_from"], root)
    run_id = ids.run_id(name, seed, ids.relative(data, root), defining, evaluation)
    return RunPayload(
        run_id=run_id,
        condition=name,
        seed=seed,
        out=str(Path(root) / "runs" / run_id),
        train=recipe | {"data": str(data), "eval_data": str(eval_data)},
        evaluation=evaluation,
        threads=spec.executor.threads_per_worker,  # None: run_all shares the cores
        logging=tuple(spec.logging),
    )


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RESULT).exists()


def read_record(payload: RunPayload) -> RunRecord:
    return read_json(Path(payload.out) / RESULT)


def set_threads(threads: int | None) -> None:
    """Pin the math libraries' threads: on a shared CPU more threads than free cores make
    torch several times slower, so each worker gets its share."""
    if not threads:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)

    torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(threads: int):
    """Use ``threads`` torch threads inside the block, then restore the caller's setting
    (a library call must not leave a test suite or notebook oversubscribed)."""

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute_run(payload: RunPayload) -> RunRecord:
    """Train (or resume) and evaluate one run; return its record (see module docstring)."""
    out = Path(payload.out)
    if is_complete(out):
        return read_json(out / RESULT)
    set_threads(payload.threads)
    started = time.perf_counter()
    spec = TrainSpec.from_dict(payload.train, source=f"run {payload.run_id}")
    trackers = [tracker(name) for name in payload.logging]  # named after the run folder
    summary = train(spec, out, quiet=True, callbacks=trackers)
    evaluation = payload.evaluation
    result = evaluate_checkpoint(
        out / "model",
        payload.eval_data,
        split="eval",
        limit=evaluation["limit"],
        prefix=evaluation["prefix"],
        length=evaluation["length"],
        icl=evaluation["icl"],
        device=spec.device,
    )
    harness = evaluation.get("lm_eval")
    if harness:  # lm-evaluation-harness tasks on the same checkpoint
        result["lm_eval"] = score_checkpoint(
            out / "model",
            harness["tasks"],
            include_path=harness.get("include_path"),
            limit=harness.get("limit"),
            device=spec.device,
        )
    write_json(out / "eval.json", result)
    record: RunRecord = {
        "run_id": payload.run_id,
        "condition": payload.condition,
        "seed": payload.seed,
        **metrics_of(result, summary),
        "tokens": summary["tokens_seen"],
        "parameters": summary["parameters"]["total"],
        "parameters_non_embedding": summary["parameters"]["non_embedding"],
        "flops": summary["flops_total"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": time.perf_counter() - started,
        "device": summary["device"],
        **{f"{name}_version": v for name, v in summary["versions"].items() if name != "git_sha"},
        "git_sha": summary["versions"].get("git_sha"),
    }
    write_json(out / RESULT, record)
    return record


def harness_column(name: str) -> str:
    """The results column of an lm-eval metric ``task/metric``: ``lm_eval_task_metric``
    (letters, digits and underscores: plain to query in pandas and DuckDB)."""
    return "lm_eval_" + re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def metrics_of(evaluation: dict, summary: dict) -> dict:
    """The flat metrics of one run from its ``eval.json`` and ``run.json``."""
    loss = evaluation["loss"]
    continuation = evaluation["continuation"]["vs_truth"]
    icl = [row for row in evaluation.get("icl", []) if row["kind"] == "id"]
    with_examples = [row for row in icl if row["n_examples"] > 0]
    speed = summary.get("speed_of_learning") or {}
    return {
        "loss": loss["loss"],
        "perplexity": loss["perplexity"],
        "oracle_loss": loss.get("oracle_loss"),
        "gap": loss.get("gap"),
        "icl_accuracy": (
            sum(r["accuracy"] * r["prompts"] for r in with_examples)
            / sum(r["prompts"] for r in with_examples)
            if with_examples
            else None
        ),
        **{harness_column(name): v for name, v in evaluation.get("lm_eval", {}).items()},
        "edit_distance": continuation["edit_distance"],
        "token_match": continuation["token_match"],
        "speed_auc": speed.get("auc"),
        "tokens_to_threshold": speed.get("tokens_to_threshold"),
        "prequential_bits_per_token": summary.get("prequential_bits_per_token"),
    }
