"""The spec of ``kind: mixtures`` (see the package docstring)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from divlab.experiments.domains import DomainSpec, check_domains
from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec

PREDICTORS = ("linear", "trees", "law")


class MixturesSection(Spec):
    """The sweep: domains, the Dirichlet of proxy mixtures, the target, the regressions."""

    domains: list[DomainSpec]
    n_mixtures: int = Field(16, ge=2, description="proxy mixtures (one run each per seed)")
    concentration: float | list[float] = Field(
        1.0, description="Dirichlet alpha > 0: one value, or one per domain"
    )
    seed: int = Field(0, ge=0, description="the mixtures' and their documents' seed")
    target: str = Field("all", description="'all' (every domain's eval docs) or a domain name")
    predictor: Literal["auto", "linear", "trees", "law"] = "auto"
    cv_folds: int | None = Field(None, ge=2, description="k-fold CV; default leave-one-out")
    n_candidates: int = Field(10_000, ge=1, description="Dirichlet samples searched")
    mixing_law: bool = Field(True, description="fit L(r) = c + k exp(t . r) too")
    extrapolate: bool = Field(
        False,
        description="search the whole simplex; default: only mixtures whose every weight "
        "lies within the proxies' range for that domain (regressions fitted on 12 points "
        "are not to be trusted at the vertices)",
    )

    @field_validator("concentration")
    @classmethod
    def _positive(cls, v: float | list[float]) -> float | list[float]:
        values = v if isinstance(v, list) else [v]
        if not values or min(values) <= 0:
            raise ValueError(
                f"the Dirichlet concentration must be > 0 (got {v}); use e.g. 1.0 for "
                "uniform over the simplex, < 1 for mixtures near its vertices"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MixturesSection:
        check_domains(self.domains)
        names = [d.name for d in self.domains]
        if isinstance(self.concentration, list) and len(self.concentration) != len(names):
            raise ValueError(
                f"concentration lists {len(self.concentration)} values for {len(names)} "
                "domains; give one per domain, or a single number"
            )
        if self.target != "all" and self.target not in names:
            raise ValueError(f"target {self.target!r} is not a domain; use 'all' or one of {names}")
        if self.predictor == "law" and not self.mixing_law:
            raise ValueError("predictor 'law' needs mixing_law: true")
        return self

    def alpha(self) -> np.ndarray:
        n = len(self.domains)
        c = self.concentration
        return np.asarray(c if isinstance(c, list) else [c] * n, float)


class MixturesExperimentSpec(CommonSpec):
    """``kind: mixtures``: the common recipe plus the ``mixtures`` section."""

    kind: Literal["mixtures"]
    mixtures: MixturesSection

    @model_validator(mode="after")
    def _domains_in_eval(self) -> MixturesExperimentSpec:
        if self.is_text:
            raise ValueError("mixture sweeps run on GINC domains; remove eval.text")
        check_domains(self.mixtures.domains, self.eval.n_concepts)
        n = len(self.mixtures.domains)
        if self.evaluation.limit < n:
            raise ValueError(
                f"evaluation.limit ({self.evaluation.limit}) scores fewer documents than there "
                f"are domains ({n}); raise it (a multiple of {n} is balanced)"
            )
        return self
