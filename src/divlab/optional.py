"""Optional dependencies, imported when first needed, with a clear error naming the extra
that installs them (``pip install 'divlab[EXTRA]'``)."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from divlab.errors import ConfigError


def require(module: str, extra: str, purpose: str, alternative: str = "") -> ModuleType:
    """Import ``module``, or raise a ConfigError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        hint = f" (or {alternative})" if alternative else ""
        raise ConfigError(
            f"{purpose} needs {module}: pip install 'divlab[{extra}]'{hint}"
        ) from None


def check_installed(module: str, extra: str, purpose: str) -> None:
    """The ``require`` error, found without importing ``module`` (before any compute)."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{purpose} needs {module}: pip install 'divlab[{extra}]'")


def require_ray() -> ModuleType:
    return require("ray", "ray", "the ray executor", "use executor: local")
