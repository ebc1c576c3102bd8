"""Score a divlab checkpoint on lm-evaluation-harness tasks, through lm-eval's Python API.

``score_checkpoint(model_dir, tasks)`` runs ``lm_eval.simple_evaluate`` and returns its
numbers as one flat dict, ``{"<task>/<metric>": value}`` (lm-eval's ``",none"`` filter
suffix dropped; other filters keep lm-eval's key, ``"<task>/<metric>,<filter>"``; standard
errors as ``"<task>/<metric>_stderr"`` where lm-eval gives a number).

A divlab checkpoint (``<run>/model``) is a ``save_pretrained`` folder with its tokenizer
beside the weights, so it loads in lm-eval's ``hf`` model as it is. The one setting
chosen here is the token that precedes a document when its first token is scored
(lm-eval's ``prefix_token_id``): divlab trains on documents packed after ``<eos>``, so
``<eos>`` is used, and a ``loglikelihood_rolling`` task scores a document exactly as
:func:`divlab.evaluate.loss.token_nll` does while it fits in the model's context.

Task names are checked before the model is loaded (:func:`check_tasks`, also called at
spec validation): unknown names raise a ConfigError naming them and the include path.
Local tasks live in a folder of lm-eval task YAMLs passed as ``include_path``; only that
folder is indexed when it holds every requested task (indexing lm-eval's own ~15k tasks
takes seconds).

On a machine that reaches the Hugging Face hub, lm-eval's own tasks work by name, e.g.
``tasks: [arc_easy, mmlu]`` (a group such as ``mmlu`` reports its subtasks too); their
data sets are downloaded from the hub, which is not reachable from this sandbox, so tests
use a local JSONL task. lm-eval is an optional dependency: ``pip install 'divlab[harness]'``.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import torch

from divlab.errors import ConfigError, DataError
from divlab.optional import require

# lm-eval's loggers: INFO lines per task and per request type are silenced while scoring
_LOGGERS = ("lm_eval", "lm-eval")
# bootstrap resamples for the standard error of non-mean metrics (perplexities); lm-eval's
# default of 100k takes longer than the scoring of a small model
BOOTSTRAP_ITERS = 1000


def _lm_eval():
    return require("lm_eval", "harness", "lm-eval tasks")


@functools.lru_cache(maxsize=8)
def _task_manager(include_path: str | None, include_defaults: bool):
    _lm_eval()
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def _resolve(tasks: list[str], include_path: str | Path | None):
    """The TaskManager that knows every task of ``tasks``, or a ConfigError naming those
    it does not know (the include folder alone first, lm-eval's tasks as well if needed)."""
    if isinstance(tasks, str) or not tasks:
        raise ConfigError(f"tasks must be a non-empty list of lm-eval task names, got {tasks!r}")
    folder = None
    if include_path is not None:
        folder = Path(include_path)
        if not folder.is_dir():
            raise ConfigError(f"lm-eval include_path {folder} is not a folder of task YAMLs")
        folder = str(folder.resolve())
        manager = _task_manager(folder, False)
        if all(task in manager.all_tasks for task in tasks):
            return manager
    manager = _task_manager(folder, True)
    unknown = [task for task in tasks if task not in manager.all_tasks]
    if unknown:
        where = f"lm-eval's tasks and {folder}" if folder else "lm-eval's tasks"
        raise ConfigError(
            f"unknown lm-eval task(s) {', '.join(map(repr, unknown))}: not in {where} "
            "(pass include_path=<folder of task YAMLs> for local tasks)"
        )
    return manager


def check_tasks(tasks: list[str], include_path: str | Path | None = None) -> None:
    """Raise a ConfigError if a task name is unknown to lm-eval (with ``include_path``);
    no model is loaded, no data is read."""
    _resolve(tasks, include_path)


def _prefix_token_id(checkpoint: Path) -> int | None:
    """``<eos>``, what precedes every document in divlab's packed training data."""
    try:
        config = json.loads((checkpoint / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{checkpoint} is not a model checkpoint: {error}") from None
    eos = config.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    return eos if isinstance(eos, int) else None


def flatten_results(results: dict) -> dict[str, float]:
    """``results["results"]`` of ``simple_evaluate`` as ``{"<task>/<metric>": value}``,
    numbers only (``"N/A"`` standard errors and aliases dropped)."""
    flat: dict[str, float] = {}
    for task, metrics in results["results"].items():
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or "," not in key:
                continue
            metric, _, filter_name = key.partition(",")
            name = metric if filter_name == "none" else key
            flat[f"{task}/{name}"] = float(value)
    return flat


def score_checkpoint(
    checkpoint: str | Path,
    tasks: list[str],
    include_path: str | Path | None = None,
    limit: int | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """Run lm-eval ``tasks`` on a checkpoint folder; ``{"<task>/<metric>": value}``.

    ``limit`` caps the documents per task (lm-eval takes the first ones); ``seed`` seeds
    lm-eval's python, numpy, torch and few-shot samplers.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise DataError(f"checkpoint {checkpoint} does not exist (expected a model folder)")
    prefix = _prefix_token_id(checkpoint)
    manager = _resolve(list(tasks), include_path)
    lm_eval = _lm_eval()

    model_args: dict = {"pretrained": str(checkpoint), "dtype": "float32"}
    if prefix is not None:
        model_args["prefix_token_id"] = prefix
    threads = torch.get_num_threads()
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=list(tasks),
            task_manager=manager,
            device=device,
            batch_size=batch_size,
            limit=limit,
            log_samples=False,
            bootstrap_iters=BOOTSTRAP_ITERS,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    finally:
        torch.set_num_threads(threads)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    if results is None:  # only on non-zero ranks of a distributed run
        return {}
    return flatten_results(results)
