"""The experiment kinds: one YAML spec language, one ``kind:`` field choosing the kind.

Each kind is a package ``divlab.experiments.kinds.<kind>`` whose ``KIND`` is a ``Kind``
record; ``KINDS`` names those packages, and a kind's package is imported only when a spec
or folder of that kind is used. ``kind`` absent from a spec means ``diversity``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from divlab.errors import ConfigError, DataError, did_you_mean
from divlab.experiments.plan import Workload
from divlab.experiments.spec import CommonSpec
from divlab.io import load_yaml, read_json
from divlab.specs import other_file_kind

DEFAULT = "diversity"
KINDS = {
    "diversity": "divlab.experiments.kinds.diversity",
    "collapse": "divlab.experiments.kinds.collapse",
    "merging": "divlab.experiments.kinds.merging",
    "mixtures": "divlab.experiments.kinds.mixtures",
    "curriculum": "divlab.experiments.kinds.curriculum",
    "scaling": "divlab.experiments.kinds.scaling",
    "sft": "divlab.experiments.kinds.sft",
}

Sections = list[tuple[str, str, str]]  # (title, html body, element id)


@dataclass(frozen=True)
class Kind:
    """What an experiment kind provides to the framework.

    * ``spec``: its spec class, a ``CommonSpec`` with a ``kind`` literal and its section;
    * ``run(spec, out, *, executor=None, progress=True, report=True, log=None) -> dict``:
      run or resume the experiment in folder ``out`` (returns ``out``, ``report`` and the
      paths of its tables); it ends with ``folder.finish``;
    * ``describe(spec) -> list[str]``: the plan in words (``divlab experiment validate``);
    * ``report(folder, out) -> (sections, summary)``: the report's sections and headline
      numbers; figures go to ``out/figures``;
    * ``tables``: the Parquet tables (file names) it writes into the experiment folder;
    * ``collect(folder) -> dict``: rebuild those tables from the run folders
      (``divlab results``); None where the kind writes them as it runs;
    * ``workload(spec) -> Workload``: its runs, generated data and measurements, for the
      cost plan (``divlab.experiments.plan``); None: only one run of the recipe is costed.
    """

    name: str
    spec: type[CommonSpec]
    run: Callable[..., dict]
    describe: Callable[[CommonSpec], list[str]]
    report: Callable[[Path, Path], tuple[Sections, dict]]
    tables: tuple[str, ...]
    collect: Callable[[Path], dict] | None = None
    workload: Callable[[CommonSpec], Workload] | None = None


def register(name: str, module: str) -> None:
    """Add a kind (e.g. from a plugin or a test): ``module`` holds its ``KIND``."""
    KINDS[name] = module


def get(name: str) -> Kind:
    if not isinstance(name, str) or name not in KINDS:
        raise ConfigError(
            f"unknown experiment kind {name!r}; choose from {', '.join(KINDS)}"
            f"{did_you_mean(name, KINDS)}"
        )
    kind = importlib.import_module(KINDS[name]).KIND
    if kind.name != name:
        raise ConfigError(f"{KINDS[name]} declares kind {kind.name!r}, registered as {name!r}")
    return kind


def spec_from_dict(data: dict, source: str) -> CommonSpec:
    """The typed spec of any kind (``kind`` absent: diversity)."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {source}: expected a mapping of fields")
    other = other_file_kind(data)
    if other:
        raise ConfigError(f"{source} is {other}, not an experiment spec")
    name = data.get("kind", DEFAULT)
    if not isinstance(name, str) or name not in KINDS:
        raise ConfigError(
            f"invalid {source}: kind {name!r} is not an experiment kind; choose from "
            f"{', '.join(KINDS)}{did_you_mean(name, KINDS)}"
        )
    return get(name).spec.from_dict(data, source=source)


def load_spec(path: str | Path) -> CommonSpec:
    """Load and validate a spec file of any kind; a ConfigError names each bad field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment spec {path} does not exist")
    return spec_from_dict(load_yaml(path), source=f"config {path}")


def spec_of_folder(folder: str | Path) -> CommonSpec:
    """The spec an experiment folder was run with (its ``spec.json``)."""
    folder = Path(folder)
    if not (folder / "spec.json").exists():
        raise DataError(f"{folder} is not an experiment folder (no spec.json)")
    _not_a_data_set(folder)
    return spec_from_dict(read_json(folder / "spec.json"), source=f"{folder}/spec.json")


def load(spec_or_folder: str | Path) -> CommonSpec:
    """The spec of a YAML file, or of an experiment folder (its ``spec.json``)."""
    path = Path(spec_or_folder)
    return spec_of_folder(path) if path.is_dir() else load_spec(path)


def _not_a_data_set(folder: Path) -> None:
    if (folder / "summary.json").exists() and not (folder / "experiment.json").exists():
        raise DataError(
            f"{folder} is a data set folder, not an experiment folder (divlab data info / "
            "ginc info describe it)"
        )


def kind_of_folder(folder: str | Path) -> Kind:
    """The kind recorded in an experiment folder (``spec.json``, else ``experiment.json``)."""
    _not_a_data_set(Path(folder))
    for name in ("spec.json", "experiment.json"):
        path = Path(folder) / name
        if path.exists():
            stored = read_json(path)
            if not isinstance(stored, dict):
                raise DataError(f"{path} is not a mapping of fields")
            return get(stored.get("kind", DEFAULT))
    raise DataError(
        f"{folder} is not an experiment folder (no spec.json); run the experiment first"
    )
