"""One run of an experiment: train on a condition's data, evaluate on ``D_eval``, record.

``execute_run`` is what an executor calls (in a worker process or a Ray task). It is
idempotent: the training loop resumes from its last checkpoint, and ``result.json`` —
written atomically, last — is the run's completion marker. A run folder::

    spec.json, train_log.jsonl, curve.jsonl, model/, run.json    (divlab.train)
    eval.json      every metric of divlab.evaluate on D_eval
    result.json    the flat record of the run (one row of results.parquet); written last
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from divlab.io import read_json, write_json

RESULT = "result.json"


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RESULT).exists()


def set_threads(threads: int | None) -> None:
    """Pin the math libraries' threads: on a shared CPU more threads than free cores make
    torch several times slower, so each worker gets its share."""
    if not threads:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(threads: int):
    """Use ``threads`` torch threads inside the block, then restore the caller's setting
    (a library call must not leave a test suite or notebook oversubscribed)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute_run(payload: dict) -> dict:
    """Train (or resume) and evaluate one run; return its record (see module docstring).

    ``payload``: ``run_id``, ``condition``, ``seed``, ``out`` (the run folder), ``train``
    (TrainSpec fields, data paths filled in), ``evaluation`` (EvaluationSpec fields),
    ``eval_data`` and ``threads``."""
    out = Path(payload["out"])
    if is_complete(out):
        return read_json(out / RESULT)
    set_threads(payload.get("threads"))
    from divlab.evaluate.checkpoint import evaluate_checkpoint
    from divlab.train import TrainSpec, train

    started = time.perf_counter()
    spec = TrainSpec.from_dict(payload["train"], source=f"run {payload['run_id']}")
    summary = train(spec, out, quiet=True)
    evaluation = payload["evaluation"]
    result = evaluate_checkpoint(
        out / "model",
        payload["eval_data"],
        split="eval",
        limit=evaluation["limit"],
        prefix=evaluation["prefix"],
        length=evaluation["length"],
        icl=evaluation["icl"],
        device=spec.device,
    )
    write_json(out / "eval.json", result)
    record = {
        "run_id": payload["run_id"],
        "condition": payload["condition"],
        "seed": payload["seed"],
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
        "edit_distance": continuation["edit_distance"],
        "token_match": continuation["token_match"],
        "speed_auc": speed.get("auc"),
        "tokens_to_threshold": speed.get("tokens_to_threshold"),
        "prequential_bits_per_token": summary.get("prequential_bits_per_token"),
    }
