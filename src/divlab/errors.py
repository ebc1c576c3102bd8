"""One error hierarchy for everything a user can get wrong.

Library code raises a subclass of :class:`DivlabError` with a message that says what was
wrong and how to fix it; the CLI prints that message as one line and exits with code 2.
"""

from __future__ import annotations

import difflib
import typing


class DivlabError(Exception):
    """Base class of every error caused by user input (specs, paths, data)."""


class ConfigError(DivlabError):
    """A spec, flag or config file is invalid (bad value, unknown field, unreadable YAML)."""


class DataError(DivlabError):
    """A data set on disk is missing, incomplete or not what the call expects."""


def did_you_mean(name: object, choices) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def format_validation_error(error: object, source: str = "config", model=None) -> str:
    """Turn a pydantic ``ValidationError`` into one line naming each bad field; with the
    ``model`` validated, an unknown field gets the closest valid name ("did you mean")."""
    parts = []
    for item in error.errors():  # type: ignore[attr-defined]
        loc = item.get("loc", ())
        location = ".".join(_location_part(p) for p in loc) or "<root>"
        message = " ".join(item.get("msg", "invalid value").splitlines())
        if item.get("type") == "extra_forbidden":
            hint = did_you_mean(loc[-1], _fields_at(model, loc[:-1]))
            message = "unknown field" + (
                hint or " (check the spelling against the documented fields)"
            )
        parts.append(f"{location}: {message}")
    return f"invalid {source}: " + "; ".join(parts)


def _fields_at(model, loc: tuple) -> list[str]:
    """The field names of the (sub)model at ``loc`` under ``model`` (every member of a
    union or list at that place); [] where it cannot be followed."""
    models = [model] if model is not None else []
    for part in loc:
        following = []
        for candidate in models:
            fields = getattr(candidate, "model_fields", {})
            if part in fields:
                following += _models_in(fields[part].annotation)
            else:  # a list index or a union member's tag: the same models, one level on
                following.append(candidate)
        models = following
    return sorted({name for m in models for name in getattr(m, "model_fields", {})})


def _models_in(annotation) -> list:
    """The pydantic models an annotation can hold (through Optional, unions, lists)."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _location_part(part: object) -> str:
    """A key of a field's location as written, or quoted where it is not printable (a YAML
    key holding a newline must not split the error's one line)."""
    text = str(part)
    return text if text.isprintable() else repr(text)
