"""Small Hugging Face decoders built from a config (no download), and their sizes.

Llama-style (RoPE, RMSNorm, SwiGLU) by default, GPT-2 on request. Named presets go from
``tiny`` (CPU-test size) to ``125m``; any field can be overridden, or a full HF config
given as a mapping. Parameter counts follow Kaplan et al.: ``embedding`` parameters are
the token (and GPT-2 position) embeddings plus an untied output head; ``non_embedding``
is the rest. FLOPs of a run are ``6 * N * D`` for both N (``train.budget``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

from divlab.errors import ConfigError, did_you_mean
from divlab.specs import checked_by

# name: (hidden, layers, heads, intermediate); intermediate ~ 8/3 * hidden (SwiGLU)
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (32, 2, 2, 96),
    "mini": (64, 2, 4, 176),
    "small": (128, 4, 4, 352),
    "10m": (256, 8, 8, 704),
    "30m": (384, 10, 6, 1024),
    "125m": (768, 12, 12, 2048),
}


def preset_problem(preset: str) -> str | None:
    """What is wrong with a model preset's name, or None if divlab knows it."""
    if preset in PRESETS:
        return None
    return (
        f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}"
        f"{did_you_mean(preset, PRESETS)}"
    )


# A model preset's name, checked when a spec is parsed.
PresetName = Annotated[str, checked_by(preset_problem)]


class ModelSpec(BaseModel):
    """Which decoder to train. ``preset`` sets the sizes; explicit fields override them;
    ``config`` (HF config fields) overrides everything."""

    model_config = ConfigDict(extra="forbid")

    preset: PresetName = "tiny"
    architecture: Literal["llama", "gpt2"] = "llama"
    hidden_size: int | None = Field(None, ge=1)
    num_layers: int | None = Field(None, ge=1)
    num_heads: int | None = Field(None, ge=1)
    intermediate_size: int | None = Field(None, ge=1)
    tie_embeddings: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    config: dict[str, Any] | None = None

    def sizes(self) -> tuple[int, int, int, int]:
        if self.preset not in PRESETS:
            raise ConfigError(
                f"unknown model preset {self.preset!r}; choose one of {', '.join(PRESETS)}"
                f"{did_you_mean(self.preset, PRESETS)}"
            )
        hidden, layers, heads, intermediate = PRESETS[self.preset]
        hidden = self.hidden_size or hidden
        heads = self.num_heads or heads
        if hidden % heads:
            raise ConfigError(f"hidden_size {hidden} must be divisible by num_heads {heads}")
        return hidden, self.num_layers or layers, heads, self.intermediate_size or intermediate


def build_config(spec: ModelSpec, vocab_size: int, context: int, special: dict[str, int | None]):
    """The HF config for ``spec`` with the data's vocabulary and special token ids."""

    hidden, layers, heads, intermediate = spec.sizes()
    ids = {
        "bos_token_id": special.get("bos_token_id"),
        "eos_token_id": special.get("eos_token_id"),
        "pad_token_id": special.get("pad_token_id"),
    }
    if spec.architecture == "llama":
        fields = dict(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=context,
            attention_dropout=spec.dropout,
            tie_word_embeddings=spec.tie_embeddings,
            **ids,
        )
        fields.update(spec.config or {})
        return LlamaConfig(**fields)
    fields = dict(
        vocab_size=vocab_size,
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        n_inner=intermediate,
        n_positions=context,
        resid_pdrop=spec.dropout,
        embd_pdrop=spec.dropout,
        attn_pdrop=spec.dropout,
        tie_word_embeddings=spec.tie_embeddings,
        **ids,
    )
    fields.update(spec.config or {})
    return GPT2Config(**fields)


def build_model(config, seed: int):
    """A freshly initialised causal LM; the weights depend on ``seed`` alone."""

    torch.manual_seed(seed)
    try:
        return AutoModelForCausalLM.from_config(config)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"cannot build the model from its config: {e}") from None


def count_parameters(model) -> dict[str, int]:
    """Total, embedding and non-embedding parameter counts (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embedding_tensors = {id(model.get_input_embeddings().weight)}
    output = model.get_output_embeddings()
    if output is not None:
        embedding_tensors.add(id(output.weight))
    position = getattr(getattr(model, "transformer", None), "wpe", None)  # GPT-2
    if position is not None:
        embedding_tensors.add(id(position.weight))
    embedding = sum(  # a tied head is the input embedding: counted once
        {id(p): p.numel() for p in model.parameters() if id(p) in embedding_tensors}.values()
    )
    return {"total": total, "embedding": embedding, "non_embedding": total - embedding}


def training_flops(parameters: dict[str, int], tokens: int) -> dict[str, int]:
    """``6 * N * D`` with N excluding and including embeddings."""
    return {
        "flops_non_embedding": 6 * parameters["non_embedding"] * tokens,
        "flops_total": 6 * parameters["total"] * tokens,
    }
