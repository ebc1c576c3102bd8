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

import functools
from dataclasses import dataclass, field

from divlab.data.ginc.concept_sets import (
    design_correlations,
    random_subsets,
    similarity_spanning_subsets,
)
from divlab.data.ginc.dataset import ConceptSetSpec
from divlab.data.ginc.family import ConceptFamily, FamilySpec
from divlab.data.ginc.truth import ConceptGeometry, ground_truth_diversity, ground_truth_rivals
from divlab.errors import ConfigError
from divlab.experiments.data import ginc_data
from divlab.experiments.ids import run_id, stable_hash
from divlab.experiments.kinds.diversity.spec import SUBSET_PLANS, DiversitySpec, TrainingSetSpec
from divlab.experiments.runs import PER_RUN_FIELDS
from divlab.train import TrainSpec


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
        return run_id(self.condition.name, self.seed, self.condition.id, self.seed, recipe)


def _ginc_data(spec: DiversitySpec, concepts: ConceptSetSpec, entry: TrainingSetSpec | None):
    """A condition's GINC training set: the spec's knobs, or a ``sets`` entry's."""
    if entry is None:
        return ginc_data(spec, concepts)
    return ginc_data(
        spec,
        concepts,
        n_tokens=entry.n_tokens,
        weighting=entry.weighting,
        zipf_exponent=entry.zipf_exponent,
        noise=entry.noise,
        duplicates=entry.duplicates,
    )


def conditions(spec: DiversitySpec) -> list[Condition]:
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
    elif plan.kind in SUBSET_PLANS:
        tag = "s" if plan.kind == "similarity" else "r"
        for k in plan.k:
            for i, subset in enumerate(concept_subsets(spec, k)):
                concepts = ConceptSetSpec(plan="ids", n_eval=n_eval, ids=sorted(subset))
                data = _ginc_data(spec, concepts, None)
                out.append(Condition(f"k={k}-{tag}{i}", plan.kind, data, k, 0, k))
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


# ``design`` is printed for designs of at most this many distinct concepts (its cost is
# one bigram distribution per concept; larger designs are measured on their data)
DESIGN_MAX_CONCEPTS = 512


@functools.lru_cache(maxsize=8)
def family_geometry(family_json: str) -> ConceptGeometry:
    """The Hellinger geometry of a family's concepts, one cache per family (the subset
    plans and ``design`` read it)."""
    return ConceptGeometry(ConceptFamily(FamilySpec.model_validate_json(family_json)))


def concept_subsets(spec: DiversitySpec, k: int) -> list[list[int]]:
    """The concept subsets of size ``k`` of a subset plan (``similarity``: spanning the
    ground-truth diversity at fixed k; ``random-subsets``: seeded random)."""
    plan, n_eval = spec.plan, spec.eval.n_concepts
    if plan.kind == "random-subsets":
        return random_subsets(n_eval, k, plan.subsets, seed=plan.order_seed)
    distances = family_geometry(spec.family.model_dump_json()).hellinger(list(range(n_eval)))
    return similarity_spanning_subsets(distances, k, plan.levels, seed=plan.order_seed)


def design(spec: DiversitySpec, conditions_: list[Condition]) -> dict:
    """Per GINC condition its ground truth (concepts, effective distinct concepts, mean
    pairwise Hellinger: uniform weights) and rivals (coverage and typicality distances to
    C_test), and the Spearman correlations of each ground-truth measure with k, coverage
    and typicality across the conditions: printed before any training, so a design that
    varies diversity only together with a rival is seen at once. Skipped (empty) above
    ``DESIGN_MAX_CONCEPTS`` distinct concepts."""
    eval_ids = list(range(spec.eval.n_concepts))
    sets = {
        c.name: c.data["concepts"].get("ids") or ConceptSetSpec(**c.data["concepts"]).resolve()
        for c in conditions_
        if not c.is_text
    }
    concepts = set(eval_ids).union(*sets.values()) if sets else set()
    if len(concepts) > DESIGN_MAX_CONCEPTS:
        return {"conditions": [], "correlations": {}, "skipped": len(concepts)}
    geometry = family_geometry(spec.family.model_dump_json())
    rows = []
    for name, ids in sets.items():
        truth = ground_truth_diversity(geometry.family, ids, geometry=geometry)
        rivals = ground_truth_rivals(geometry.family, ids, eval_ids, geometry=geometry)
        rows.append({"condition": name, **truth, **rivals})
    if len(rows) < 3:
        return {"conditions": rows, "correlations": {}}
    return {"conditions": rows, "correlations": design_correlations(rows)}


def noise_floor_condition(spec: DiversitySpec) -> Condition | None:
    """A 1-concept training set under the same knobs: the diversity coefficient's floor."""
    if spec.is_text:
        return None
    concepts = ConceptSetSpec(
        plan="nested", n_eval=spec.eval.n_concepts, k=1, order_seed=spec.plan.order_seed
    )
    return Condition("k=1", "nested", _ginc_data(spec, concepts, None), 1, 0, 1)


def runs(spec: DiversitySpec, conditions_: list[Condition] | None = None) -> list[RunPlan]:
    """Every (condition, seed) run, checked for fairness first."""
    conditions_ = conditions_ if conditions_ is not None else conditions(spec)
    plans = [
        RunPlan(
            c,
            seed,
            {
                **spec.train_recipe(c.train_overrides),
                "seed": seed,
                "evaluation": spec.evaluation.dump(),
            },
        )
        for c in conditions_
        for seed in spec.seeds
    ]
    check_overrides(plans)
    check_fairness(plans, spec.allow_unfair)
    return plans


def check_overrides(plans: list[RunPlan]) -> None:
    """A set's free-form ``train`` overrides make a valid recipe, checked with the spec
    (``divlab experiment validate``), not when its runs start after the data is made."""
    checked = set()
    for plan in plans:
        condition = plan.condition
        if not condition.train_overrides or condition.name in checked:
            continue
        checked.add(condition.name)
        recipe = {k: v for k, v in plan.train.items() if k != "evaluation"}
        # the data path is the runner's: any text stands for it here
        TrainSpec.from_dict({**recipe, "data": "-"}, source=f"plan.sets {condition.name!r} train")


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
