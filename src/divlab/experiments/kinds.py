"""Experiment kinds: one YAML spec language, one ``kind:`` field choosing the experiment.

``kind: diversity`` (the default) is the Beyond Scale II experiment of
``divlab.experiments.runner``; the others (BRIEF sections 7-9) live in their own modules.
Every kind's spec extends ``CommonSpec`` (data family, eval set, one training recipe,
seeds, evaluation, executor) with its own section, and every kind's module offers:

* ``SPEC``: its spec class;
* ``run(spec, out, *, executor=None, progress=True, report=True, log=None) -> dict``:
  run or resume the experiment in folder ``out`` (``out``, ``report`` and its tables);
* ``describe(spec) -> list[str]``: the plan in words, for ``divlab experiment validate``.

Its report section is ``divlab.report.<kind>`` (see ``divlab.report.build``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from divlab.errors import ConfigError, DataError
from divlab.io import read_json

KINDS = {
    "diversity": "divlab.experiments.runner",
    "collapse": "divlab.experiments.collapse",
    "merging": "divlab.experiments.merging",
    "mixtures": "divlab.experiments.mixtures",
    "curriculum": "divlab.experiments.curriculum",
    "scaling": "divlab.experiments.scaling",
}


def module(kind: str):
    if kind not in KINDS:
        raise ConfigError(f"unknown experiment kind {kind!r}; choose from {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind])


def spec_from_dict(data: dict, source: str):
    """The typed spec of any kind (``kind`` absent: diversity)."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {source}: expected a mapping of fields")
    kind = data.get("kind", "diversity")
    if not isinstance(kind, str):
        raise ConfigError(f"invalid {source}: kind must be one of {', '.join(KINDS)}")
    return module(kind).SPEC.from_dict(data, source=source)


def load_spec(path: str | Path):
    """Load and validate a spec file of any kind; a ConfigError names each bad field."""
    from divlab.io import load_yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment spec {path} does not exist")
    return spec_from_dict(load_yaml(path), source=f"config {path}")


def spec_of_folder(folder: str | Path):
    """The spec an experiment folder was run with (its ``spec.json``)."""
    folder = Path(folder)
    if not (folder / "spec.json").exists():
        raise DataError(f"{folder} is not an experiment folder (no spec.json)")
    return spec_from_dict(read_json(folder / "spec.json"), source=f"{folder}/spec.json")


def load(spec_or_folder: str | Path):
    """The spec of a YAML file, or of an experiment folder (its ``spec.json``)."""
    path = Path(spec_or_folder)
    return spec_of_folder(path) if path.is_dir() else load_spec(path)
