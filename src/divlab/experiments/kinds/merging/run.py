"""The run of ``kind: merging`` (see the package docstring for the design)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from divlab import seeds
from divlab.data.store import open_dataset, write_dataset
from divlab.devices import resolve_device
from divlab.evaluate.loss import EvalSet
from divlab.evaluate.model import HFLanguageModel, load_model
from divlab.experiments.data import ginc_eval_set, ginc_training_set
from divlab.experiments.executors import available_cores, executor_for, run_all, unfinished
from divlab.experiments.folder import claim_folder, finish, logger, now
from divlab.experiments.ids import relative, stable_hash
from divlab.experiments.kinds.merging.spec import (
    MergingExperimentSpec,
    candidate_mixtures,
    trained_mixtures,
)
from divlab.experiments.plan import RunGroup, Workload, eval_tokens
from divlab.experiments.runs import RunPayload, run_payload, torch_threads
from divlab.io import read_json, write_json, write_table
from divlab.train.checkpoint import SIDECAR
from divlab.train.merging import average_checkpoints

# ---- the plan ----------------------------------------------------------------------------


def partitions(spec: MergingExperimentSpec) -> list[list[int]]:
    """The concept ids of each partition."""
    section = spec.merging
    if section.partitions is not None:
        return [list(group) for group in section.partitions]
    groups = np.array_split(np.arange(spec.eval.n_concepts), section.n_partitions)
    return [group.tolist() for group in groups]


def partition_name(index: int) -> str:
    return f"p{index}"


def mixture_name(mixture: tuple[int, ...]) -> str:
    return "+".join(partition_name(i) for i in mixture)


def seed_concepts(spec: MergingExperimentSpec) -> list[int]:
    if spec.merging.seed_concepts is not None:
        return list(spec.merging.seed_concepts)
    return sorted(i for group in partitions(spec) for i in group)


def budgets(spec: MergingExperimentSpec) -> tuple[int, int]:
    """(seed model tokens, tokens per partition run)."""
    section = spec.merging
    return section.seed_tokens or spec.token_budget, section.partition_tokens or spec.token_budget


def continued_recipe(spec: MergingExperimentSpec) -> dict:
    """TrainSpec overrides shared by partition and mixture runs: a constant learning rate
    from the first step (no warmup, so n x the tokens means the same rate n x as long)."""
    optimizer = spec.optimizer.model_dump(mode="json")
    if spec.merging.lr is not None:
        optimizer["lr"] = spec.merging.lr
    schedule = spec.schedule.model_dump(mode="json") | {"kind": "constant", "warmup_fraction": 0.0}
    return {"optimizer": optimizer, "schedule": schedule}


def describe(spec: MergingExperimentSpec) -> list[str]:
    groups = partitions(spec)
    seed_tokens, partition_tokens = budgets(spec)
    mixtures, trained = candidate_mixtures(spec.merging), trained_mixtures(spec.merging)
    lr = spec.merging.lr or spec.optimizer.lr
    lines = [f"{partition_name(i)}: concepts {g}" for i, g in enumerate(groups)]
    lines += [
        f"seed model: concepts {seed_concepts(spec)}, {seed_tokens:,} tokens",
        f"{len(groups)} partition runs from the seed model, {partition_tokens:,} tokens each at "
        f"a constant learning rate {lr:g}",
        f"{len(mixtures)} merged mixtures: {', '.join(mixture_name(m) for m in mixtures)}",
        f"{len(trained)} trained mixtures (n x {partition_tokens:,} tokens): "
        f"{', '.join(mixture_name(m) for m in trained)}",
        f"eval sets: all ({spec.eval.n_concepts} eval concepts) and one per partition",
        f"{(1 + len(groups) + len(trained)) * len(spec.seeds)} training runs "
        f"({len(spec.seeds)} seed(s)), {len(mixtures) * len(spec.seeds)} merges",
    ]
    return lines


def workload(spec: MergingExperimentSpec) -> Workload:
    """The seed runs, the partition runs from them and the trained mixtures."""
    groups = partitions(spec)
    seed_tokens, partition_tokens = budgets(spec)
    n_tokens, n_seeds = spec.training_data.n_tokens, len(spec.seeds)
    runs = [
        RunGroup("seed model", n_seeds, seed_tokens, n_tokens),
        RunGroup("partitions", len(groups) * n_seeds, partition_tokens, n_tokens),
    ]
    trained = trained_mixtures(spec.merging)
    for size in sorted({len(m) for m in trained}):
        count = sum(len(m) == size for m in trained) * n_seeds
        runs.append(RunGroup(f"mixtures of {size}", count, size * partition_tokens,
                             size * n_tokens))  # fmt: skip
    unions = sum(len(m) for m in trained) * n_tokens
    return Workload(tuple(runs), (1 + len(groups)) * (n_tokens + eval_tokens(spec)) + unions)


# ---- data ---------------------------------------------------------------------------------


def partition_eval_set(spec, root: Path, index: int, concepts: list[int]) -> Path:
    """The eval documents of one partition's concepts: like ``D_eval`` (same size, family
    and oracle) without prompts, from a seed derived from the eval seed."""
    return ginc_eval_set(
        spec,
        root,
        concepts,
        seeds.derive_seed(spec.eval.seed, index + 1),
        f"eval-{partition_name(index)}",
    )


def union_set(root: Path, name: str, parts: list[Path]) -> Path:
    """The union of the partitions' training sets (each the same size: equal shares)."""

    path = root / "data" / f"mixture-{name}-{stable_hash([relative(p, root) for p in parts], 8)}"
    if not (path / "summary.json").exists():
        datasets = [open_dataset(p) for p in parts]
        table = pa.concat_tables([d.table("train") for d in datasets])
        write_dataset(
            path, datasets[0], {"train": table}, overwrite=True, union_of=[str(p) for p in parts]
        )
    return path


