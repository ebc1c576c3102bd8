"""Benchmark: the run stage of an experiment on the local and Ray executors.

One CPU-bound GINC experiment (Plan 1, 4 conditions x 2 seeds = 8 runs of the ``mini``
model, ~10 s each on one core; diversity disabled, so no Task2Vec) is prepared once,
untimed: data, probe, measures (``Experiment.prepare_data``, ``prepare_probe``,
``measure``). For every configuration the prepared folder is copied to a fresh one and only
``executor.run(experiment.payloads(threads), on_result)`` is timed, i.e. the pool's or
Ray's start-up and shutdown, every run's training and evaluation, and the hand-back of
the records:

* local 1 x 2: ``LocalExecutor(1)``, 2 torch threads: the fair single-worker baseline on
  2 cores (every core busy, as the 2-worker configurations);
* local 1 x 1: ``LocalExecutor(1)``, 1 thread: the baseline of perfect scaling;
* local 2 x 1: ``LocalExecutor(2)`` (spawn pool), 1 thread per worker;
* ray 2 x 1: ``RayExecutor(2)`` (a local ``ray.init(num_cpus=2)``), 1 thread per task.

Per configuration: the wall time of the run stage, its speed-up against each baseline, the
mean run time inside the worker (``wall_seconds`` of ``result.json``: train + evaluate),
the start-up (first record's arrival minus its in-worker time: spawning the pool or
starting Ray, then importing torch and divlab) and the executor's overhead per run,
``(workers * wall - sum of in-worker wall_seconds) / runs``, in seconds and as a share of
the mean run time (it counts start-up, shutdown, hand-back and a worker left idle at the
end). Targets from the issue: speed-up >= 1.6x on 2 cores, overhead < 5 % of a run; they
are printed, never asserted. Every configuration must give each run the same ``loss``;
thread counts may change the float bits (a different reduction order), so the check
also says whether runs with the same threads agree.

The machine is shared: load from other processes slows the 2-worker configurations most
(they need both cores); the load average is printed next to each configuration.

Run::

    python bench/bench_executors.py
    python bench/bench_executors.py --quick             # smoke run
    python bench/bench_executors.py --skip-ray --runs-tokens 65536
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

# (label, executor, workers, threads per worker)
CONFIGURATIONS = (
    ("local 1 x 2", "local", 1, 2),
    ("local 1 x 1", "local", 1, 1),
    ("local 2 x 1", "local", 2, 1),
    ("ray 2 x 1", "ray", 2, 1),
)
BASELINES = ("local 1 x 2", "local 1 x 1")  # the first is the fair one on 2 cores
TARGET_SPEEDUP = 1.6
TARGET_OVERHEAD = 0.05


def _experiment_spec(runs_tokens: int, quick: bool) -> dict:
    """Plan 1 on 8 eval concepts, k in {1, 2, 4, 8}, 2 seeds: 8 runs of ``runs_tokens``."""
    return {
        "name": "bench-executors",
        "family": {"vocab_size": 50, "n_values": 10, "n_slots": 10, "seed": 0},
        "eval": {
            "n_concepts": 8,
            "n_docs": 32 if quick else 64,
            "doc_length": 512,
            "seed": 1,
            "prompts": {
                "n_prompts": 8 if quick else 16,
                "n_examples": [0, 2, 4],
                "example_lengths": [5],
                "n_ood_concepts": 0,
                "max_tokens": 128,
            },
        },
        "plan": {"kind": "nested", "k": [1, 2, 4, 8]},
        "training_data": {"n_tokens": runs_tokens, "doc_length": 512, "seed": 2},
        "probe": {"source": "random:mini"},  # never loaded: diversity is disabled
        "diversity": {"enabled": False},
        "model": {"preset": "mini"},
        "token_budget": runs_tokens,
        "seq_len": 128,
        "batch_tokens": 2048,
        "eval_every_tokens": runs_tokens // 4,
        "curve_docs": 8 if quick else 16,
        "device": "cpu",
        "seeds": [0, 1],
        "evaluation": {"limit": 8 if quick else 32, "prefix": 32, "length": 16},
    }


def _prepare(spec, folder: Path) -> None:
    """Data, probe and measures once (untimed); every configuration starts from a copy."""
    from divlab.experiments.kinds.diversity.run import Experiment

    experiment = Experiment(spec, folder)
    experiment.claim_folder()
    experiment.prepare_data(log=lambda *_: None)
    probe_info = experiment.prepare_probe(log=lambda *_: None)
    experiment.measure(probe_info, log=lambda *_: None)


def _time_run_stage(spec, prepared: Path, folder: Path, kind: str, workers: int, threads: int):
    from divlab.experiments.executors import LocalExecutor, RayExecutor, unfinished
    from divlab.experiments.kinds.diversity.run import Experiment

    shutil.copytree(prepared, folder)
    experiment = Experiment(spec, folder)
    experiment.claim_folder()  # the copy holds this same spec
    payloads = experiment.payloads(threads)
    done = len(payloads) - len(unfinished(payloads))
    if done:
        raise RuntimeError(f"{folder}: {done} runs already done")
    executor = LocalExecutor(workers) if kind == "local" else RayExecutor(workers)
    arrivals: list[tuple[float, dict]] = []
    started = time.perf_counter()

    def on_result(record: dict) -> None:
        arrivals.append((time.perf_counter() - started, record))

    executor.run(payloads, on_result)
    wall = time.perf_counter() - started
    records = [record for _, record in arrivals]
    if len(records) != len(payloads):
        raise RuntimeError(f"{kind}: {len(records)} records for {len(payloads)} runs")
    in_worker = [r["wall_seconds"] for r in records]
    first_at, first = arrivals[0]
    return {
        "wall": wall,
        "runs": len(records),
        "mean_run": statistics.mean(in_worker),
        "mean_train": statistics.mean(r["train_seconds"] for r in records),
        "startup": first_at - first["wall_seconds"],
        "tail": wall - arrivals[-1][0],
        "overhead": (workers * wall - sum(in_worker)) / len(records),
        "loss": {r["run_id"]: r["loss"] for r in records},
        "load": os.getloadavg()[0],
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _loss_check(results: dict[str, dict], threads: dict[str, int]) -> str:
    losses = {label: r["loss"] for label, r in results.items()}
    reference = next(iter(losses.values()))
    if all(loss == reference for loss in losses.values()):
        return f"identical in all {len(losses)} configurations"
    groups: dict[int, list[str]] = {}
    for label in losses:
        groups.setdefault(threads[label], []).append(label)
    within = all(
        all(losses[label] == losses[labels[0]] for label in labels) for labels in groups.values()
    )
    worst = max(abs(losses[label][run] - reference[run]) for label in losses for run in reference)
    if within:
        by_threads = "; ".join(f"{t} thread(s): {', '.join(ls)}" for t, ls in groups.items())
        return (
            f"DIFFER across thread counts only (max |delta| {worst:.2e}), identical within "
            f"each ({by_threads}): a different reduction order changes the float bits"
        )
    return f"DIFFER between configurations with the same threads (max |delta| {worst:.2e}): a bug"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--runs-tokens", type=int, help="token budget of every run (default 262144: 128 steps)"
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--skip-ray", action="store_true", help="leave out the Ray executor")
    args = parser.parse_args(argv)
    if args.runs_tokens is None:
        args.runs_tokens = 8192 if args.quick else 262144
    if args.runs_tokens < 2048:
        parser.error("--runs-tokens must be at least one batch (2048)")

    import torch

    torch.set_num_threads(1)  # the main process only waits; workers set their own threads
    from divlab.experiments.kinds.diversity.spec import DiversitySpec as ExperimentSpec

    if not args.skip_ray:
        from divlab.optional import require_ray

        require_ray()  # fail before any compute, with the extra to install
    spec = ExperimentSpec.from_dict(_experiment_spec(args.runs_tokens, args.quick))
    configurations = [c for c in CONFIGURATIONS if not (args.skip_ray and c[1] == "ray")]
    threads = {label: t for label, _, _, t in configurations}

    with tempfile.TemporaryDirectory(prefix="divlab-bench-") as tmp:
        prepared = Path(tmp) / "prepared"
        started = time.perf_counter()
        _prepare(spec, prepared)
        n_runs = len(spec.plan.k) * len(spec.seeds)
        print(
            f"executor benchmark: {n_runs} runs (k in {spec.plan.k} x seeds {spec.seeds}), "
            f"preset {spec.model.preset}, {spec.token_budget:,} tokens/run "
            f"({spec.token_budget // spec.batch_tokens} steps of {spec.batch_tokens:,}), "
            f"evaluation on {spec.evaluation.limit} docs + ICL; {os.cpu_count()} cores; "
            f"data prepared once in {time.perf_counter() - started:.1f} s (untimed)"
        )
        results: dict[str, dict] = {}
        for label, kind, workers, per_worker in configurations:
            folder = Path(tmp) / label.replace(" ", "")
            result = _time_run_stage(spec, prepared, folder, kind, workers, per_worker)
            results[label] = result
            print(
                f"  {label}: run stage {result['wall']:.1f} s, mean run {result['mean_run']:.2f} s "
                f"in the worker (train {result['mean_train']:.2f} s); load average "
                f"{result['load']:.2f} after"
            )
            shutil.rmtree(folder)

    baselines = [b for b in BASELINES if b in results]
    print(
        f"{'configuration':<13} {'wall s':>7} "
        + " ".join(f"{'vs ' + b.replace('local ', ''):>8}" for b in baselines)
        + f" {'run s':>6} {'start-up s':>10} {'tail s':>6} {'overhead/run':>13}"
    )
    for label, r in results.items():
        speedups = " ".join(f"{results[b]['wall'] / r['wall']:>7.2f}x" for b in baselines)
        print(
            f"{label:<13} {r['wall']:>7.1f} {speedups} {r['mean_run']:>6.2f} "
            f"{r['startup']:>10.2f} {r['tail']:>6.2f} "
            f"{r['overhead']:>6.2f} s {r['overhead'] / r['mean_run']:>5.1%}"
        )
    print(
        "  run s: mean in-worker time of a run (train + evaluate); start-up: first record's "
        "arrival minus its in-worker time; tail: last record to return of executor.run"
    )
    for label, r in results.items():
        line = f"{label}: overhead {r['overhead'] / r['mean_run']:.1%} of a run " + (
            f"(target < {TARGET_OVERHEAD:.0%}: "
            f"{_verdict(r['overhead'] / r['mean_run'] < TARGET_OVERHEAD)})"
        )
        if label not in BASELINES:
            for baseline in baselines:
                speedup = results[baseline]["wall"] / r["wall"]
                line += (
                    f"; speed-up vs {baseline} {speedup:.2f}x "
                    f"(target >= {TARGET_SPEEDUP}x: {_verdict(speedup >= TARGET_SPEEDUP)})"
                )
        print(line)
    if all(b in results for b in BASELINES):
        two, one = (results[b]["mean_run"] for b in BASELINES)
        print(
            f"threads: a run takes {two:.2f} s on 2 threads, {one:.2f} s on 1 "
            f"({one / two:.2f}x from the second thread; below 1x: the cores were not free)"
        )
    print(f"check: loss per run_id {_loss_check(results, threads)}")


if __name__ == "__main__":  # spawn workers re-import this file: nothing may run at import
    main()
