"""The spec of ``kind: collapse`` (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from divlab.errors import ConfigError
from divlab.experiments.kinds.collapse import chains, workflows
from divlab.experiments.spec import CommonSpec, MeasureSpec
from divlab.measure.probe import ProbeSource
from divlab.specs import Spec

TABLES = {
    "lm": "collapse.parquet",
    "gaussian": "collapse_gaussian.parquet",
    "regression": "collapse_regression.parquet",
    "discrete": "collapse_discrete.parquet",
    "absorption": "collapse_absorption.parquet",
}


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
# The language-model workflows (package docstring): what each generation trains on.
WORKFLOWS = ("replace", "accumulate", "accumulate-fixed", "accumulate-subsample")
Workflow = Literal["replace", "accumulate", "accumulate-fixed", "accumulate-subsample"]
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


ChainWorkflow = Literal["replace", "accumulate", "accumulate-subsample"]


def _chain_workflows(v: list[str]) -> list[str]:
    if not v or len(set(v)) != len(v):
        raise ValueError(
            f"must be a non-empty list of distinct workflows from {workflows.WORKFLOWS}"
        )
    return [w for w in workflows.WORKFLOWS if w in v]


class GaussianChainSpec(_ChainSpec):
    """``X_0 ~ N(mu, sigma^2)``; each fit estimates mean and variance from ``M_i`` samples
    (``known_variance``: the mean only), by workflow (``collapse.workflows``)."""

    smallest_M: ClassVar[int] = 2  # a sample variance
    estimator: Literal["unbiased", "biased"] = "unbiased"
    mu: float = 0.0
    sigma: float = Field(1.0, gt=0)
    workflows: list[ChainWorkflow] = Field(
        default_factory=lambda: ["replace"],
        description="replace (fit on the last fit's samples), accumulate (on every sample so "
        "far), accumulate-subsample (on `subsample` of them)",
    )
    known_variance: bool = Field(False, description="refit the mean only (variance known)")
    subsample: int | None = Field(None, ge=2, description="accumulate-subsample: S (default M)")

    @field_validator("workflows")
    @classmethod
    def _workflows(cls, v: list[str]) -> list[str]:
        return _chain_workflows(v)

    @model_validator(mode="after")
    def _workflow_settings(self):
        others = self.workflows != ["replace"] or self.known_variance
        if others and not isinstance(self.M, int):
            raise ValueError("workflows other than replace, and known_variance, need a constant M")
        _subsample_fits(self.workflows, self.subsample, self.M if isinstance(self.M, int) else 0)
        return self


class RegressionChainSpec(Spec):
    """Linear regression (Gerstgrasser et al. 2024): a fixed design of ``T`` rows and ``d``
    features, labels of each generation from the last fit plus noise ``sigma``."""

    T: int = Field(40, description="samples (rows) per generation; must exceed d + 1")
    d: int = Field(10, ge=1, description="features")
    sigma: float = Field(1.0, gt=0)
    generations: int = Field(20, ge=1, le=10_000, description="fits")
    chains: int = Field(2000, ge=2, description="independent chains")
    seed: int = Field(0, ge=0)
    workflows: list[ChainWorkflow] = Field(
        default_factory=lambda: list(workflows.WORKFLOWS),
        description="as for the Gaussian chain",
    )
    subsample: int | None = Field(None, description="accumulate-subsample: rows S (default T)")

    @field_validator("workflows")
    @classmethod
    def _workflows(cls, v: list[str]) -> list[str]:
        return _chain_workflows(v)

    @model_validator(mode="after")
    def _shape(self):
        if self.d + 1 >= self.T:
            raise ValueError(f"T ({self.T}) must exceed d + 1 = {self.d + 1} (OLS test error)")
        _subsample_fits(self.workflows, self.subsample, self.T, least=self.d)
        return self


def _subsample_fits(chosen: list[str], subsample: int | None, first: int, least: int = 2) -> None:
    if subsample is None:
        return
    if "accumulate-subsample" not in chosen:
        raise ValueError("subsample needs the accumulate-subsample workflow")
    if subsample > first:
        raise ValueError(
            f"subsample ({subsample}) is larger than the first pool it is drawn from ({first}); "
            "use at most that"
        )
    if subsample < least:
        raise ValueError(f"subsample ({subsample}) must be at least {least}")


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
    workflows: list[Workflow] = Field(
        default_factory=lambda: ["replace"],
        description="replace, accumulate, accumulate-fixed, accumulate-subsample (docstring)",
    )
    real_fraction: list[Fraction] | None = Field(
        None,
        description="replace: one chain (arm) per value, the share of real documents kept "
        "(default [0.0, 0.1])",
    )
    subsample_docs: int | None = Field(
        None,
        ge=2,
        description="accumulate-subsample: documents drawn from the pool per generation "
        "(default: the real corpus's)",
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
    def _arms(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return None
        if not v or len({arm_name(f) for f in v}) != len(v):
            raise ValueError("must be a non-empty list of distinct fractions in [0, 1]")
        return sorted(v)

    @field_validator("workflows")
    @classmethod
    def _workflows(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"must be a non-empty list of distinct workflows from {WORKFLOWS}")
        return [w for w in WORKFLOWS if w in v]  # one order for tables and plots

    @property
    def fractions(self) -> list[float]:
        """The replace arms' real shares (none without the replace workflow)."""
        if "replace" not in self.workflows:
            return []
        return self.real_fraction if self.real_fraction is not None else [0.0, 0.1]

    @model_validator(mode="after")
    def _arms_used(self):
        if "replace" not in self.workflows and self.real_fraction is not None:
            raise ValueError(
                "real_fraction sets the arms of the replace workflow (accumulate keeps all the "
                "real data); add replace to workflows or drop real_fraction"
            )
        if "accumulate-subsample" not in self.workflows and self.subsample_docs is not None:
            raise ValueError("subsample_docs needs the accumulate-subsample workflow")
        return self


