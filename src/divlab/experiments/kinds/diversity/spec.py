"""The diversity experiment's spec (``kind: diversity``, the default): one YAML file that
defines a whole Beyond Scale II experiment.

An experiment is an eval set, a list of training-set *conditions* (from a plan), the
measures taken on each condition (Task2Vec diversity, alignment with the eval set,
ground truth) and one training recipe applied to every condition for every seed. Only the
data may differ between runs (``fairness``); ``plan`` resolves the spec
into conditions and runs.

Plans (BRIEF section 2):

* ``nested`` (Plan 1): train on ``C_k``, ``k`` of the eval concepts, for each ``k`` in
  ``plan.k``; ``C_k`` is a subset of ``C_k'`` for ``k < k'``.
* ``added`` (Plan 2): ``C_k`` plus ``k_added`` concepts from outside the eval set, for each
  ``(k, k_added)``; ``k_added = 0`` is each ``k``'s base condition (plot D's reference).
* ``sets``: a free-form list of named training sets (a concept set and its own quality,
  duplication and imbalance knobs, or real-text corpora) for other designs.
* ``similarity`` (diversity at a fixed number of concepts): for each ``k``, ``levels``
  subsets of ``C_test`` from the ``k`` most mutually similar concepts to the ``k`` most
  dissimilar (ground-truth Hellinger geometry; ``concept_sets.similarity_spanning_subsets``);
  several ``k`` make a grid of count x similarity.
* ``random-subsets``: for each ``k``, ``subsets`` seeded random ``k``-subsets of ``C_test``,
  so diversity, coverage and typicality vary naturally and can be separated by partial
  correlation rather than by hand-picked extremes.

The measures beside Task2Vec (``measures``: Vendi, compression, distinct-n, Self-BLEU,
embedding dispersion, eval overlap, coverage, typicality) are taken on every condition;
``judging`` says which of them tracks performance.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from divlab.data.ginc.dataset import ConceptSetSpec, DuplicateSpec, NoiseSpec
from divlab.experiments.spec import CommonSpec, MeasureSpec
from divlab.measure.batches import size_problem
from divlab.measure.probe import ProbeSource
from divlab.specs import Spec
from divlab.train.models import PresetName

METRICS = ("loss", "perplexity", "gap", "icl_accuracy", "edit_distance", "token_match")


class ExactCuration(Spec):
    """Exact dedup: one document per group of identical documents."""

    method: Literal["exact"]


class NearCuration(Spec):
    """MinHash-LSH near dedup (``divlab.curate.minhash``)."""

    method: Literal["near"]
    shingle: Literal["char", "word", "token"] | None = None
    n: int | None = Field(None, ge=1)
    threshold: float = Field(0.8, gt=0, lt=1)
    verify: bool = False


class PerplexityCuration(Spec):
    """Keep a perplexity band (quantiles) under ``model``: a checkpoint folder, or
    ``probe`` for the experiment's trained probe."""

    method: Literal["perplexity"]
    model: str = "probe"
    keep_low: float = Field(0.0, ge=0)
    keep_high: float = Field(0.9, gt=0)


class SemDedupCuration(Spec):
    """SemDeDup under ``model`` (``probe``, a checkpoint, or for text a
    sentence-transformers folder or ``minilm``), keeping ``ratio`` of the documents."""

    method: Literal["semdedup"]
    model: str = "probe"
    clusters: int = Field(20, ge=1, description="k-means clusters")
    ratio: float = Field(0.9, gt=0, le=1, description="fraction kept")


class D4Curation(Spec):
    """D4: SemDeDup to ``r_dedup``, then drop the most prototypical down to ``r_proto``."""

    method: Literal["d4"]
    model: str = "probe"
    clusters: int = Field(20, ge=1, description="k-means clusters")
    r_dedup: float = Field(0.75, gt=0, le=1)
    r_proto: float = Field(0.5, gt=0, le=1)