# ---- evaluation ---------------------------------------------------------------------------


def evaluate_models(models: dict[str, Path], eval_sets: dict[str, Path], folder: Path, spec):
    """Loss and perplexity of every model on every eval set, cached per model in
    ``folder/<key>.json``; returns ({key: {eval set: metrics}}, models evaluated now)."""

    limit = spec.evaluation.limit
    loaded: dict[str, EvalSet] = {}
    results, evaluated = {}, 0
    for key, model_dir in models.items():
        path = folder / f"{key}.json"
        if path.exists():
            results[key] = read_json(path)["eval_sets"]
            continue
        model = load_model(model_dir, str(resolve_device(spec.device)))
        context = HFLanguageModel(model).context
        scores = {}
        for name, data in eval_sets.items():
            if name not in loaded:
                loaded[name] = EvalSet(open_dataset(data), "eval", limit)
            result = loaded[name].evaluate(model, context)
            scores[name] = {
                k: result.get(k) for k in ("loss", "perplexity", "oracle_loss", "gap", "n_tokens")
            }
        write_json(path, {"model": str(model_dir), "eval_sets": scores})
        results[key], evaluated = scores, evaluated + 1
        del model
    return results, evaluated


# ---- the run ------------------------------------------------------------------------------


def run(
    spec: MergingExperimentSpec,
    out: str | Path,
    *,
    executor=None,
    progress: bool = True,
    report: bool = True,
    log=None,
) -> dict:
    """Run (or resume) the merging experiment in folder ``out``; finished runs, merges and
    evaluations on disk are reused. Returns the folder, the tables, the report and how
    much was done now (``ran_now``, ``merged_now``, ``evaluated_now``)."""

    log = logger(log, progress)
    root = claim_folder(Path(out).resolve(), spec)
    executor = executor or executor_for(spec)
    started = now()
    # This process's stages (data, merges, evaluations) run alone: every core, unless the
    # spec pins threads (on a shared machine, fewer threads than busy cores is faster).
    threads = spec.executor.threads_per_worker or available_cores()

    with torch_threads(threads):
        log("data: eval sets and training sets")
        eval_sets, data = prepare_data(spec, root)
    seed_runs, continued, models = plan_runs(spec, root, data, eval_sets["all"])
    payloads = [*seed_runs, *continued]
    ran_now = len(unfinished(payloads))
    run_all(seed_runs, executor, progress, "seed models", log)  # the others start from them
    run_all(continued, executor, progress, "continued pre-training", log)

    with torch_threads(threads):
        merged_now = merge_all(spec, root, models)
        log(f"merges: {merged_now} written now")
        paths = {m["key"]: m["path"] for m in models}
        scores, evaluated_now = evaluate_models(paths, eval_sets, root / "evaluations", spec)
        log(f"evaluations: {evaluated_now} models now, {len(models)} in all")

    models_table = model_table(models, scores)
    tables = {"merging": root / "merging.parquet", "models": root / "merging_models.parquet"}
    write_table(mixture_table(models_table), tables["merging"])
    write_table(models_table, tables["models"])
    result = {
        "runs": len(payloads),
        "ran_now": ran_now,
        "merged_now": merged_now,
        "evaluated_now": evaluated_now,
        **{name: str(path) for name, path in tables.items()},
    }
    return finish(
        root,
        spec,
        result,
        report,
        started,
        executor,
        partitions={partition_name(i): g for i, g in enumerate(partitions(spec))},
        mixtures=[mixture_name(m) for m in candidate_mixtures(spec.merging)],
        trained=[mixture_name(m) for m in trained_mixtures(spec.merging)],
        eval_sets={name: str(path) for name, path in eval_sets.items()},
    )