class CollapseSpec(Spec):
    gaussian: GaussianChainSpec | None = GaussianChainSpec()
    regression: RegressionChainSpec | None = None
    discrete: DiscreteChainSpec | None = DiscreteChainSpec()
    lm: CollapseLMSpec | None = CollapseLMSpec()

    @model_validator(mode="after")
    def _something(self) -> CollapseSpec:
        if not (self.gaussian or self.regression or self.discrete or self.lm):
            raise ValueError("enable at least one of gaussian, regression, discrete and lm")
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
        pool = 2 * n_documents(self)  # generation 1's: the real corpus and one synthetic
        if lm.subsample_docs is not None and lm.subsample_docs > pool:
            raise ValueError(
                f"collapse.lm.subsample_docs ({lm.subsample_docs}) is larger than the first "
                f"pool it is drawn from ({pool} documents: the {n_documents(self)} real ones and "
                "generation 0's corpus); use at most that, or more training_data.n_tokens"
            )
        if lm.diversity.enabled:
            d = lm.diversity
            smallest = n_documents(self)
            if "accumulate-subsample" in lm.workflows and lm.generations > 1:
                smallest = min(smallest, lm.subsample_docs or smallest)
            tokens = smallest * (length + 1)
            if d.n_batches * d.batch_size * d.seq_len > tokens:
                raise ValueError(
                    f"collapse.lm.diversity needs {d.n_batches} x {d.batch_size} x {d.seq_len} "
                    f"tokens but the smallest data set measured has about {tokens}; use fewer "
                    "or smaller batches, more training_data.n_tokens (or subsample_docs), or "
                    "diversity.enabled: false"
                )
        return self


def window(spec: CollapseExperimentSpec) -> int:
    return spec.collapse.lm.window or spec.seq_len // 2


def n_documents(spec) -> int:
    """Documents of the real corpus (and of every generated one)."""
    return math.ceil(spec.training_data.n_tokens / spec.training_data.doc_length)


def arm_name(fraction: float) -> str:
    return f"real{fraction:g}"


@dataclass(frozen=True)
class Arm:
    """One chain of generations: a workflow (and for replace, the real share kept)."""

    name: str
    workflow: str
    real_fraction: float | None = None

    @property
    def accumulates(self) -> bool:
        return self.workflow != "replace"

    def budget(self, spec: CollapseExperimentSpec, generation: int) -> int:
        """Training tokens of ``generation``: the spec's budget, or for ``accumulate`` that
        budget times the pool's size in real corpora (the same epochs over a growing pool)."""
        if self.workflow == "accumulate":
            return spec.token_budget * (generation + 1)
        return spec.token_budget

    def pool_docs(self, spec: CollapseExperimentSpec, generation: int) -> int:
        """Documents generation ``generation`` trains on."""
        n = n_documents(spec)
        if self.workflow in ("accumulate", "accumulate-fixed"):
            return n * (generation + 1)
        if self.workflow == "accumulate-subsample" and generation > 0:
            return spec.collapse.lm.subsample_docs or n
        return n


def arms(lm: CollapseLMSpec) -> list[Arm]:
    """The arms of the recursion: replace's per real fraction (named ``real<f>`` as
    before workflows existed, so their run ids stay), then one per accumulating workflow."""
    out = []
    for workflow in lm.workflows:
        if workflow == "replace":
            out += [Arm(arm_name(f), "replace", f) for f in lm.fractions]
        else:
            out.append(Arm(workflow, workflow))
    return out
