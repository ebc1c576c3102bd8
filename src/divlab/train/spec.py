"""The typed spec of a training run: a token budget and everything else held fixed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from divlab.specs import Spec
from divlab.train.models import ModelSpec


class OptimizerSpec(Spec):
    """AdamW; weight decay applies to matrices only (not norms or biases)."""

    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float | None = Field(1.0, gt=0)


class ScheduleSpec(Spec):
    """Linear warmup, then cosine / linear decay to ``min_lr_ratio * lr``, or constant."""

    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)


class RecipeSpec(Spec):
    """How a model is trained, apart from its data and seed: the recipe an experiment
    applies to every run (``divlab.experiments.spec.CommonSpec`` extends it) and the
    core of a single run's ``TrainSpec``: one set of fields, one validation."""

    model: ModelSpec = ModelSpec()
    token_budget: int = Field(..., ge=1, description="training tokens (inputs) of the run")
    seq_len: int = Field(128, ge=2)
    batch_tokens: int = Field(4096, ge=2, description="tokens per optimizer step")
    micro_batch_size: int | Literal["auto"] | None = Field(
        "auto",
        description="sequences per forward pass (gradient accumulation): auto, the largest "
        "that fits the device (divlab.train.plan; chosen on the machine that trains, so it "
        "never enters a run id); None, the whole step in one pass",
    )
    activation_checkpointing: bool = Field(
        False, description="recompute each layer in the backward pass: less memory, ~1/3 slower"
    )
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    eval_every_tokens: int | None = Field(None, ge=1, description="default: budget / 10")
    checkpoint_every_tokens: int | None = Field(None, ge=1, description="default: budget / 4")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False

    @model_validator(mode="after")
    def _shapes(self) -> RecipeSpec:
        if self.batch_tokens % self.seq_len:
            raise ValueError(
                f"batch_tokens ({self.batch_tokens}) must be a multiple of seq_len ({self.seq_len})"
            )
        micro = self.micro_batch_size
        if isinstance(micro, int) and micro < 1:
            raise ValueError(f"micro_batch_size must be >= 1 or auto, not {micro}")
        if isinstance(micro, int) and self.sequences_per_step % micro:
            raise ValueError(
                f"micro_batch_size ({self.micro_batch_size}) must divide the "
                f"{self.sequences_per_step} sequences of a step"
            )
        if self.token_budget < self.batch_tokens:
            raise ValueError(
                f"token_budget ({self.token_budget}) is below one batch ({self.batch_tokens} "
                "tokens); raise the budget or lower batch_tokens"
            )
        return self

    @property
    def sequences_per_step(self) -> int:
        return self.batch_tokens // self.seq_len

    @property
    def steps(self) -> int:
        return self.token_budget // self.batch_tokens

    @property
    def tokens(self) -> int:
        """Tokens actually trained on: whole steps only."""
        return self.steps * self.batch_tokens


class TrainSpec(RecipeSpec):
    """One training run: a recipe, its data and its seed."""

    data: str
    split: str = "train"
    eval_split: str | None = "eval"
    eval_data: str | None = Field(
        None, description="the learning curve's data set, if not ``data`` (same tokenizer)"
    )
    seed: int = Field(0, ge=0)
    init_from: str | None = Field(
        None,
        description="continue pre-training: start from this checkpoint's weights (a model "
        "folder of the same architecture) with a fresh optimizer and schedule",
    )
    shuffle: bool = Field(
        True,
        description="visit the packed sequences in a seeded random order; false keeps the "
        "data set's document order (a curriculum written into the data)",
    )
    eval_docs: int = Field(64, ge=1)
    loss_on: Literal["all", "response"] = Field(
        "all",
        description="the tokens the loss is taken on: all, or (instruction tuning) only the "
        "responses, the split's prompt_length column marking each document's prompt",
    )

    def every(self, requested: int | None, fraction: int) -> int:
        """A cadence in steps: ``requested`` tokens, or 1/``fraction`` of the run."""
        tokens = requested or max(self.tokens // fraction, 1)
        return max(1, round(tokens / self.batch_tokens))