def prepare_data(spec: MergingExperimentSpec, root: Path) -> tuple[dict, dict]:
    """The eval sets ({"all": D_eval, "p<i>": partition i's}) and the training sets
    ({"seed": ..., "partitions": [...], "mixtures": {mixture: union}}), generated once."""
    groups, train_seed = partitions(spec), spec.training_data.seed
    eval_sets = {"all": ginc_eval_set(spec, root)}
    for i, group in enumerate(groups):
        eval_sets[partition_name(i)] = partition_eval_set(spec, root, i, group)
    parts = [
        ginc_training_set(
            spec, root, partition_name(i), group, seeds.derive_seed(train_seed, i + 1)
        )
        for i, group in enumerate(groups)
    ]
    data = {
        "seed": ginc_training_set(
            spec, root, "seed", seed_concepts(spec), seeds.derive_seed(train_seed, 0)
        ),
        "partitions": parts,
        "mixtures": {
            m: union_set(root, mixture_name(m), [parts[i] for i in m])
            for m in trained_mixtures(spec.merging)
        },
    }
    return eval_sets, data


def plan_runs(spec: MergingExperimentSpec, root: Path, data: dict, eval_data: Path):
    """The seed runs, the continued runs (partitions and trained mixtures, from the seed
    model of their seed) and every model to evaluate: dicts with ``key`` (its evaluation
    file), ``seed``, ``role`` (seed, partition, merge, mixture), ``name``, ``members``
    (partition indices) and ``path`` (merges: ``sources`` and ``weights`` too)."""
    seed_tokens, partition_tokens = budgets(spec)
    recipe = continued_recipe(spec)
    seed_runs, continued, models = [], [], []

    def add(payload: RunPayload, seed: int, role: str, name: str, members: tuple[int, ...]) -> None:
        path = Path(payload.out) / "model"
        models.append(
            {
                "key": payload.run_id,
                "seed": seed,
                "role": role,
                "name": name,
                "members": members,
                "path": path,
            }
        )

    for s in spec.seeds:
        seed_run = run_payload(
            spec, root, "seed", data["seed"], s, eval_data, token_budget=seed_tokens
        )
        seed_runs.append(seed_run)
        add(seed_run, s, "seed", "seed", ())
        init = str(Path(seed_run.out) / "model")
        partition_models = []
        for i, part in enumerate(data["partitions"]):
            payload = run_payload(
                spec, root, partition_name(i), part, s, eval_data,
                token_budget=partition_tokens, init_from=init, **recipe,
            )  # fmt: skip
            continued.append(payload)
            add(payload, s, "partition", partition_name(i), (i,))
            partition_models.append(Path(payload.out) / "model")
        for m, union in data["mixtures"].items():
            payload = run_payload(
                spec, root, f"mix-{mixture_name(m)}", union, s, eval_data,
                token_budget=len(m) * partition_tokens, init_from=init, **recipe,
            )  # fmt: skip
            continued.append(payload)
            add(payload, s, "mixture", mixture_name(m), m)
        for m in candidate_mixtures(spec.merging):
            sources = [partition_models[i] for i in m]
            weights = [spec.merging.weights[i] for i in m] if spec.merging.weights else None
            digest = stable_hash([[relative(p, root) for p in sources], weights], 8)
            key = f"{mixture_name(m)}-s{s}-{digest}"
            merge = {"key": key, "seed": s, "role": "merge", "name": mixture_name(m), "members": m}
            models.append(
                merge | {"path": root / "merges" / key, "sources": sources, "weights": weights}
            )
    return seed_runs, continued, models


