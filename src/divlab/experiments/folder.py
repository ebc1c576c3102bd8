"""An experiment folder: claimed by one spec, and described by one ``experiment.json``.

* ``claim_folder``: bind a folder to one spec (a relaunch with another spec is refused);
* ``write_record``: ``experiment.json`` (name, kind, spec, provenance, versions and what a
  kind adds), the one writer of that file; ``finish`` writes it, then the report;
* ``logger``, ``now``, ``hardware``: a kind's log, the clock, the machine's description.
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

import torch

from divlab.errors import ConfigError, DataError
from divlab.experiments.executors import Executor, available_cores
from divlab.experiments.report import build_report
from divlab.io import read_json, write_json
from divlab.train.checkpoint import versions

RECORD = "experiment.json"


def claim_folder(root: str | Path, spec) -> Path:
    """Create ``root`` for ``spec``, or check that it holds this same experiment.

    The stored spec is compared after validation, so a folder written by an older divlab
    (before a field with a default existed, e.g. ``kind``) is the same experiment."""
    root = Path(root)
    resolved = spec.model_dump(mode="json")
    if (root / "spec.json").exists():
        stored = _resolved(root / "spec.json", spec)
        if _results(stored) != _results(resolved):
            raise ConfigError(
                f"{root} holds an experiment with a different spec; choose another --out "
                "(or delete the folder to start over)"
            )
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not a divlab experiment folder")
    write_json(root / "spec.json", resolved)
    return root


# Spec fields that change how an experiment is watched, not what it computes: a relaunch
# may change them.
MONITORING = ("logging",)


def _results(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in MONITORING}


def _resolved(path: Path, spec) -> dict:
    """The spec stored at ``path`` as this version resolves it; a clear error if it is of
    another kind or no longer validates (a folder of another divlab version)."""
    stored = read_json(path)
    if not isinstance(stored, dict):
        raise DataError(f"{path} is not an experiment spec (not a mapping of fields)")
    kind = stored.get("kind", "diversity")
    if kind != spec.kind:
        raise ConfigError(
            f"{path.parent} holds a {kind} experiment, not a {spec.kind} one; choose another --out"
        )
    try:
        return type(spec).from_dict(stored, source=str(path)).model_dump(mode="json")
    except ConfigError as error:
        raise ConfigError(
            f"{path.parent} holds an experiment whose spec this divlab cannot read ({error}); "
            "resume it with the divlab version that wrote it, or choose another --out"
        ) from None


def logger(log, progress: bool):
    """The ``log`` a kind's ``run`` was given, else ``print`` (or nothing when quiet)."""
    return log or (print if progress else (lambda *_: None))


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_record(root: Path, spec, provenance: dict | None = None, **extra) -> None:
    """``experiment.json``: the kind, spec, provenance (a previous write's, updated: a
    rebuild of the tables elsewhere keeps the hardware the runs ran on) and versions,
    plus the ``extra`` fields of the kind, for the report."""
    path = Path(root) / RECORD
    previous = read_json(path) if path.exists() else {}
    software = versions()  # runs git once
    write_json(
        path,
        {
            "name": spec.name,
            "kind": spec.kind,
            "spec": spec.model_dump(mode="json"),
            "provenance": {
                **previous.get("provenance", {}),
                **(provenance or {}),
                "git_sha": software.get("git_sha"),
                "versions": software,
                "seeds": spec.seeds,
            },
            **extra,
        },
    )


def finish(
    root: Path,
    spec,
    result: dict,
    report: bool,
    started: str,
    executor: Executor | dict | None = None,
    **extra,
) -> dict:
    """The last stage of every kind: ``experiment.json`` (with the provenance: start, end,
    executor), then the report if asked; returns ``result`` with ``out`` and ``report``."""
    provenance = {"started": started, "finished": now(), "hardware": hardware()}
    if isinstance(executor, Executor):
        executor = {"kind": executor.name, "workers": executor.workers}
    if executor is not None:
        provenance["executor"] = executor
    write_record(root, spec, provenance, **extra)
    result = {"out": str(root), **result}
    if report:
        result["report"] = str(build_report(root))
    return result


def hardware() -> dict:

    info = {
        "platform": platform.platform(),
        "cpu_cores": available_cores(),
        "cuda": torch.cuda.is_available(),
    }
    if info["cuda"]:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
