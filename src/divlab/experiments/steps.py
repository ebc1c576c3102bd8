"""Building blocks that every experiment kind composes (``divlab.experiments.kinds``).

* ``claim_folder``: bind a folder to one spec (a relaunch with another spec is refused);
* ``ginc_eval_set`` / ``ginc_training_set``: the GINC data sets of a spec, generated once
  into ``data/`` under a hash of what defines them (so a relaunch reuses them);
* ``run_payload`` + ``run_all``: train-and-evaluate runs through the spec's executor
  (local or Ray), with the run contract of ``divlab.experiments.execute``: each run is
  resumable, and ``result.json`` marks it finished;
* ``write_info``: ``experiment.json`` (spec, provenance, versions) for the report;
  ``finish`` writes it, then the report, and returns the run's summary;
* ``executor_for``, ``share``, ``RunProgress``, ``hardware``: the executor a spec asks for,
  how its runs share the cores, the progress bar over runs, the machine's description.
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

from divlab.data.ginc.dataset import ConceptSetSpec
from divlab.errors import ConfigError, DataError
from divlab.experiments import plan as planning
from divlab.experiments.execute import is_complete
from divlab.experiments.executors import (
    Executor,
    available_cores,
    make_executor,
    threads_per_worker,
)
from divlab.experiments.spec import CommonSpec
from divlab.io import read_json, write_json


def claim_folder(root: str | Path, spec) -> Path:
    """Create ``root`` for ``spec``, or check that it holds this same experiment.

    The stored spec is compared after validation, so a folder written by an older divlab
    (before a field with a default existed, e.g. ``kind``) is the same experiment."""
    root = Path(root)
    resolved = spec.model_dump(mode="json")
    if (root / "spec.json").exists():
        if _resolved(root / "spec.json", spec) != resolved:
            raise ConfigError(
                f"{root} holds an experiment with a different spec; choose another --out "
                "(or delete the folder to start over)"
            )
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not a divlab experiment folder")
    write_json(root / "spec.json", resolved)
    return root


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


def ginc_eval_set(
    spec, root: Path, concepts: list[int] | None = None, seed: int | None = None, name="eval"
) -> Path:
    """``D_eval`` of a GINC spec (eval concepts, own seed, ICL prompts), generated once.

    With ``concepts``: an eval set of those concept ids instead (same size, family and
    oracle, no prompts), e.g. one per domain or partition, from ``seed`` (give each its
    own, derived from ``eval.seed``)."""
    data = planning.eval_data_spec(spec)
    if concepts is not None:
        data["concepts"] = ConceptSetSpec(plan="ids", ids=list(concepts)).model_dump(mode="json")
        data["prompts"] = None
    return _generate_once(root, name, data, seed)


def ginc_training_set(
    spec,
    root: Path,
    name: str,
    concepts: ConceptSetSpec | list[int],
    seed: int | None = None,
    **knobs,
) -> Path:
    """A GINC training set of ``concepts`` (a ConceptSetSpec, or concept ids) under the
    spec's ``training_data`` knobs; ``knobs`` (``n_tokens``, ``weighting``, ``noise``,
    ``duplicates``, ``zipf_exponent``) override them, and ``seed`` the documents' seed
    (sets that must not share random streams need their own). Generated once into
    ``data/<name>-<hash>``."""
    from divlab.experiments.spec import TrainingSetSpec

    if not isinstance(concepts, ConceptSetSpec):
        concepts = ConceptSetSpec(plan="ids", ids=list(concepts))
    entry = TrainingSetSpec(name=name, concepts=concepts, **knobs) if knobs else None
    return _generate_once(root, name, planning._ginc_data(spec, concepts, entry), seed)


def _generate_once(root: Path, name: str, data: dict, seed: int | None) -> Path:
    """Generate the GincSpec ``data`` (with ``seed``, if given) into
    ``data/<name>-<hash of data>``, unless a finished data set is there."""
    from divlab.data.ginc.dataset import GincSpec, generate

    if seed is not None:
        data["seed"] = seed
    path = Path(root) / "data" / f"{name}-{planning.stable_hash(data, 8)}"
    if not (path / "summary.json").exists():
        generate(GincSpec.from_dict(data), path, overwrite=True)
    return path


def run_payload(
    spec,
    root: Path,
    name: str,
    data: Path,
    seed: int,
    eval_data: Path,
    *,
    evaluation: dict | None = None,
    **train_overrides,
) -> dict:
    """One train-and-evaluate run of the spec's recipe on ``data`` (``train_overrides``:
    TrainSpec fields such as ``token_budget``, ``init_from``, ``shuffle``,
    ``optimizer``). Its folder is ``runs/<name>-s<seed>-<hash>``, the hash covering the
    data, the recipe and the evaluation, so a changed recipe never reuses a stale run."""
    recipe = planning.train_recipe(spec, train_overrides) | {"seed": seed}
    evaluation = evaluation or spec.evaluation.model_dump(mode="json")
    run_id = f"{name}-s{seed}-" + planning.stable_hash([relative(data, root), recipe, evaluation])
    return {
        "run_id": run_id,
        "condition": name,
        "seed": seed,
        "out": str(Path(root) / "runs" / run_id),
        "train": recipe | {"data": str(data), "eval_data": str(eval_data)},
        "evaluation": evaluation,
        "eval_data": str(eval_data),
        "threads": spec.executor.threads_per_worker,  # None: run_all shares the cores
    }


def relative(path: Path, root: Path) -> str:
    """``path`` inside the experiment folder as a relative path, so a moved or copied
    folder keeps its run ids (and its finished runs)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def unfinished(payloads: list[dict]) -> list[dict]:
    """The payloads whose run has no ``result.json`` yet."""
    return [p for p in payloads if not is_complete(p["out"])]


