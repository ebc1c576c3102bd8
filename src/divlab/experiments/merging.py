"""Data-ablation approximation by merging (``kind: merging``; BRIEF section 8).

Na et al. 2024, "Scalable Data Ablation Approximations for Language Models through
Modular Training and Merging" (code: clarana/ez-data-ablations): to learn how a model
trained on a *mixture* of data partitions would do, without training it, train one seed
model, continue pre-training one copy of it per partition (a fixed token count, constant
learning rate), and average the partition models' parameters. The claim tested here: the
perplexity of the uniform average of the n partition models of a mixture correlates
strongly with the perplexity of a model actually trained on that mixture (n x the tokens,
continued from the same seed at the same learning rate), across mixtures and eval sets.

The experiment, for every seed of the spec (GINC only; partitions are groups of concepts):

1. the seed model, trained from scratch on documents of every partition's concepts;
2. one continued-pre-training run per partition (``init_from`` the seed model, constant
   learning rate, no warmup, ``partition_tokens`` tokens);
3. the candidate mixtures (all subsets of >= 2 partitions up to a cap, or a listed set):
   the parameter average of each mixture's partition models (``average_checkpoints``);
4. for ``train_mixtures`` of them, a run on the union of the partitions' training sets
   (equal shares) with n x ``partition_tokens`` tokens, otherwise as in step 2;
5. the perplexity of every model on every eval set: the experiment's ``D_eval`` and one
   eval set per partition (documents of that partition's concepts, generated with a seed
   derived from the eval seed).

Tables (pandas / DuckDB):

* ``merging.parquet``: one row per (seed, mixture, eval set): ``merge_perplexity``,
  ``mixture_perplexity`` (NaN where the mixture was not trained), and the baselines
  ``component_mean_perplexity`` (the mean perplexity of the mixture's partition models)
  and ``seed_perplexity``, with the matching losses (nats per token);
* ``merging_models.parquet``: one row per (model, eval set) with its role (seed,
  partition, merge, mixture), loss, perplexity and oracle gap.

The averaging is plain code on purpose (a weighted sum of tensors is the product); model
soups and the ez-data-ablations scripts do the same on ``state_dict`` tensors.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from divlab.errors import ConfigError, DataError
from divlab.experiments import plan as planning
from divlab.experiments import steps
from divlab.experiments.spec import CommonSpec
from divlab.io import atomic_directory, read_json, write_json
from divlab.specs import Spec

if TYPE_CHECKING:
    import pandas as pd

WEIGHTS = "model.safetensors"
SIDECAR = "divlab.json"
# Files of a checkpoint folder that describe one training run, not the merged weights.
NOT_COPIED = {WEIGHTS, SIDECAR, "trainer_state.pt", "model.safetensors.index.json"}
# config.json fields that may differ between checkpoints of one architecture.
VOLATILE_CONFIG = {"_name_or_path", "transformers_version", "torch_dtype", "dtype"}


# ---- averaging checkpoints -------------------------------------------------------------


def average_checkpoints(
    paths: list[str | Path],
    out: str | Path,
    weights: list[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the parameter average of the checkpoints ``paths`` to folder ``out``.

    theta = sum_i w_i theta_i / sum_i w_i for every floating-point tensor (summed in float64,
    then cast back to the tensor's dtype); ``weights`` default to uniform. Every other
    tensor (integer buffers) must be equal in all checkpoints and is copied. ``config.json``,
    the generation config and tokenizer files come from the first checkpoint; ``divlab.json``
    records the sources and weights. The folder is written atomically and loads with
    ``AutoModelForCausalLM.from_pretrained``.

    Errors: no checkpoint, a folder without ``model.safetensors``, weights that are not
    positive or not one per checkpoint, and checkpoints of different architectures (their
    configs, tensor names or tensor shapes differ; the first offender is named).
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("averaging needs at least one checkpoint folder")
    normalised = _normalised_weights(weights, len(paths))
    for path in paths:
        if not (path / WEIGHTS).is_file():
            hint = " (sharded checkpoints are not supported)" if path.is_dir() else ""
            raise DataError(
                f"{path} has no {WEIGHTS}{hint}; pass checkpoint folders such as a run's model/"
            )
    _check_configs(paths)
    with safe_open(str(paths[0] / WEIGHTS), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})

    reference = load_file(str(paths[0] / WEIGHTS))
    total = {name: _scaled(t, normalised[0]) for name, t in reference.items()}
    for path, weight in zip(paths[1:], normalised[1:], strict=True):
        tensors = load_file(str(path / WEIGHTS))
        _check_tensors(paths[0], reference, path, tensors)
        for name, tensor in tensors.items():
            if tensor.is_floating_point():
                total[name] += weight * tensor.to(torch.float64)
            elif not torch.equal(tensor, reference[name]):
                raise DataError(
                    f"non-float tensor {name!r} differs between {paths[0]} and {path}; only "
                    "floating-point parameters can be averaged"
                )
        del tensors
    merged = {
        name: total[name].to(t.dtype) if t.is_floating_point() else t.clone()
        for name, t in reference.items()
    }

    sources = [str(p.resolve()) for p in paths]
    with atomic_directory(out, overwrite=overwrite) as tmp:
        save_file(merged, str(tmp / WEIGHTS), metadata={**metadata, "format": "pt"})
        for item in sorted(paths[0].iterdir()):
            if item.is_file() and item.name not in NOT_COPIED:
                shutil.copy2(item, tmp / item.name)
        write_json(
            tmp / SIDECAR,
            {
                "kind": "merge",
                "method": "parameter average (float tensors; others copied)",
                "sources": sources,
                "weights": [float(w) for w in (weights or [1.0] * len(paths))],
                "normalised_weights": [float(w) for w in normalised],
            },
        )
    return Path(out)


def _scaled(tensor, weight: float):
    import torch

    return weight * tensor.to(torch.float64) if tensor.is_floating_point() else tensor


def _normalised_weights(weights, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ConfigError(f"{len(weights)} weights for {n} checkpoints; give one per checkpoint")
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(f"weights must be positive numbers, got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


def _check_configs(paths: list[Path]) -> None:
    """Same architecture: every config.json equal to the first, volatile fields aside."""
    configs = []
    for path in paths:
        if not (path / "config.json").is_file():
            raise DataError(f"{path} has no config.json; pass Hugging Face checkpoint folders")
        config = json.loads((path / "config.json").read_text())
        configs.append({k: v for k, v in config.items() if k not in VOLATILE_CONFIG})
    first = configs[0]
    for path, config in zip(paths[1:], configs[1:], strict=True):
        for key in sorted(first.keys() | config.keys()):
            if first.get(key) != config.get(key):
                raise ConfigError(
                    f"{path} has another architecture than {paths[0]}: config field {key!r} is "
                    f"{config.get(key)!r} there and {first.get(key)!r} in the first; average "
                    "only checkpoints of one model"
                )


def _check_tensors(first: Path, reference: dict, path: Path, tensors: dict) -> None:
    missing = sorted(reference.keys() - tensors.keys())
    extra = sorted(tensors.keys() - reference.keys())
    if missing or extra:
        name, where = (missing[0], "lacks") if missing else (extra[0], "adds")
        raise ConfigError(
            f"{path} has another architecture than {first}: it {where} tensor {name!r} "
            f"({len(missing)} missing, {len(extra)} extra); average only checkpoints of one model"
        )
    for name, tensor in reference.items():
        other = tensors[name]
        if other.shape != tensor.shape or other.dtype != tensor.dtype:
            raise ConfigError(
                f"{path} has another architecture than {first}: tensor {name!r} is "
                f"{tuple(other.shape)} {other.dtype} there and {tuple(tensor.shape)} "
                f"{tensor.dtype} in the first; average only checkpoints of one model"
            )


# ---- the spec ----------------------------------------------------------------------------


class MergingSection(Spec):
    """What to merge. Partitions are groups of GINC concept ids (``partitions``) or the eval
    concepts split evenly into ``n_partitions`` contiguous groups; mixtures are lists of
    partition indices (0-based)."""

    partitions: list[list[int]] | None = Field(None, description="concept ids of each partition")
    n_partitions: int = Field(3, ge=2, description="without partitions: split the eval concepts")
    mixtures: list[list[int]] | None = Field(
        None, description="the candidate mixtures; default: every subset of >= 2 partitions"
    )
    max_mixture_size: int | None = Field(None, ge=2, description="largest default mixture")
    max_mixtures: int = Field(32, ge=1, description="more default mixtures: a seeded sample")
    train_mixtures: Literal["all"] | int | list[list[int]] = Field(
        "all", description="mixtures also trained: all, how many (a seeded sample), or which"
    )
    weights: list[float] | None = Field(
        None, description="per-partition merge weights (default: a uniform average)"
    )
    seed_concepts: list[int] | None = Field(
        None, description="the seed model's concepts (default: every partition's)"
    )
    seed_tokens: int | None = Field(None, ge=1, description="default: token_budget")
    partition_tokens: int | None = Field(None, ge=1, description="default: token_budget")
    lr: float | None = Field(
        None, gt=0, description="continued pre-training (default: optimizer.lr)"
    )
    selection_seed: int = Field(0, ge=0, description="the samples of mixtures")

    @field_validator("partitions")
    @classmethod
    def _disjoint(cls, v: list[list[int]] | None) -> list[list[int]] | None:
        if v is None:
            return v
        if len(v) < 2 or any(not group for group in v):
            raise ValueError("give at least 2 partitions, each a non-empty list of concept ids")
        ids = [i for group in v for i in group]
        if min(ids) < 0 or len(set(ids)) != len(ids):
            raise ValueError("partitions must hold distinct concept ids >= 0 (no id twice)")
        return v

    @field_validator("weights")
    @classmethod
    def _positive(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not all(math.isfinite(w) and w > 0 for w in v):
            raise ValueError("merge weights must be positive numbers")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MergingSection:
        explicit = "n_partitions" in self.model_fields_set
        if self.partitions is not None and explicit and self.n_partitions != len(self.partitions):
            raise ValueError(
                f"n_partitions ({self.n_partitions}) disagrees with the "
                f"{len(self.partitions)} listed partitions; give one of the two"
            )
        count = self.count
        if self.weights is not None and len(self.weights) != count:
            raise ValueError(f"weights: give one per partition ({count}), not {len(self.weights)}")
        listed = list(self.mixtures or [])
        if isinstance(self.train_mixtures, list):
            listed += self.train_mixtures
        for mixture in listed:
            if len(mixture) < 2 or len(set(mixture)) != len(mixture):
                raise ValueError(f"mixture {mixture}: list >= 2 distinct partition indices")
            if min(mixture) < 0 or max(mixture) >= count:
                raise ValueError(f"mixture {mixture}: partition indices run from 0 to {count - 1}")
        if self.mixtures is not None:
            keys = [tuple(sorted(m)) for m in self.mixtures]
            if len(set(keys)) != len(keys):
                raise ValueError("mixtures lists a mixture twice")
        if isinstance(self.train_mixtures, int) and self.train_mixtures < 1:
            raise ValueError("train_mixtures must be at least 1 (or 'all', or a list)")
        return self

    @property
    def count(self) -> int:
        return len(self.partitions) if self.partitions is not None else self.n_partitions


class MergingExperimentSpec(CommonSpec):
    """``kind: merging``: does the parameter average of partition models predict the
    model trained on their mixture (see the module docstring)?"""

    kind: Literal["merging"]
    merging: MergingSection = MergingSection()

    @model_validator(mode="after")
    def _merging_fits(self) -> MergingExperimentSpec:
        if self.is_text:
            raise ValueError("merging experiments use GINC partitions; drop eval.text")
        section = self.merging
        if section.partitions is None and section.n_partitions > self.eval.n_concepts:
            raise ValueError(
                f"merging.n_partitions ({section.n_partitions}) exceeds the eval set's "
                f"{self.eval.n_concepts} concepts; lower it or raise eval.n_concepts"
            )
        for field in ("seed_tokens", "partition_tokens"):
            value = getattr(section, field)
            if value is not None and value < self.batch_tokens:
                raise ValueError(
                    f"merging.{field} ({value}) is below one batch ({self.batch_tokens})"
                )
        if section.seed_concepts is not None and (
            not section.seed_concepts or min(section.seed_concepts) < 0
        ):
            raise ValueError("merging.seed_concepts must list concept ids >= 0")
        candidates = candidate_mixtures(section)
        if isinstance(section.train_mixtures, int) and section.train_mixtures > len(candidates):
            raise ValueError(
                f"merging.train_mixtures ({section.train_mixtures}) exceeds the "
                f"{len(candidates)} candidate mixtures"
            )
        if isinstance(section.train_mixtures, list):
            unknown = [m for m in section.train_mixtures if tuple(sorted(m)) not in candidates]
            if unknown:
                raise ValueError(f"merging.train_mixtures {unknown} are not candidate mixtures")
        return self


SPEC = MergingExperimentSpec


# ---- the plan ----------------------------------------------------------------------------


def partitions(spec: MergingExperimentSpec) -> list[list[int]]:
    """The concept ids of each partition."""
    section = spec.merging
    if section.partitions is not None:
        return [list(group) for group in section.partitions]
    groups = np.array_split(np.arange(spec.eval.n_concepts), section.n_partitions)
    return [group.tolist() for group in groups]


def candidate_mixtures(section: MergingSection) -> list[tuple[int, ...]]:
    """The mixtures to merge, as sorted tuples of partition indices: the listed ones, or
    every subset of size 2 .. ``max_mixture_size`` (by size, then lexicographic), a seeded
    sample of ``max_mixtures`` of them when there are more."""
    if section.mixtures is not None:
        return [tuple(sorted(m)) for m in section.mixtures]
    count = section.count
    largest = min(section.max_mixture_size or count, count)
    every = [
        c for size in range(2, largest + 1) for c in itertools.combinations(range(count), size)
    ]
    if len(every) <= section.max_mixtures:
        return every
    chosen = _rng(section, 0).choice(len(every), size=section.max_mixtures, replace=False)
    return [every[i] for i in sorted(chosen)]


def trained_mixtures(section: MergingSection) -> list[tuple[int, ...]]:
    """The candidate mixtures that are also trained (a seeded sample when a count)."""
    candidates = candidate_mixtures(section)
    if section.train_mixtures == "all":
        return candidates
    if isinstance(section.train_mixtures, list):
        wanted = {tuple(sorted(m)) for m in section.train_mixtures}
        return [m for m in candidates if m in wanted]
    chosen = _rng(section, 1).choice(len(candidates), size=section.train_mixtures, replace=False)
    return [candidates[i] for i in sorted(chosen)]


def _rng(section: MergingSection, stream: int) -> np.random.Generator:
    return np.random.default_rng([section.selection_seed, stream])


def derived_seed(base: int, *keys: int) -> int:
    """A data seed derived from one of the spec's seeds (independent streams per key)."""
    return int(np.random.SeedSequence([base, *keys]).generate_state(1)[0])


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