# A curation applied to a training set before training (an experiment arm). One class per
# method, chosen by ``method``: a field of another method is an error, and cannot change a
# condition's id.
CurationSpec = Annotated[
    ExactCuration | NearCuration | PerplexityCuration | SemDedupCuration | D4Curation,
    Field(discriminator="method"),
]


class TrainingSetSpec(Spec):
    """One named training set of plan ``sets``: GINC concepts with their own knobs, or text."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.=+-]+$")
    concepts: ConceptSetSpec | None = None
    text: list[str] | None = None
    weighting: Literal["uniform", "zipf"] | None = None
    zipf_exponent: float | None = Field(None, ge=0.0)
    noise: NoiseSpec | None = None
    duplicates: DuplicateSpec | None = None
    n_tokens: int | None = Field(None, ge=1)
    train: dict | None = Field(None, description="TrainSpec overrides: unfair, see fairness")
    curate: CurationSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrainingSetSpec:
        if (self.concepts is None) == (self.text is None):
            raise ValueError(f"set {self.name!r}: give exactly one of concepts and text")
        return self


SUBSET_PLANS = ("similarity", "random-subsets")
MAX_SUBSET_EVAL = 2000  # the subset plans hold C_test's distance matrix


class PlanSpec(Spec):
    kind: Literal["nested", "added", "sets", "similarity", "random-subsets"] = "nested"
    k: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    k_added: list[int] = Field(default_factory=lambda: [0])
    order_seed: int = Field(
        0, ge=0, description="the permutation of C_test behind C_k; the subset plans' seed"
    )
    sets: list[TrainingSetSpec] = Field(default_factory=list)
    levels: int = Field(3, ge=2, description="similarity: subsets per k, similar to dissimilar")
    subsets: int = Field(4, ge=1, description="random-subsets: subsets per k")

    @field_validator("k", "k_added")
    @classmethod
    def _distinct_counts(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 0 or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list of distinct integers >= 0")
        return sorted(v)

    @model_validator(mode="after")
    def _plan_fields(self) -> PlanSpec:
        if self.kind == "sets":
            if not self.sets:
                raise ValueError("plan 'sets' needs a non-empty list of sets")
            names = [s.name for s in self.sets]
            if len(set(names)) != len(names):
                raise ValueError("the names of plan.sets must be distinct")
        elif self.sets:
            raise ValueError(f"plan.sets is only read by plan 'sets', not {self.kind!r}")
        if self.kind == "nested" and 0 in self.k:
            raise ValueError("plan 'nested' needs k >= 1 (a training set needs concepts)")
        if self.kind in SUBSET_PLANS and min(self.k) < 2:
            raise ValueError(
                f"plan {self.kind!r} needs k >= 2 (one concept has no diversity to vary)"
            )
        return self


class ProbeSpec(Spec):
    """The probe network of every diversity and alignment number.

    ``source``: ``trained`` (a divlab model of ``preset`` trained once on eval-family data
    for ``token_budget`` tokens, then cached), ``random:PRESET`` (a fixed random init),
    or a model folder / ``.gguf`` file / hub name / ``smollm2`` (real text)."""

    source: ProbeSource = "trained"
    preset: PresetName = "mini"
    token_budget: int = Field(400_000, ge=1)
    seed: int = Field(0, ge=0)


class SideMeasuresSpec(Spec):
    """The measures beside Task2Vec (``divlab.measure.baselines``), on every condition."""

    enabled: bool = True
    sample: int | Literal["auto"] = Field(
        "auto",
        description="documents per Vendi / Self-BLEU sample, the same for every condition "
        "(they grow with it); auto: min(256, half the smallest training set's documents)",
    )
    rounds: int = Field(50, ge=0, description="resamples behind each CI (0: no CIs)")
    ngram: int = Field(2, ge=1, description="Vendi's n-gram order")
    seed: int = Field(0, ge=0)

    @field_validator("sample")
    @classmethod
    def _at_least_two(cls, v):
        if isinstance(v, int) and v < 2:
            raise ValueError("must be at least 2 documents, or auto")
        return v


class DiversitySpec(CommonSpec):
    """``kind: diversity``: the Beyond Scale II experiment (conditions from a plan, their
    Task2Vec diversity and alignment, one run per condition and seed)."""

    kind: Literal["diversity"] = "diversity"
    plan: PlanSpec = PlanSpec()
    probe: ProbeSpec = ProbeSpec()
    diversity: MeasureSpec = MeasureSpec()
    measures: SideMeasuresSpec = SideMeasuresSpec()
    metrics: list[str] = Field(
        default_factory=lambda: ["loss", "gap", "icl_accuracy", "edit_distance"]
    )
    allow_unfair: bool = Field(False, description="let runs differ in more than their data")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DiversitySpec:
        n_eval = self.eval.n_concepts
        if self.plan.kind in SUBSET_PLANS:
            if n_eval > MAX_SUBSET_EVAL:
                raise ValueError(
                    f"plan {self.plan.kind!r} holds C_test's distance matrix: eval.n_concepts "
                    f"must be at most {MAX_SUBSET_EVAL}, not {n_eval}"
                )
            # the subsets asked for per k: levels (similarity) or subsets (random-subsets)
            knob = "levels" if self.plan.kind == "similarity" else "subsets"
            wanted = getattr(self.plan, knob)
            few = [k for k in self.plan.k if k <= n_eval and math.comb(n_eval, k) < wanted]
            if few:
                raise ValueError(
                    f"plan.k {few}: fewer than plan.{knob}={wanted} distinct subsets of the "
                    f"{n_eval} eval concepts (k = n_eval has one); lower {knob} or change k"
                )
        if self.plan.kind in ("nested", "added", *SUBSET_PLANS):
            too_big = [k for k in self.plan.k if k > n_eval]
            if too_big:
                raise ValueError(
                    f"plan.k {too_big} exceed the eval set's {n_eval} concepts "
                    "(eval.n_concepts); lower k or enlarge the eval set"
                )
        if self.plan.kind == "added" and self.plan.k_added == [0]:
            raise ValueError("plan 'added' needs k_added values above 0 (e.g. [0, 4, 16])")
        uses_text = self.eval.text is not None or any(s.text for s in self.plan.sets)
        if uses_text and (self.eval.text is None or self.plan.kind != "sets"):
            raise ValueError(
                "real-text experiments use plan 'sets' with text sets and a text eval set "
                "(eval.text)"
            )
        if uses_text and any(s.concepts for s in self.plan.sets):
            raise ValueError("an experiment is either GINC or real text; do not mix the sets")
        if uses_text and not self.tokenizer:
            raise ValueError("a real-text experiment needs a tokenizer (a path, or bpe:N)")
        if self.diversity.enabled and not uses_text:
            self._check_sizes()
        return self

    def _check_sizes(self) -> None:
        """The eval set and every GINC training set hold the batches the measures draw
        (found here, not after the data is generated)."""
        m = self.diversity
        batches = (m.n_batches, m.batch_size, m.seq_len, m.construction)
        problem = size_problem(self.eval.n_docs, self.eval.doc_length, *batches)
        if problem:
            raise ValueError(
                f"the eval set is too small for the diversity batches: {problem}; raise "
                "eval.n_docs (or eval.doc_length), or lower diversity.n_batches / batch_size"
            )
        sizes = [("training_data.n_tokens", self.training_data.n_tokens)]
        sizes += [
            (f"plan.sets {s.name!r} n_tokens", s.n_tokens)
            for s in self.plan.sets
            if s.n_tokens is not None
        ]
        doc_length = self.training_data.doc_length
        for field, n_tokens in sizes:
            problem = size_problem(n_tokens // doc_length, doc_length, *batches)
            if problem:
                raise ValueError(
                    f"a training set of {n_tokens:,} tokens is too small for the diversity "
                    f"batches ({field}, in documents of training_data.doc_length "
                    f"{doc_length:,}): {problem}; raise its n_tokens or lower "
                    "diversity.n_batches / batch_size"
                )
