"""The spec of ``kind: merging`` (see the package docstring)."""

from __future__ import annotations

import itertools
import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from divlab import seeds
from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec


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
    chosen = seeds.rng(section.selection_seed, 0).choice(
        len(every), size=section.max_mixtures, replace=False
    )
    return [every[i] for i in sorted(chosen)]


def trained_mixtures(section: MergingSection) -> list[tuple[int, ...]]:
    """The candidate mixtures that are also trained (a seeded sample when a count)."""
    candidates = candidate_mixtures(section)
    if section.train_mixtures == "all":
        return candidates
    if isinstance(section.train_mixtures, list):
        wanted = {tuple(sorted(m)) for m in section.train_mixtures}
        return [m for m in candidates if m in wanted]
    chosen = seeds.rng(section.selection_seed, 1).choice(
        len(candidates), size=section.train_mixtures, replace=False
    )
    return [candidates[i] for i in sorted(chosen)]