def merge_all(spec: MergingExperimentSpec, root: Path, models: list[dict]) -> int:
    """Average the partition models of every merge not on disk yet; return how many."""
    done = 0
    for model in models:
        if model["role"] == "merge" and not (model["path"] / SIDECAR).exists():
            average_checkpoints(model["sources"], model["path"], model["weights"], overwrite=True)
            done += 1
    return done


def model_table(models: list[dict], scores: dict) -> pd.DataFrame:
    """One row per (model, eval set): seed, role, name, partitions, size, eval set, loss,
    perplexity, oracle gap and the model's folder."""

    rows = [
        {
            "seed": m["seed"],
            "role": m["role"],
            "name": m["name"],
            "partitions": ",".join(partition_name(i) for i in m["members"]),
            "size": len(m["members"]),
            "eval_set": eval_set,
            "loss": values["loss"],
            "perplexity": values["perplexity"],
            "gap": _float(values.get("gap")),
            "model": str(m["path"]),
        }
        for m in models
        for eval_set, values in scores[m["key"]].items()
    ]
    return pd.DataFrame(rows)


def _float(value) -> float:
    return float("nan") if value is None else float(value)


def mixture_table(models: pd.DataFrame) -> pd.DataFrame:
    """One row per (seed, mixture, eval set) from the models table: the merge's and the
    mixture-trained model's loss and perplexity, the mean over the mixture's partition
    models (``component_mean_*``) and the seed model's."""

    rows = []
    index = models.set_index(["seed", "role", "name", "eval_set"])
    for (seed, name, eval_set), merge in models[models.role == "merge"].groupby(
        ["seed", "name", "eval_set"], sort=False
    ):
        merge = merge.iloc[0]
        members = merge["partitions"].split(",")
        components = [index.loc[(seed, "partition", p, eval_set)] for p in members]
        seed_model = index.loc[(seed, "seed", "seed", eval_set)]
        key = (seed, "mixture", name, eval_set)
        trained = key in index.index
        mixture = index.loc[key] if trained else None
        rows.append(
            {
                "seed": seed,
                "mixture": name,
                "size": int(merge["size"]),
                "eval_set": eval_set,
                "trained": trained,
                "merge_loss": merge["loss"],
                "merge_perplexity": merge["perplexity"],
                "mixture_loss": mixture["loss"] if trained else float("nan"),
                "mixture_perplexity": mixture["perplexity"] if trained else float("nan"),
                "component_mean_loss": float(np.mean([c["loss"] for c in components])),
                "component_mean_perplexity": float(np.mean([c["perplexity"] for c in components])),
                "seed_loss": seed_model["loss"],
                "seed_perplexity": seed_model["perplexity"],
            }
        )
    return pd.DataFrame(rows)
