"""The spec of ``kind: sft`` (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec

SELECTOR_NAMES = ("random", "longest", "quality", "k-center", "quality-diversity")
PLANS = ("quantity", "quality", "diversity", "selectors")


class PoolSpec(Spec):
    """The instruction pool (``pool.build_pool``): in-context tasks of the eval concepts
    with their Bayes answers; every knob recorded per example."""

    size: int = Field(1024, ge=2, description="examples in the pool")
    n_examples: list[int] = Field(default_factory=lambda: [2, 4], description="formats")
    example_lengths: list[int] = Field(default_factory=lambda: [3, 5])
    response_lengths: list[int] = Field(default_factory=lambda: [1, 2, 4])
    wrong_share: float = Field(
        0.3, ge=0, lt=1, description="selectors' pool: share of wrong responses"
    )
    wrong_kind: Literal["random", "second"] = "random"
    duplicate_share: float = Field(0.1, ge=0, lt=1, description="selectors' pool: exact copies")
    seed: int = Field(0, ge=0)

    @field_validator("n_examples", "example_lengths", "response_lengths")
    @classmethod
    def _formats(cls, v: list[int], info) -> list[int]:
        least = 2 if info.field_name == "example_lengths" else 1  # a query needs a token
        if not v or min(v) < least or len(set(v)) != len(v):
            raise ValueError(f"must be a non-empty list of distinct integers >= {least}")
        return sorted(v)

    @property
    def longest_example(self) -> int:
        """Tokens of the longest prompt + response (``make_prompts``: n (L + 1) + L - 1)."""
        n, length = max(self.n_examples), max(self.example_lengths)
        return n * (length + 1) + length - 1 + max(self.response_lengths)


class SFTSection(Spec):
    """The arms: each plan varies one property of the fine-tuning set at a fixed
    fine-tuning budget (package docstring)."""

    base: str = Field(
        "pretrain",
        description="pretrain: a base model trained on training_data inside the experiment "
        "(the spec's recipe); or a divlab / Hugging Face checkpoint folder",
    )
    pool: PoolSpec = PoolSpec()
    examples: int = Field(128, ge=1, description="N: examples chosen in every fixed-N arm")
    token_budget: int = Field(16_384, ge=1, description="fine-tuning tokens of every arm")
    lr: float = Field(3e-3, gt=0, description="fine-tuning learning rate")
    loss_on: list[Literal["response", "all"]] = Field(
        default_factory=lambda: ["response"],
        description="response: loss on response tokens only; all: on every token (both: "
        "every arm twice)",
    )
    quantity: list[int] = Field(
        default_factory=lambda: [32, 128, 512],
        description="the LIMA curve: N random examples from the clean pool",
    )
    wrong_share: list[float] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5],
        description="quality at fixed N: random examples from a pool with this wrong share",
    )
    concepts: list[int] = Field(
        default_factory=lambda: [1, 2, 4],
        description="diversity at fixed N: the clean pool restricted to the first k concepts",
    )
    selectors: list[Literal["random", "longest", "quality", "k-center", "quality-diversity"]] = (
        Field(
            default_factory=lambda: list(SELECTOR_NAMES),
            description="selectors at fixed N from the noisy pool (wrong and duplicate shares)",
        )
    )
    dedup_first: bool = Field(True, description="selectors: drop exact duplicates first")
    eval_prompts: int = Field(512, ge=8, description="held-out prompts (seen and unseen)")

    @field_validator("quantity", "concepts")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if min(v, default=1) < 1 or len(set(v)) != len(v):
            raise ValueError("must list distinct positive integers")
        return sorted(v)

    @field_validator("wrong_share")
    @classmethod
    def _shares(cls, v: list[float]) -> list[float]:
        if any(not 0 <= s < 1 for s in v) or len(set(v)) != len(v):
            raise ValueError("must list distinct shares in [0, 1)")
        return sorted(v)

    @field_validator("selectors", "loss_on")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a name")
        return v

    @model_validator(mode="after")
    def _something(self) -> SFTSection:
        if not (self.quantity or self.wrong_share or self.concepts or self.selectors):
            raise ValueError("list at least one arm (quantity, wrong_share, concepts, selectors)")
        if not self.loss_on:
            raise ValueError("loss_on must list response, all or both")
        return self


class SFTExperimentSpec(CommonSpec):
    """``kind: sft``: the common recipe (the base model's pre-training) and ``sft``."""

    kind: Literal["sft"]
    sft: SFTSection = SFTSection()

    @model_validator(mode="after")
    def _fits(self) -> SFTExperimentSpec:
        if self.is_text:
            raise ValueError("the sft kind builds its instruction pool from GINC; remove eval.text")
        s, concepts = self.sft, self.eval.n_concepts
        if max(s.concepts, default=0) > concepts:
            raise ValueError(
                f"sft.concepts asks for {max(s.concepts)} concepts but the eval set has "
                f"{concepts}; list at most eval.n_concepts"
            )
        pool = s.pool.size
        clean = pool  # the clean pool holds every example
        if max(s.quantity, default=0) > clean:
            raise ValueError(
                f"sft.quantity asks for {max(s.quantity)} examples but the pool holds {pool}; "
                "raise sft.pool.size or lower quantity"
            )
        smallest = min(s.concepts, default=concepts)
        if (s.wrong_share or s.concepts or s.selectors) and s.examples > pool * smallest // (
            concepts
        ):
            raise ValueError(
                f"sft.examples ({s.examples}) is more than the smallest pool an arm draws from "
                f"(about {pool * smallest // concepts}: the pool's {pool} examples restricted "
                f"to {smallest} of eval.n_concepts = {concepts} concepts); raise "
                "sft.pool.size or lower sft.examples"
            )
        if s.selectors and s.dedup_first:
            kept = pool - round(s.pool.duplicate_share * pool)
            if s.examples > kept:
                raise ValueError(
                    f"sft.examples ({s.examples}) is more than the {kept} examples left after "
                    "dedup; lower it or pool.duplicate_share"
                )
        longest = s.pool.longest_example + 1  # with its <eos> (training) or <eos> prefix
        if longest > self.seq_len:
            raise ValueError(
                f"the longest instruction example (prompt + response + <eos>: {longest} "
                f"tokens) does not fit seq_len={self.seq_len}; raise seq_len or shorten "
                "sft.pool's formats"
            )
        if s.base != "pretrain" and not (Path(s.base) / "config.json").exists():
            raise ValueError(
                f"sft.base {s.base!r} is not a model folder (no config.json); give a divlab "
                "or Hugging Face checkpoint folder, or pretrain"
            )
        if s.token_budget < self.batch_tokens:
            raise ValueError(
                f"sft.token_budget ({s.token_budget}) is below one batch ({self.batch_tokens})"
            )
        return self


@dataclass(frozen=True)
class Arm:
    """One fine-tuning set: a plan and its value (``N``, a wrong share, ``k`` concepts or a
    selector), and the loss it trains with."""

    plan: str
    value: object
    loss_on: str

    @property
    def name(self) -> str:
        short = {"quantity": "n", "quality": "wrong", "diversity": "k", "selectors": "sel"}
        return f"{short[self.plan]}={self.value}-{self.loss_on}"


def arms(section: SFTSection) -> list[Arm]:
    out = []
    for loss_on in section.loss_on:
        out += [Arm("quantity", n, loss_on) for n in section.quantity]
        out += [Arm("quality", w, loss_on) for w in section.wrong_share]
        out += [Arm("diversity", k, loss_on) for k in section.concepts]
        out += [Arm("selectors", name, loss_on) for name in section.selectors]
    return out