def share(executor: Executor, pending: int, requested: int | None) -> tuple[int, int]:
    """(workers, torch threads per run) for ``pending`` runs on ``executor``: the spec's
    ``executor.threads_per_worker`` if ``requested``, else the cores shared by the workers."""
    workers = min(executor.workers, max(pending, 1))
    return workers, threads_per_worker(workers, requested)


def run_all(
    payloads: list[dict],
    executor: Executor,
    progress: bool = True,
    label: str = "runs",
    log=None,
) -> list[dict]:
    """Run the unfinished payloads on ``executor`` (finished ones are read back), saying
    how many through ``log``; return every run's record, in the order of ``payloads``."""
    pending = unfinished(payloads)
    # the spec's executor.threads_per_worker (carried by the payloads), else cores / workers
    requested = next((p.get("threads") for p in payloads if p.get("threads")), None)
    workers, threads = share(executor, len(pending), requested)
    if log is not None:
        log(
            f"{label}: {len(payloads) - len(pending)} of {len(payloads)} done; running "
            f"{len(pending)} on {executor.name} ({workers} workers x {threads} threads)"
        )
    for payload in pending:
        payload["threads"] = threads
    with RunProgress(len(payloads), len(payloads) - len(pending), progress, label) as bar:
        executor.run(pending, bar.advance)
    return [read_json(Path(p["out"]) / "result.json") for p in payloads]


def write_info(root: Path, spec, provenance: dict | None = None, **extra) -> None:
    """``experiment.json``: the kind, spec, provenance and versions, for the report."""
    from divlab.train.checkpoint import versions

    path = Path(root) / "experiment.json"
    previous = read_json(path) if path.exists() else {}
    software = versions()
    write_json(
        path,
        {
            "name": spec.name,
            "kind": getattr(spec, "kind", "diversity"),
            "spec": spec.model_dump(mode="json"),
            "provenance": {
                **previous.get("provenance", {}),
                **(provenance or {}),
                "hardware": hardware(),
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
    executor: Executor | None = None,
    **extra,
) -> dict:
    """The last stage of every kind: ``experiment.json`` (with the provenance: start, end,
    executor), then the report if asked; returns ``result`` with ``out`` and ``report``."""
    provenance = {"started": started, "finished": now()}
    if executor is not None:
        provenance["executor"] = {"kind": executor.name, "workers": executor.workers}
    write_info(root, spec, provenance, **extra)
    result = {"out": str(root), **result}
    if report:
        from divlab.report import build_report

        result["report"] = str(build_report(root))
    return result


def executor_for(
    spec: CommonSpec,
    kind: str | None = None,
    workers: int | None = None,
    address: str | None = None,
) -> Executor:
    """The spec's executor, with ``kind`` / ``workers`` / ``address`` overriding it."""
    options = spec.executor
    kind = kind or options.kind
    workers = workers or (None if options.workers == "auto" else options.workers)
    if kind != "ray":
        return make_executor(kind, workers, use_gpus=spec.device != "cpu")
    return make_executor(
        kind,
        workers,
        address=address or options.address,
        cpus_per_run=options.cpus_per_run,
        gpus_per_run=options.gpus_per_run,
        max_retries=options.max_retries,
    )


def hardware() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "cpu_cores": available_cores(),
        "cuda": torch.cuda.is_available(),
    }
    if info["cuda"]:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


class RunProgress:
    """A rich progress bar over runs (or nothing when quiet)."""

    def __init__(self, total: int, done: int, enabled: bool, label: str = "runs") -> None:
        self.total, self.done, self.enabled, self.label = total, done, enabled, label

    def __enter__(self) -> RunProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                self.label,
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                "{task.description}",
            )
            self.bar.start()
            self.task = self.bar.add_task("", total=self.total, completed=self.done)
        return self

    def advance(self, record: dict) -> None:
        if self.enabled:
            loss = record.get("loss")
            loss = f" loss {loss:.3f}" if loss is not None else ""
            self.bar.update(
                self.task,
                advance=1,
                description=f"last: {record['condition']} seed {record['seed']}{loss}",
            )

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.stop()
