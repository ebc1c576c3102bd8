"""The base of every typed spec: unknown fields are errors, and loading from a mapping or
a YAML file turns validation errors into one ConfigError naming each bad field."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Self

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from divlab.errors import ConfigError, format_validation_error
from divlab.io import load_yaml


def checked_by(problem: Callable[[str], str | None]) -> AfterValidator:
    """A field validator from a ``problem(value) -> message or None`` function: the field
    is refused with that message (the one the same check gives outside a spec)."""

    def check(value: str) -> str:
        message = problem(value)
        if message:
            raise ValueError(message)
        return value

    return AfterValidator(check)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> Self:
        source = source or f"{cls.__name__}"
        if not isinstance(data, dict):
            raise ConfigError(f"invalid {source}: expected a mapping of fields")
        try:
            return cls.model_validate(tiny_scale(data))
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, source, model=cls)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        return cls.from_dict(load_yaml(path), source=f"config {path}")


# DIVLAB_TINY=1: the caps of tiny_scale (sizes of data, budgets, Task2Vec batches; every
# model preset becomes tiny)
TINY_CAPS = {"doc_length": 256, "n_docs": 32, "n_batches": 4, "batch_size": 8, "n_prompts": 8}
TINY_TOKENS = 8192  # token_budget and every *_tokens field


def tiny_scale(tree: dict) -> dict:
    """``tree`` as it is, or, with ``DIVLAB_TINY=1`` in the environment, a copy with every
    size capped (:data:`TINY_CAPS`, :data:`TINY_TOKENS`, at any depth): the one hook
    through which the README's test (tests/test_readme.py) runs every command of the
    README in seconds (``divlab.cli.measure`` passes its Task2Vec settings through it too).
    Only sizes change."""
    if os.environ.get("DIVLAB_TINY") != "1":
        return tree

    def cap(key: object, value: object) -> object:
        if isinstance(value, dict):
            return {k: cap(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [cap(None, v) for v in value]
        if key == "preset" and isinstance(value, str):
            return "tiny"  # the smallest model preset
        if not isinstance(value, int) or isinstance(value, bool) or not isinstance(key, str):
            return value
        if key == "token_budget" or key.endswith("_tokens"):
            return min(value, TINY_TOKENS)
        return min(value, TINY_CAPS.get(key, value))

    return cap(None, tree)


def other_file_kind(data: dict) -> str | None:
    """What a mapping without an experiment's ``name`` and ``kind`` is, when its fields
    say so: a GINC data set config, a training spec or a data set's own record."""
    if "name" in data or "kind" in data:
        return None
    if "format_version" in data and "splits" in data:
        return "a data set's record (a data set folder: divlab data info / ginc info read it)"
    if "concepts" in data and ("splits" in data or "family" in data):
        return "a GINC data set config (use it with: divlab ginc generate --config FILE)"
    if "data" in data and ("model" in data or "token_budget" in data):
        return "a training spec (use it with: divlab train --config FILE)"
    return None
