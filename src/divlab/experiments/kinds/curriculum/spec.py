"""The spec of ``kind: curriculum`` (see the package docstring)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from divlab.experiments.domains import DomainSpec, check_domains
from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec


class OrderingSpec(Spec):
    """One arm: a document order of the shared training data."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.=+-]+$")
    kind: Literal["shuffle", "staged", "schedule"]
    stages: list[str] | None = Field(None, description="staged: domain names, first to last")
    weights: list[list[float]] | None = Field(
        None, description="schedule: K >= 2 rows of per-domain weights over training progress"
    )

    @model_validator(mode="after")
    def _fields(self) -> OrderingSpec:
        if self.stages is not None and self.kind != "staged":
            raise ValueError(f"ordering {self.name!r}: stages are for kind 'staged' only")
        if (self.weights is not None) != (self.kind == "schedule"):
            raise ValueError(
                f"ordering {self.name!r}: kind 'schedule' needs weights (and only it takes them)"
            )
        return self


def _default_orderings() -> list[OrderingSpec]:
    return [
        OrderingSpec(name="shuffle", kind="shuffle"),
        OrderingSpec(name="staged", kind="staged"),
    ]


class CurriculumSection(Spec):
    domains: list[DomainSpec]
    shares: list[float] | None = Field(None, description="domain token shares; default uniform")
    orderings: list[OrderingSpec] = Field(default_factory=_default_orderings)
    seed: int = Field(0, ge=0, description="the documents' and orders' seed")
    threshold_gap: float = Field(0.1, ge=0, description="threshold = oracle loss + gap")

    @model_validator(mode="after")
    def _consistent(self) -> CurriculumSection:
        check_domains(self.domains)
        names = [d.name for d in self.domains]
        if self.shares is not None:
            if len(self.shares) != len(names) or min(self.shares) <= 0:
                raise ValueError(f"shares needs one weight > 0 per domain ({len(names)})")
            if abs(sum(self.shares) - 1) > 1e-9:
                raise ValueError(f"shares must sum to 1, got {sum(self.shares)}")
        arms = [o.name for o in self.orderings]
        if len(set(arms)) != len(arms):
            raise ValueError(f"ordering names must be distinct, got {arms}")
        if not any(o.kind == "shuffle" for o in self.orderings) or len(arms) < 2:
            raise ValueError("list at least 2 orderings, one of kind 'shuffle' (the reference arm)")
        for o in self.orderings:
            if o.stages is not None and sorted(o.stages) != sorted(names):
                raise ValueError(
                    f"ordering {o.name!r}: stages {o.stages} must list every domain once {names}"
                )
            if o.weights is not None:
                rows = np.asarray(o.weights, float)
                if rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] != len(names):
                    raise ValueError(
                        f"ordering {o.name!r}: weights needs >= 2 rows of {len(names)} "
                        "weights (one per domain)"
                    )
                if rows.min() < 0 or np.any(rows.sum(axis=0) == 0):
                    raise ValueError(
                        f"ordering {o.name!r}: weights must be >= 0 and give every domain "
                        "weight somewhere"
                    )
        return self

    @property
    def reference(self) -> str:
        return next(o.name for o in self.orderings if o.kind == "shuffle")

    def share_vector(self) -> np.ndarray:
        n = len(self.domains)
        return np.asarray(self.shares if self.shares else [1 / n] * n, float)


class CurriculumExperimentSpec(CommonSpec):
    """``kind: curriculum``: the common recipe plus the ``curriculum`` section."""

    kind: Literal["curriculum"]
    curriculum: CurriculumSection

    @model_validator(mode="after")
    def _domains_in_eval(self) -> CurriculumExperimentSpec:
        if self.is_text:
            raise ValueError("curricula run on GINC domains; remove eval.text")
        check_domains(self.curriculum.domains, self.eval.n_concepts)
        n = len(self.curriculum.domains)
        if min(self.curve_docs, self.evaluation.limit) < n:
            raise ValueError(
                f"curve_docs and evaluation.limit must be >= the {n} domains (a multiple of "
                f"{n} is balanced), so that every domain has a learning curve"
            )
        return self
