"""The spec of ``kind: scaling`` (see the package docstring)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec
from divlab.train.models import PRESETS

TABLES = ("scaling.parquet", "scaling_fits.parquet", "scaling_holdout.parquet")


DATA_MARGIN = 1.1  # packing drops a few tokens per document: generate 10% over the largest budget


class ScalingSection(Spec):
    token_budgets: list[int] = Field(..., description="training tokens D of the runs")
    model_presets: list[str] = Field(
        default_factory=list, description="model sizes (presets); empty: the spec's model"
    )
    holdout: Literal["largest", "none"] = Field(
        "largest", description="refit without the largest configuration and predict it"
    )
    bootstrap: int = Field(1000, ge=50, description="bootstrap resamples behind every CI")
    seed: int = Field(0, ge=0, description="the bootstrap's seed")

    @field_validator("token_budgets")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        if min(v, default=0) < 1 or len(set(v)) != len(v):
            raise ValueError("must be a list of distinct token counts >= 1")
        return sorted(v)

    @field_validator("model_presets")
    @classmethod
    def _presets(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in PRESETS]
        if unknown:
            raise ValueError(f"unknown preset(s) {unknown}; choose from {', '.join(PRESETS)}")
        if len(set(v)) != len(v):
            raise ValueError("model presets must be distinct")
        return v


class ScalingExperimentSpec(CommonSpec):
    """``kind: scaling``: the common recipe at several token budgets and model sizes."""

    kind: Literal["scaling"]
    scaling: ScalingSection

    @model_validator(mode="after")
    def _consistent(self) -> ScalingExperimentSpec:
        if self.is_text:
            raise ValueError("scaling experiments run on GINC data; remove eval.text")
        section = self.scaling
        steps = [budget // self.batch_tokens for budget in section.token_budgets]
        if min(steps) < 1:
            raise ValueError(
                "every one of scaling.token_budgets must be at least one batch "
                f"(batch_tokens: {self.batch_tokens} tokens)"
            )
        if len(set(steps)) != len(steps):
            raise ValueError(
                f"scaling.token_budgets {section.token_budgets} train the same number of "
                f"{self.batch_tokens}-token batches; make them differ by at least one batch"
            )
        need = 3 + (section.holdout == "largest")
        if len(steps) < need:
            raise ValueError(
                "fitting L(D) = E + B / D^beta needs >= 3 distinct budgets"
                + (", plus the held-out largest one" if need == 4 else "")
                + f": list at least {need} token_budgets"
            )
        model = self.model
        sizes = (model.hidden_size, model.num_layers, model.num_heads, model.intermediate_size)
        if section.model_presets and (any(sizes) or model.config):
            raise ValueError(
                "scaling.model_presets swaps the model's preset: remove the explicit sizes "
                "(hidden_size, num_layers, ...) and config from model"
            )
        return self

    def presets(self) -> list[str]:
        return self.scaling.model_presets or [self.model.preset]
