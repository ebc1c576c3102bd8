"""Executors: where the runs of an experiment execute, behind one interface.

Both take the same payloads and call the same ``execute_run`` (the run contract of
``divlab.experiments.runs``), and hand each record back as it arrives, so a kind's
progress, and a killed experiment's finished runs, do not depend on the backend.
``run_all`` is how every kind runs its runs: finished ones are read back, the others run
on the executor with their share of the cores, under a progress bar.

* ``LocalExecutor``: a process pool on this machine (the embedded default); ``spawn``
  workers, each with its share of the cores (``threads`` per worker).
* ``RayExecutor``: one Ray task per run with its resources (``num_cpus``, ``num_gpus``)
  and ``max_retries``, on an existing cluster (``address``) or a local ``ray.init()``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from divlab.errors import ConfigError, DivlabError
from divlab.experiments.runs import RunPayload, RunRecord, execute_run, is_complete, read_record
from divlab.optional import require_ray

OnResult = Callable[[RunRecord], None]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Executor:
    name = "executor"
    workers = 1

    def run(self, payloads: list[RunPayload], on_result: OnResult) -> None:
        raise NotImplementedError


def visible_gpus() -> list[int]:
    """Indices of the CUDA devices (without initialising CUDA in this process)."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def _pin_worker_to_gpu(gpu_slots) -> None:
    """Pool initializer: each worker takes one GPU for its life, before torch starts CUDA."""
    slot = gpu_slots.get()
    # a slot indexes the GPUs this process sees: the parent's own CUDA_VISIBLE_DEVICES
    # list where it set one (slot 0 of "2,3" is physical GPU 2)
    inherited = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    os.environ["CUDA_VISIBLE_DEVICES"] = inherited[slot] if slot < len(inherited) else str(slot)


class LocalExecutor(Executor):
    """A spawn process pool. With ``gpus`` (default: every visible CUDA device, unless
    ``use_gpus=False``), one worker per GPU, each pinned to its own device."""

    name = "local"

    def __init__(
        self, workers: int | None = None, gpus: list[int] | None = None, use_gpus: bool = True
    ) -> None:
        self.gpus = (gpus if gpus is not None else visible_gpus()) if use_gpus else []
        self.workers = workers or len(self.gpus) or available_cores()
        if self.gpus and self.workers > len(self.gpus):
            raise ConfigError(
                f"{self.workers} workers for {len(self.gpus)} GPUs: on GPUs the local executor "
                "runs one worker per device; lower workers or use the ray executor"
            )

    def run(self, payloads: list[RunPayload], on_result: OnResult) -> None:

        if not payloads:
            return
        workers = min(self.workers, len(payloads))
        context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
        options = {}
        if self.gpus:
            slots = context.Queue()
            for gpu in self.gpus[:workers]:
                slots.put(gpu)
            options = {"initializer": _pin_worker_to_gpu, "initargs": (slots,)}
        pool = ProcessPoolExecutor(workers, mp_context=context, **options)
        pending = {pool.submit(execute_run, p) for p in payloads}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    on_result(future.result())
        except BaseException:
            # Ctrl-C or a failed run: do not wait for the other runs (they resume later)
            workers_ = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in workers_:
                process.terminate()
            raise
        pool.shutdown(wait=True)


class RayExecutor(Executor):
    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        cpus_per_run: float = 1.0,
        gpus_per_run: float = 0.0,
        max_retries: int = 2,
    ) -> None:
        self.workers = workers or available_cores()
        self.address, self.cpus, self.gpus = address, cpus_per_run, gpus_per_run
        self.max_retries = max_retries

    def run(self, payloads: list[RunPayload], on_result: OnResult) -> None:
        ray = require_ray()
        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:  # a local instance sized to the workers asked for
                ray.init(
                    num_cpus=self.workers * self.cpus, include_dashboard=False, log_to_driver=False
                )
        try:
            task = ray.remote(
                num_cpus=self.cpus,
                num_gpus=self.gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
            )(execute_run)
            pending = [task.remote(p) for p in payloads]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    on_result(_unwrap(ray, ref))
        finally:
            if started_here:
                ray.shutdown()


def _unwrap(ray, ref) -> dict:
    """A task's record, with a DivlabError raised inside it re-raised as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.as_instanceof_cause()
        if isinstance(cause, DivlabError):
            raise type(cause)(str(cause).splitlines()[-1]) from None
        raise


def make_executor(
    kind: str, workers: int | None = None, use_gpus: bool = True, **ray_options
) -> Executor:
    if kind == "local":
        return LocalExecutor(workers, use_gpus=use_gpus)
    if kind == "ray":
        return RayExecutor(workers, **ray_options)
    raise ConfigError(f"unknown executor {kind!r}; choose local or ray")


def threads_per_worker(workers: int, requested: int | None = None) -> int:
    return requested or max(1, available_cores() // max(workers, 1))


def executor_for(
    spec,
    kind: str | None = None,
    workers: int | None = None,
    address: str | None = None,
) -> Executor:
    """The executor of ``spec`` (a CommonSpec), with ``kind`` / ``workers`` / ``address``
    overriding its ``executor`` section."""
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


def unfinished(payloads: list[RunPayload]) -> list[RunPayload]:
    """The payloads whose run has no ``result.json`` yet."""
    return [p for p in payloads if not is_complete(p.out)]


def share(executor: Executor, pending: int, requested: int | None) -> tuple[int, int]:
    """(workers, torch threads per run) for ``pending`` runs on ``executor``: the spec's
    ``executor.threads_per_worker`` if ``requested``, else the cores shared by the workers."""
    workers = min(executor.workers, max(pending, 1))
    return workers, threads_per_worker(workers, requested)


def run_all(
    payloads: list[RunPayload],
    executor: Executor,
    progress: bool = True,
    label: str = "runs",
    log=None,
) -> list[RunRecord]:
    """Run the unfinished payloads on ``executor`` (finished ones are read back), saying
    how many through ``log``; return every run's record, in the order of ``payloads``."""
    pending = unfinished(payloads)
    # the spec's executor.threads_per_worker (carried by the payloads), else cores / workers
    requested = next((p.threads for p in payloads if p.threads), None)
    workers, threads = share(executor, len(pending), requested)
    if log is not None:
        log(
            f"{label}: {len(payloads) - len(pending)} of {len(payloads)} done; running "
            f"{len(pending)} on {executor.name} ({workers} workers x {threads} threads)"
        )
    pending = [p.with_threads(threads) for p in pending]
    with RunProgress(len(payloads), len(payloads) - len(pending), progress, label) as bar:
        executor.run(pending, bar.advance)
    return [read_record(p) for p in payloads]


class RunProgress:
    """A rich progress bar over runs (or nothing when quiet)."""

    def __init__(self, total: int, done: int, enabled: bool, label: str = "runs") -> None:
        self.total, self.done, self.enabled, self.label = total, done, enabled, label

    def __enter__(self) -> RunProgress:
        if self.enabled:
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

    def advance(self, record: RunRecord) -> None:
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
