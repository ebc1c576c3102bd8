"""Resolve an experiment spec into conditions (training sets) and runs (condition x seed).

A condition's id is a hash of what defines its data (family, concepts, knobs, seed), and a
run's id a hash of its condition, its resolved training recipe, its seed and the
evaluation settings: the same spec gives the same ids on every machine, so a relaunch finds
the runs already done, and a changed recipe never reuses a stale result.

Seeds: a run's seed sets the model's init and the order of its batches; the training
documents of a condition are one fixed draw (``training_data.seed``), shared by its seeds,
so the diversity and alignment of a condition are measured once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from divlab.data.ginc.dataset import ConceptSetSpec, GincSpec, SplitSpec
from divlab.errors import ConfigError
from divlab.experiments.spec import ExperimentSpec, TrainingSetSpec

# Fields of a TrainSpec that may differ between the runs of a fair experiment.
PER_RUN_FIELDS = ("data", "eval_data", "seed")


def stable_hash(obj, length: int = 12) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass
class Condition:
    """One training set of the plan."""

    name: str
    plan: str
    data: dict  # a GincSpec dump, or {"text": [...], "tokenizer": ...}
    k: int | None = None
    k_added: int = 0
    n_concepts: int | None = None
    base_condition: str | None = None
    train_overrides: dict = field(default_factory=dict)
    curation: dict | None = None  # a CurationSpec dump: applied to the data before training

    @property
    def id(self) -> str:
        key = self.data if self.curation is None else [self.data, self.curation]
        return f"{self.name}-{stable_hash(key, 8)}"

    @property
    def raw_id(self) -> str:
        """The uncurated data's id (shared by every arm curated from the same data)."""
        return f"raw-{stable_hash(self.data, 8)}"

    @property
    def is_text(self) -> bool:
        return "text" in self.data


@dataclass
class RunPlan:
    """One training run: a condition, a seed and the full training recipe."""

    condition: Condition
    seed: int
    train: dict  # TrainSpec fields, data paths filled in by the runner

    @property
    def id(self) -> str:
        recipe = {k: v for k, v in self.train.items() if k not in PER_RUN_FIELDS}
        return f"{self.condition.name}-s{self.seed}-" + stable_hash(
            [self.condition.id, self.seed, recipe]
        )


def _ginc_data(spec: ExperimentSpec, concepts: ConceptSetSpec, entry: TrainingSetSpec | None):
    knobs = spec.training_data
    split = SplitSpec(
        n_tokens=(entry and entry.n_tokens) or knobs.n_tokens,
        doc_length=knobs.doc_length,
        weighting=(entry and entry.weighting) or knobs.weighting,
        zipf_exponent=(
            entry.zipf_exponent
            if entry and entry.zipf_exponent is not None
            else knobs.zipf_exponent
        ),
        noise=(entry and entry.noise) or knobs.noise,
        duplicates=(entry and entry.duplicates) or knobs.duplicates,
        oracle=False,  # the oracle is measured on the eval set; training data needs none
    )
    ginc = GincSpec(
        family=spec.family,
        concepts=concepts,
        seed=knobs.seed,
        splits={"train": split},
        prompts=None,
    )
    return ginc.model_dump(mode="json")


def eval_data_spec(spec: ExperimentSpec) -> dict:
    """``D_eval``: the eval concepts' documents (own seed and split stream) and ICL prompts."""
    ev = spec.eval
    ginc = GincSpec(
        family=spec.family,
        concepts=ConceptSetSpec(plan="eval", n_eval=ev.n_concepts),
        seed=ev.seed,
        splits={"eval": SplitSpec(n_docs=ev.n_docs, doc_length=ev.doc_length)},
        prompts=ev.prompts,
    )
    return ginc.model_dump(mode="json")


