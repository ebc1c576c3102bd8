"""The base of every typed spec: unknown fields are errors, and loading from a mapping or
a YAML file turns validation errors into one ConfigError naming each bad field."""

from __future__ import annotations

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
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, source, model=cls)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        return cls.from_dict(load_yaml(path), source=f"config {path}")


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
