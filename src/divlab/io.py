"""Atomic file and folder writes: a killed process never leaves a half-written result."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from divlab.errors import ConfigError, DataError


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; when the block succeeds it replaces ``path`` in
    one rename, else it is removed. Every file divlab writes goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from others
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path``, atomically."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")


def write_table(table, path: str | os.PathLike) -> Path:
    """Write a Parquet table atomically: a ``pyarrow.Table``, a pandas DataFrame (its index
    is dropped) or a list of row dicts (an empty list: a table without columns)."""

    if isinstance(table, list):
        table = pa.Table.from_pylist(table) if table else pa.table({})
    elif not isinstance(table, pa.Table):  # a pandas DataFrame
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 JSON text (a binary or damaged file)") from None
    except (ValueError, RecursionError):  # a number of > 4300 digits, nesting too deep
        raise DataError(
            f"{path} is not valid JSON (a number too long or nesting too deep)"
        ) from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; on success it replaces ``path`` in one rename.

    On any error (or a kill) the temp folder is removed, or at worst left under a
    ``.tmp-`` name that no reader mistakes for a finished result.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        else:
            raise DataError(f"{path} already exists; choose another --out or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the folder from others
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import (not thread-safe)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _umask() -> int:
    return _UMASK


def _json_default(obj: Any) -> Any:

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def check_text_column(schema: pa.Schema, field: str, where: object) -> None:
    """A DataError unless ``schema`` (of a Parquet file or an Arrow dataset at ``where``)
    has a text column ``field``; the message names the columns and the --field option."""
    if field not in schema.names:
        raise DataError(
            f"{where} has no column {field!r} (columns: {', '.join(schema.names)}); "
            "pass the name of the text column (--field NAME; field= in Python)"
        )
    kind = schema.field(field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"column {field!r} of {where} holds {kind}, not text; pass a text column")


def load_yaml(path: str | Path) -> dict:

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"config {path} is not UTF-8 text (a binary file?); give a YAML spec"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"config {path} is binary, not YAML text; give a YAML spec")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None
    except RecursionError:
        raise ConfigError(f"config {path} nests lists or mappings too deeply") from None
    except ValueError as e:  # a scalar the constructor refuses: 2020-13-45, 5000 digits
        reason = (str(e).splitlines() or ["invalid value"])[0]
        raise ConfigError(
            f"config {path} is not valid YAML: a value is refused ({reason})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of fields")
    return data
