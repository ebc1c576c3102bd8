"""divlab: controlled experiments on language-model training data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("divlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from divlab.errors import ConfigError, DataError, DivlabError

__all__ = ["ConfigError", "DataError", "DivlabError", "__version__"]