def conditions(spec: ExperimentSpec) -> list[Condition]:
    """The plan's training sets, in a stable order."""
    plan, n_eval = spec.plan, spec.eval.n_concepts
    out: list[Condition] = []
    if plan.kind == "nested":
        for k in plan.k:
            concepts = ConceptSetSpec(plan="nested", n_eval=n_eval, k=k, order_seed=plan.order_seed)
            out.append(Condition(f"k={k}", "nested", _ginc_data(spec, concepts, None), k, 0, k))
    elif plan.kind == "added":
        for k in plan.k:
            for k_added in plan.k_added:
                if k == 0 and k_added == 0:
                    continue
                concepts = ConceptSetSpec(
                    plan="added", n_eval=n_eval, k=k, k_added=k_added, order_seed=plan.order_seed
                )
                base = f"k={k}+0" if k_added and 0 in plan.k_added and k > 0 else None
                out.append(
                    Condition(
                        f"k={k}+{k_added}",
                        "added",
                        _ginc_data(spec, concepts, None),
                        k,
                        k_added,
                        k + k_added,
                        base,
                    )
                )
    else:
        for entry in plan.sets:
            if entry.text is not None:
                data = {"text": list(entry.text), "tokenizer": spec.tokenizer}
                n_concepts = None
            else:
                data = _ginc_data(spec, entry.concepts, entry)
                n_concepts = len(entry.concepts.resolve())
            out.append(
                Condition(
                    entry.name,
                    "sets",
                    data,
                    entry.concepts and entry.concepts.k,
                    entry.concepts.k_added if entry.concepts else 0,
                    n_concepts,
                    train_overrides=entry.train or {},
                    curation=entry.curate.model_dump(mode="json") if entry.curate else None,
                )
            )
    return out


def noise_floor_condition(spec: ExperimentSpec) -> Condition | None:
    """A 1-concept training set under the same knobs: the diversity coefficient's floor."""
    if spec.is_text:
        return None
    concepts = ConceptSetSpec(
        plan="nested", n_eval=spec.eval.n_concepts, k=1, order_seed=spec.plan.order_seed
    )
    return Condition("k=1", "nested", _ginc_data(spec, concepts, None), 1, 0, 1)


def train_recipe(spec: ExperimentSpec, overrides: dict | None = None) -> dict:
    """The TrainSpec fields every run shares (data paths and seed left to the runner)."""
    recipe = {
        "split": "train",
        "eval_split": "eval",
        "model": spec.model.model_dump(mode="json"),
        "token_budget": spec.token_budget,
        "seq_len": spec.seq_len,
        "batch_tokens": spec.batch_tokens,
        "optimizer": spec.optimizer.model_dump(mode="json"),
        "schedule": spec.schedule.model_dump(mode="json"),
        "eval_every_tokens": spec.eval_every_tokens,
        "eval_docs": spec.curve_docs,
        "device": spec.device,
    }
    for key, value in (overrides or {}).items():
        if key in PER_RUN_FIELDS:
            raise ConfigError(f"a set's train overrides may not set {key!r} (the runner does)")
        recipe[key] = value
    return recipe


def runs(spec: ExperimentSpec, conditions_: list[Condition] | None = None) -> list[RunPlan]:
    """Every (condition, seed) run, checked for fairness first."""
    conditions_ = conditions_ if conditions_ is not None else conditions(spec)
    plans = [
        RunPlan(
            c,
            seed,
            {
                **train_recipe(spec, c.train_overrides),
                "seed": seed,
                "evaluation": spec.evaluation.model_dump(mode="json"),
            },
        )
        for c in conditions_
        for seed in spec.seeds
    ]
    check_fairness(plans, spec.allow_unfair)
    return plans


def check_fairness(plans: list[RunPlan], allow_unfair: bool = False) -> None:
    """Refuse an experiment whose runs differ in more than their data and seed."""
    if allow_unfair or not plans:
        return
    reference = plans[0]
    shared = {k: v for k, v in reference.train.items() if k not in PER_RUN_FIELDS}
    for plan in plans[1:]:
        recipe = {k: v for k, v in plan.train.items() if k not in PER_RUN_FIELDS}
        if recipe != shared:
            fields = sorted(
                k for k in shared.keys() | recipe.keys() if shared.get(k) != recipe.get(k)
            )
            raise ConfigError(
                f"unfair experiment: run {plan.condition.name!r} differs from "
                f"{reference.condition.name!r} in {', '.join(fields)}, not only in its data; "
                "every run must share the architecture, optimizer, schedule and token budget "
                "(set allow_unfair: true to run it anyway)"
            )


def data_path(root: Path, condition: Condition) -> Path:
    return root / "data" / condition.id
