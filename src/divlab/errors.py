"""One error hierarchy for everything a user can get wrong.

Library code raises a subclass of :class:`DivlabError` with a message that says what was
wrong and how to fix it; the CLI prints that message as one line and exits with code 2.
"""

from __future__ import annotations


class DivlabError(Exception):
    """Base class of every error caused by user input (specs, paths, data)."""


class ConfigError(DivlabError):
    """A spec, flag or config file is invalid (bad value, unknown field, unreadable YAML)."""


class DataError(DivlabError):
    """A data set on disk is missing, incomplete or not what the call expects."""


def format_validation_error(error: object, source: str = "config") -> str:
    """Turn a pydantic ``ValidationError`` into one line naming each bad field."""
    parts = []
    for item in error.errors():  # type: ignore[attr-defined]
        location = ".".join(_location_part(p) for p in item.get("loc", ())) or "<root>"
        message = " ".join(item.get("msg", "invalid value").splitlines())
        if item.get("type") == "extra_forbidden":
            message = "unknown field (check the spelling against the documented fields)"
        parts.append(f"{location}: {message}")
    return f"invalid {source}: " + "; ".join(parts)


def _location_part(part: object) -> str:
    """A key of a field's location as written, or quoted where it is not printable (a YAML
    key holding a newline must not split the error's one line)."""
    text = str(part)
    return text if text.isprintable() else repr(text)
