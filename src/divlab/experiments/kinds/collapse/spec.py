"""The spec of ``kind: collapse`` (see the package docstring)."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from divlab.errors import ConfigError
from divlab.experiments.kinds.collapse import chains
from divlab.experiments.spec import CommonSpec, MeasureSpec
from divlab.measure.probe import ProbeSource
from divlab.specs import Spec

TABLES = {
    "lm": "collapse.parquet",
    "gaussian": "collapse_gaussian.parquet",
    "discrete": "collapse_discrete.parquet",
    "absorption": "collapse_absorption.parquet",
}


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
# Bounds that keep a spec's check cheap: the schedule and the start distribution are
# built when the spec is validated (an array per fit, per state).
MAX_GENERATIONS = 1_000_000
MAX_SUPPORT = 1_000_000


class _ChainSpec(Spec):
    smallest_M: ClassVar[int] = 1
    M: int | list[int] = Field(100, description="samples per fit, or the schedule M_1 .. M_n")
    generations: int | None = Field(
        None,
        ge=1,
        le=MAX_GENERATIONS,
        description="fits (default: 50 for a constant M, the schedule's length)",
    )
    chains: int = Field(2000, ge=2, description="independent chains")
    seed: int = Field(0, ge=0)

    @property
    def sizes(self) -> list[int]:
        generations = self.generations
        if isinstance(self.M, int) and generations is None:
            generations = 50
        return chains.schedule(self.M, generations).tolist()

    @model_validator(mode="after")
    def _schedule(self):
        try:
            sizes = self.sizes
        except ConfigError as e:
            raise ValueError(str(e)) from None
        except OverflowError:  # numpy's int64
            raise ValueError("M: every sample size must be below 2**63") from None
        if min(sizes) < self.smallest_M:
            raise ValueError(
                f"M: every fit needs at least {self.smallest_M} samples, got {min(sizes)}"
            )
        return self


class GaussianChainSpec(_ChainSpec):
    """``X_0 ~ N(mu, sigma^2)``; each fit estimates mean and variance from ``M_i`` samples."""

    smallest_M: ClassVar[int] = 2  # a sample variance
    estimator: Literal["unbiased", "biased"] = "unbiased"
    mu: float = 0.0
    sigma: float = Field(1.0, gt=0)


class DiscreteChainSpec(_ChainSpec):
    """A categorical over ``support`` equally likely states (default 10) or with the given
    ``probabilities``, refit from ``M_i`` samples each generation."""

    probabilities: list[float] | None = None
    support: int | None = Field(None, ge=2, le=MAX_SUPPORT)
    tail_quantile: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_start(self):
        if self.probabilities is not None and self.support is not None:
            raise ValueError("give probabilities or support for the discrete chain, not both")
        try:
            self.start  # noqa: B018 (validates)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return self

    @property
    def start(self) -> np.ndarray:
        """``p_0``: the probabilities, else uniform over ``support`` (default 10) states."""
        if self.probabilities is not None:
            return chains.start_distribution(self.probabilities, None)
        return chains.start_distribution(None, self.support or 10)


class CollapseLMSpec(Spec):
    """The language-model recursion (see the module docstring)."""

    generations: int = Field(3, ge=1, description="models trained: generation 0 .. n - 1")
    real_fraction: list[Fraction] = Field(
        default_factory=lambda: [0.0, 0.1],
        description="one chain (arm) per value: the share of real documents kept",
    )
    decoding: Literal["sample", "greedy", "beam"] = "sample"
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    num_beams: int = Field(5, ge=2, description="beam: beams per segment")
    prompt_tokens: int = Field(0, ge=0, description="real prefix each document continues")
    window: int | None = Field(None, ge=1, description="context per segment (seq_len // 2)")
    tail_quantile: float = Field(0.1, gt=0, lt=1)
    assignment_noise: float = Field(0.01, gt=0, lt=1, description="substitution rate")
    probe: ProbeSource = Field("random:tiny", description="the diversity probe (fixed)")
    diversity: MeasureSpec = MeasureSpec(
        n_batches=8, batch_size=16, seq_len=64, bootstrap=200, align2_repeats=1
    )

    @field_validator("real_fraction")
    @classmethod
    def _arms(cls, v: list[float]) -> list[float]:
        if not v or len({arm_name(f) for f in v}) != len(v):
            raise ValueError("must be a non-empty list of distinct fractions in [0, 1]")
        return sorted(v)


class CollapseSpec(Spec):
    gaussian: GaussianChainSpec | None = GaussianChainSpec()
    discrete: DiscreteChainSpec | None = DiscreteChainSpec()
    lm: CollapseLMSpec | None = CollapseLMSpec()

    @model_validator(mode="after")
    def _something(self) -> CollapseSpec:
        if self.gaussian is None and self.discrete is None and self.lm is None:
            raise ValueError("enable at least one of gaussian, discrete and lm")
        return self


class CollapseExperimentSpec(CommonSpec):
    """``kind: collapse``: the analytic chains and the LM recursion (module docstring)."""

    kind: Literal["collapse"]
    collapse: CollapseSpec = CollapseSpec()

    @model_validator(mode="after")
    def _lm_fits(self) -> CollapseExperimentSpec:
        lm = self.collapse.lm
        if lm is None:
            return self
        if self.is_text:
            raise ValueError("the collapse LM recursion runs on GINC; remove eval.text")
        length = self.training_data.doc_length
        if lm.prompt_tokens >= length:
            raise ValueError(
                f"collapse.lm.prompt_tokens ({lm.prompt_tokens}) must be below "
                f"training_data.doc_length ({length})"
            )
        if window(self) >= self.seq_len:
            raise ValueError(f"collapse.lm.window must be below seq_len ({self.seq_len})")
        if lm.decoding != "sample" and lm.prompt_tokens == 0:
            raise ValueError(
                f"{lm.decoding} decoding from the same <eos> prompt writes one document over "
                "and over; use decoding: sample, or prompt_tokens > 0 (real prefixes)"
            )
        if lm.diversity.enabled:
            d = lm.diversity
            tokens = n_documents(self) * (length + 1)
            if d.n_batches * d.batch_size * d.seq_len > tokens:
                raise ValueError(
                    f"collapse.lm.diversity needs {d.n_batches} x {d.batch_size} x {d.seq_len} "
                    f"tokens but a corpus has about {tokens}; use fewer or smaller batches, "
                    "more training_data.n_tokens, or diversity.enabled: false"
                )
        return self


def window(spec: CollapseExperimentSpec) -> int:
    return spec.collapse.lm.window or spec.seq_len // 2


def n_documents(spec) -> int:
    """Documents of the real corpus (and of every generated one)."""
    return math.ceil(spec.training_data.n_tokens / spec.training_data.doc_length)


def arm_name(fraction: float) -> str:
    return f"real{fraction:g}"
