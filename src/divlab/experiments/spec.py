"""What every experiment spec shares (``CommonSpec``): the data family and eval set, the
GINC training-data knobs, ONE training recipe, seeds, evaluation and executor.

Each experiment kind extends ``CommonSpec`` in its own package
(``divlab.experiments.kinds.<kind>.spec``); ``divlab.experiments.registry`` picks the kind
from the ``kind`` field.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator

from divlab.data.ginc.dataset import DuplicateSpec, NoiseSpec, PromptSetSpec
from divlab.data.ginc.family import FamilySpec
from divlab.errors import ConfigError
from divlab.experiments.runs import PER_RUN_FIELDS
from divlab.measure import DiversitySettings
from divlab.specs import Spec
from divlab.train.models import ModelSpec
from divlab.train.spec import OptimizerSpec, RecipeSpec


class EvalSetSpec(Spec):
    """``D_eval``: documents of the eval concepts (GINC) or of a text corpus."""

    n_concepts: int = Field(
        32, ge=1, le=1_000_000, description="|C_test|: concepts 0 .. n_concepts - 1"
    )
    # 128 x 512 tokens: room for the default diversity and alignment batches (16 x 32 x 128)
    n_docs: int = Field(128, ge=1)
    doc_length: int = Field(512, ge=2)
    seed: int = Field(1, ge=0, description="the eval documents' seed (independent of training)")
    prompts: PromptSetSpec | None = PromptSetSpec(
        n_prompts=50,
        n_examples=[0, 2, 4, 8],
        example_lengths=[5],
        n_ood_concepts=0,
        max_tokens=128,
    )
    text: list[str] | None = Field(None, description="real-text eval corpus (files/folders)")


class TrainingDataSpec(Spec):
    """How each GINC training set is generated (shared by every condition; a ``sets``
    entry may override the knobs)."""

    n_tokens: int = Field(2_000_000, ge=1)
    doc_length: int = Field(512, ge=2)
    weighting: Literal["uniform", "zipf"] = "uniform"
    zipf_exponent: float = Field(1.0, ge=0.0)
    noise: NoiseSpec = NoiseSpec()
    duplicates: DuplicateSpec = DuplicateSpec()
    seed: int = Field(2, ge=0, description="the training documents' seed")


class MeasureSpec(Spec):
    """Task2Vec settings (``divlab.measure.DiversitySettings``), for every kind that measures."""

    enabled: bool = True
    estimator: Literal["closed-form", "montecarlo"] = "closed-form"
    distance: Literal["normalized_cosine", "cosine"] = "normalized_cosine"
    n_batches: int = Field(16, ge=2)
    batch_size: int = Field(32, ge=1)
    seq_len: int = Field(128, ge=2)
    construction: Literal["blocks", "documents"] = "blocks"
    finetune_epochs: int = Field(0, ge=0)
    finetune_lr: float = Field(5e-5, gt=0)
    bootstrap: int = Field(1000, ge=10)
    align2_repeats: int = Field(3, ge=1, description="large-batch pairs behind align2's CI")
    seed: int = Field(0, ge=0)

    def settings(self) -> DiversitySettings:
        fields = self.model_dump(exclude={"enabled"})
        return DiversitySettings(**fields)


class HarnessSpec(Spec):
    """lm-evaluation-harness tasks scored on every run's checkpoint
    (``divlab.evaluate.harness``; ``pip install 'divlab[harness]'``): built-in task names
    (e.g. arc_easy, mmlu on a machine that reaches the Hugging Face hub) or tasks of a local
    folder of task YAML files (``include_path``)."""

    tasks: list[str] = Field(..., min_length=1)
    include_path: str | None = Field(None, description="a folder of local task YAML files")
    limit: int | None = Field(None, ge=1, description="documents per task (None: all)")


class EvaluationSpec(Spec):
    limit: int = Field(64, ge=1, description="eval documents scored per run")
    prefix: int = Field(32, ge=1, description="continuation prompt tokens")
    length: int = Field(16, ge=1, description="continuation tokens generated")
    icl: bool = True
    lm_eval: HarnessSpec | None = None

    def dump(self) -> dict:
        """The run's evaluation settings; ``lm_eval`` only when set, so the run ids of
        specs without it stay as they were."""
        return self.model_dump(mode="json", exclude={"lm_eval"} if self.lm_eval is None else set())


class ExecutorSpec(Spec):
    kind: Literal["local", "ray"] = "local"
    workers: int | Literal["auto"] = "auto"
    threads_per_worker: int | None = Field(None, ge=1, description="default: cores / workers")
    address: str | None = Field(None, description="ray: an existing cluster, e.g. 'auto'")
    cpus_per_run: float = Field(1.0, gt=0, description="ray: the resources of one run")
    gpus_per_run: float = Field(0.0, ge=0)
    max_retries: int = Field(2, ge=0, description="ray: retries of a failed run")


class CommonSpec(RecipeSpec):
    """What every experiment kind shares: the data family and eval set, ONE training
    recipe (``RecipeSpec``: every field a single run's ``TrainSpec`` has, with the same
    validation, and defaults sized for experiments), seeds, evaluation and executor.

    Each kind's spec (``divlab.experiments.kinds.<kind>.spec``) extends it with its own
    section and a ``kind`` literal."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    family: FamilySpec = FamilySpec()
    eval: EvalSetSpec = EvalSetSpec()
    training_data: TrainingDataSpec = TrainingDataSpec()
    tokenizer: str | None = Field(
        None,
        description="real text: a tokenizer path, or bpe:N to train an N-token byte-level BPE "
        "on the eval corpus",
    )
    model: ModelSpec = ModelSpec(preset="mini")
    token_budget: int = Field(400_000, ge=1, description="training tokens of every run")
    batch_tokens: int = Field(2048, ge=2, description="tokens per optimizer step")
    optimizer: OptimizerSpec = OptimizerSpec(lr=1e-2)
    curve_docs: int = Field(32, ge=1, description="eval docs per learning-curve point")
    seeds: list[int] = Field(default_factory=lambda: [0, 1])
    evaluation: EvaluationSpec = EvaluationSpec()
    executor: ExecutorSpec = ExecutorSpec()
    logging: list[Literal["tensorboard", "wandb", "trackio"]] = Field(
        default_factory=list,
        description="live curves of every run in these trackers (pip install "
        "'divlab[NAME]'); run names are run ids; monitoring only: not part of any run id",
    )

    @field_validator("logging", mode="before")
    @classmethod
    def _one_or_more(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 0 or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list of distinct integers >= 0")
        return v

    @model_validator(mode="after")
    def _tokenizer(self) -> CommonSpec:
        if self.tokenizer and self.tokenizer.startswith("bpe:"):
            size = self.tokenizer[4:]
            if not size.isdigit() or int(size) < 260:
                raise ValueError(f"tokenizer {self.tokenizer!r}: write bpe:N with N >= 260")
        return self

    @property
    def is_text(self) -> bool:
        return self.eval.text is not None

    def vocab_size(self) -> int | None:
        """The vocabulary the runs will train on, where the spec alone says it: GINC's
        symbols and its four special tokens, or a ``bpe:N`` tokenizer's N."""
        if not self.is_text:
            return self.family.vocab_size + 4  # <pad> <bos> <eos> <unk>
        if self.tokenizer and self.tokenizer.startswith("bpe:"):
            return int(self.tokenizer[4:])
        return None  # a tokenizer file: known once the data is prepared

    def check_machine(self) -> None:
        """What the spec asks of this machine, checked before any compute (not when the
        spec is parsed: a folder run on a GPU machine is read on others): a CUDA device
        when ``device: cuda``. Memory and disk: ``divlab.experiments.check``."""
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "device: cuda, but this machine has no CUDA device; use device: auto (CUDA "
                "when present, else CPU) or run it on a GPU machine"
            )

    def train_recipe(self, overrides: dict | None = None) -> dict:
        """The TrainSpec fields every run of the experiment shares (a run adds its data
        paths and seed); ``overrides`` changes some (a kind's continued pre-training, a
        curriculum's fixed order)."""
        recipe = {
            "split": "train",
            "eval_split": "eval",
            "model": self.model.model_dump(mode="json"),
            "token_budget": self.token_budget,
            "seq_len": self.seq_len,
            "batch_tokens": self.batch_tokens,
            "optimizer": self.optimizer.model_dump(mode="json"),
            "schedule": self.schedule.model_dump(mode="json"),
            "eval_every_tokens": self.eval_every_tokens,
            "eval_docs": self.curve_docs,
            "device": self.device,
        }
        # Recipe fields added later enter a run's recipe (and its id) only when set, so
        # the ids of runs of specs that leave them at their defaults stay as they were.
        for key in (
            "micro_batch_size",
            "activation_checkpointing",
            "checkpoint_every_tokens",
            "compile",
        ):
            if getattr(self, key) != RecipeSpec.model_fields[key].default:
                recipe[key] = getattr(self, key)
        # None (one pass per step, the default before auto) runs as auto: the same numbers
        # (float rounding aside), and the run ids of specs that wrote it stay as they were
        if recipe.get("micro_batch_size", "auto") is None:
            del recipe["micro_batch_size"]
        for key, value in (overrides or {}).items():
            if key in PER_RUN_FIELDS:
                raise ConfigError(f"a run's train overrides may not set {key!r} (the run does)")
            recipe[key] = value
        return recipe