# ---- data ---------------------------------------------------------------------------------


def partition_eval_set(spec, root: Path, index: int, concepts: list[int]) -> Path:
    """The eval documents of one partition's concepts: like ``D_eval`` (same size, family
    and oracle) without prompts, from a seed derived from the eval seed."""
    return steps.ginc_eval_set(
        spec,
        root,
        concepts,
        derived_seed(spec.eval.seed, index + 1),
        f"eval-{partition_name(index)}",
    )


def union_set(root: Path, name: str, parts: list[Path]) -> Path:
    """The union of the partitions' training sets (each the same size: equal shares)."""
    import pyarrow as pa

    from divlab.data.store import open_dataset, write_dataset

    path = root / "data" / f"mixture-{name}-{planning.stable_hash([steps.relative(p, root) for p in parts], 8)}"
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
    from divlab.data.store import open_dataset
    from divlab.devices import resolve_device
    from divlab.evaluate.loss import EvalSet
    from divlab.evaluate.model import HFLanguageModel
    from divlab.train.checkpoint import load_model

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
    from divlab.experiments.execute import torch_threads
    from divlab.experiments.executors import available_cores

    log = steps.logger(log, progress)
    root = steps.claim_folder(Path(out).resolve(), spec)
    executor = executor or steps.executor_for(spec)
    started = steps.now()
    # This process's stages (data, merges, evaluations) run alone: every core, unless the
    # spec pins threads (on a shared machine, fewer threads than busy cores is faster).
    threads = spec.executor.threads_per_worker or available_cores()

    with torch_threads(threads):
        log("data: eval sets and training sets")
        eval_sets, data = prepare_data(spec, root)
    seed_runs, continued, models = plan_runs(spec, root, data, eval_sets["all"])
    payloads = [*seed_runs, *continued]
    ran_now = len(steps.unfinished(payloads))
    steps.run_all(seed_runs, executor, progress, "seed models", log)  # the others start from them
    steps.run_all(continued, executor, progress, "continued pre-training", log)

    with torch_threads(threads):
        merged_now = merge_all(spec, root, models)
        log(f"merges: {merged_now} written now")
        paths = {m["key"]: m["path"] for m in models}
        scores, evaluated_now = evaluate_models(paths, eval_sets, root / "evaluations", spec)
        log(f"evaluations: {evaluated_now} models now, {len(models)} in all")

    models_table = model_table(models, scores)
    tables = {"merging": root / "merging.parquet", "models": root / "merging_models.parquet"}
    _write_parquet(mixture_table(models_table), tables["merging"])
    _write_parquet(models_table, tables["models"])
    result = {
        "runs": len(payloads),
        "ran_now": ran_now,
        "merged_now": merged_now,
        "evaluated_now": evaluated_now,
        **{name: str(path) for name, path in tables.items()},
    }
    return steps.finish(
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
    eval_sets = {"all": steps.ginc_eval_set(spec, root)}
    for i, group in enumerate(groups):
        eval_sets[partition_name(i)] = partition_eval_set(spec, root, i, group)
    parts = [
        steps.ginc_training_set(
            spec, root, partition_name(i), group, derived_seed(train_seed, i + 1)
        )
        for i, group in enumerate(groups)
    ]
    data = {
        "seed": steps.ginc_training_set(
            spec, root, "seed", seed_concepts(spec), derived_seed(train_seed, 0)
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

    def add(payload: dict, seed: int, role: str, name: str, members: tuple[int, ...]) -> None:
        path = Path(payload["out"]) / "model"
        models.append(
            {
                "key": payload["run_id"],
                "seed": seed,
                "role": role,
                "name": name,
                "members": members,
                "path": path,
            }
        )

    for s in spec.seeds:
        seed_run = steps.run_payload(
            spec, root, "seed", data["seed"], s, eval_data, token_budget=seed_tokens
        )
        seed_runs.append(seed_run)
        add(seed_run, s, "seed", "seed", ())
        init = str(Path(seed_run["out"]) / "model")
        partition_models = []
        for i, part in enumerate(data["partitions"]):
            payload = steps.run_payload(
                spec, root, partition_name(i), part, s, eval_data,
                token_budget=partition_tokens, init_from=init, **recipe,
            )  # fmt: skip
            continued.append(payload)
            add(payload, s, "partition", partition_name(i), (i,))
            partition_models.append(Path(payload["out"]) / "model")
        for m, union in data["mixtures"].items():
            payload = steps.run_payload(
                spec, root, f"mix-{mixture_name(m)}", union, s, eval_data,
                token_budget=len(m) * partition_tokens, init_from=init, **recipe,
            )  # fmt: skip
            continued.append(payload)
            add(payload, s, "mixture", mixture_name(m), m)
        for m in candidate_mixtures(spec.merging):
            sources = [partition_models[i] for i in m]
            weights = [spec.merging.weights[i] for i in m] if spec.merging.weights else None
            digest = planning.stable_hash([[steps.relative(p, root) for p in sources], weights], 8)
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
    import pandas as pd

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


def _write_parquet(table: pd.DataFrame, path: Path) -> None:
    """Through a temp file and a rename, like every other result."""
    import os

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _float(value) -> float:
    return float("nan") if value is None else float(value)


def mixture_table(models: pd.DataFrame) -> pd.DataFrame:
    """One row per (seed, mixture, eval set) from the models table: the merge's and the
    mixture-trained model's loss and perplexity, the mean over the mixture's partition
    models (``component_mean_*``) and the seed model's."""
    import pandas as pd

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
