"""GPU check: divlab on one H100/H200 in at most 8 minutes (issue 15, item 5).

This is the one script issue 15 asks for. It measures, in one process, each section timed:

* data: a GINC data set (vocabulary 54, documents of 1,024 tokens) for the training runs;
* 125m eager: training tokens/s of the ``125m`` preset (85M parameters in GINC's
  vocabulary) at sequence 1,024 in bf16 (divlab's bf16 autocast on CUDA), 512 sequences
  (524,288 tokens) per optimizer step, micro-batch ``auto`` (the plan's largest that
  fits the GPU; if it runs out of memory, half of it, and so on), through divlab's own
  loop (``Run(spec, out).fit``: ``train()`` without its learning-curve and checkpoint
  hooks, which would land inside the timed window). tokens/s is wall-clock over the steps after
  ``--warmup`` (CUDA synchronised at the window's ends); MFU = ``6 N tokens/s`` over the
  GPU's peak dense bf16 FLOP/s (``divlab.train.loop.PEAK_BF16_FLOPS``; N the matmul
  parameters, non-embedding plus the output head, as run.json's ``mfu``), and beside it
  MFU counting the attention FLOPs
  too (``6 N + 6 L s h`` per token, ``divlab.train.plan``);
* memory: ``torch.cuda.max_memory_allocated`` over that eager run (peak stats reset
  when the loop starts, the model already on the GPU) against the plan's estimate
  ``divlab.train.plan.memory_bytes`` for the micro-batch the run used (``cuda=True``),
  and whether the plan's ``auto`` micro-batch ran at all;
* Task2Vec closed form: embeddings/s of ``divlab.measure.diversity.embed`` (the
  closed-form estimator, no head fine-tune) with a random-init ``125m`` probe in a
  50,257-token vocabulary on batches of 64 x 128 random tokens, on the GPU and on the CPU
  (2 batches: it is slow there), the same batches; the ratio, and that both devices give
  the same embeddings (normalised cosine distance);
* experiment: a 2-run experiment (``kind: diversity``, 1 condition x 2 seeds, Task2Vec
  disabled, tiny model) through ``divlab.experiments.run`` on the local executor pinned
  to GPU 0 (``LocalExecutor(gpus=[0])``); both runs' run.json must say device ``cuda``;
* losses: one small TrainSpec (``mini``, 40 steps of 4,096 tokens) trained with
  ``divlab.train.train`` on the GPU and on the CPU; their ``train_log.jsonl`` losses
  compared. CUDA trains under bf16 autocast, the CPU in float32, so they are not bit
  equal: the first step's loss must agree within 1 % (relative) and the last step's
  within 2 % (generous: bf16 autocast emulated on a CPU moved these losses by < 1e-4);
* 125m compile: the 125m run again with ``compile: true`` at the eager run's micro-batch
  (its first step includes the compilation; it runs last, so a slow compile cannot cost
  the other sections).

Targets, each printed with PASS or FAIL: MFU >= 40 % for 125m at sequence 1,024 in
bf16 (eager and compiled each judged; 6N MFU); memory estimate within 15 % of
``max_memory_allocated``; the two checks above on the losses; GPU and CPU Task2Vec
embeddings within 1e-4 normalised cosine distance; both experiment runs on ``cuda``.
Every number also goes to ``--out`` (JSON, rewritten after each section, so a killed run
leaves what it had). The exit status is 1 when a check FAILs or a section crashed.

Sized to finish well within 8 minutes on an H100 (about 4 by the sizes' arithmetic; not
yet run on one): each 125m variant is 35 steps of 524,288 tokens (5 warm-up + 30 timed,
``--steps``/``--warmup``); the elapsed time is printed after every section, and a
section that would end past ``--budget-s`` (default 480 s) by its expected length
(``EXPECTED_S``) is skipped, not run.

Run::

    python bench/gpu_check.py                         # on a GPU machine (CUDA)
    python bench/gpu_check.py --skip-compile --out gpu_check.json
    python bench/gpu_check.py --device cpu --smoke    # toy sizes on the CPU: tests the
                                                      # script itself (about a minute)

``--smoke`` runs every section at toy size: the ``small`` preset at sequence 256 for the
throughput runs, a ``small`` probe in a 2,048-token vocabulary, a few steps, no compile
section, no MFU target; with ``--device cpu`` the GPU-vs-CPU comparisons become CPU vs
CPU (they must then agree exactly) and the memory section reports the estimate only
(``max_memory_allocated`` is CUDA's).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import itertools
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Targets from the issue, and the tolerances of the checks this script adds.
TARGET_MFU = 0.40
TARGET_MEMORY = 0.15  # |max_memory_allocated / estimate - 1|
LOSS_FIRST_RTOL = 1e-2  # first-step loss, GPU (bf16 autocast) vs CPU (float32)
LOSS_LAST_RTOL = 2e-2  # last-step loss
EMBEDDING_DISTANCE = 1e-4  # normalised cosine distance between GPU and CPU embeddings
SEED = 0
# Seconds each section is expected to take on an H100 at the full sizes (a guess from the
# FLOPs; not yet measured): a section that would end past --budget-s is skipped.
EXPECTED_S = {
    "eager": 60,
    "memory": 0,
    "task2vec": 30,
    "experiment": 60,
    "losses": 30,
    "compile": 150,
}

SIZES = {
    "full": {
        "preset": "125m",
        "seq_len": 1024,
        "batch_tokens": 524_288,
        "warmup": 5,
        "steps": 30,
        "lr": 6e-4,
        "train_docs": 2048,  # 2.1M tokens: 4 steps an epoch, the loop cycles epochs
        "t2v_preset": "125m",
        "t2v_vocab": 50_257,
        "t2v_batch_size": 64,
        "t2v_seq_len": 128,
        "t2v_device_batches": 16,
        "t2v_cpu_batches": 2,
        "loss_steps": 40,
    },
    "smoke": {
        "preset": "small",
        "seq_len": 256,
        "batch_tokens": 2048,
        "warmup": 2,
        "steps": 4,
        "lr": 1e-3,
        "train_docs": 128,
        "t2v_preset": "small",
        "t2v_vocab": 2048,
        "t2v_batch_size": 8,
        "t2v_seq_len": 64,
        "t2v_device_batches": 3,
        "t2v_cpu_batches": 2,
        "loss_steps": 12,
    },
}
LOSS_RECIPE = {"preset": "mini", "seq_len": 128, "batch_tokens": 4096, "lr": 3e-3}


# ---- the report ---------------------------------------------------------------------------


class Report:
    """Sections, their numbers and checks; printed as it goes, written to JSON after each."""

    def __init__(self, path: Path, args: argparse.Namespace) -> None:
        self.path, self.started = path, time.perf_counter()
        self.data: dict = {"args": vars(args), "versions": {}, "sections": {}, "checks": []}
        self.rows: list[tuple[str, str, str, str, float]] = []  # the summary table

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def check(self, section: str, what: str, value: str, target: str, ok: bool | None) -> str:
        """Record a check; ``ok`` None: no target applies here (SKIP)."""
        verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        self.data["checks"].append(
            {
                "section": section,
                "check": what,
                "value": value,
                "target": target,
                "verdict": verdict,
            }
        )
        return verdict

    def run(self, name: str, function, expected_s: float, *args) -> dict | None:
        """Run one section: its numbers are what ``function`` returns (``result`` its one
        line, ``short``/``target``/``verdict`` for the summary); a crash is an ERROR, not
        the end. Skipped if it would end past ``--budget-s`` (``expected_s``: its length
        on an H100, a guess)."""
        budget = self.data["args"]["budget_s"]
        if self.elapsed() + expected_s > budget:
            print(
                f"[{name}] SKIP: {self.elapsed():.0f} s elapsed + about {expected_s:.0f} s for "
                f"this section would pass --budget-s {budget:.0f}"
            )
            self.rows.append((name, "skipped (time budget)", "", "SKIP", 0.0))
            self.data["sections"][name] = {"skipped": "time budget"}
            self.save()
            return None
        print(f"[{name}] ...", flush=True)
        started = time.perf_counter()
        try:
            out = function(*args)
        except Exception as e:
            seconds = time.perf_counter() - started
            traceback.print_exc()
            message = f"{type(e).__name__}: {e}".splitlines()[0][:160]
            print(f"[{name}] ERROR after {seconds:.1f} s: {message}", flush=True)
            self.rows.append((name, message[:46], "", "ERROR", seconds))
            self.data["sections"][name] = {"error": message, "seconds": seconds}
            self.data["checks"].append({"section": name, "check": "ran", "verdict": "ERROR"})
            self.save()
            return None
        finally:
            _free_memory()
        seconds = time.perf_counter() - started
        out["seconds"] = seconds
        self.data["sections"][name] = out
        self.rows.append(
            (name, out["short"], out.get("target", ""), out.get("verdict", "INFO"), seconds)
        )
        print(
            f"[{name}] {out['result']}"
            + (f"  {out['target']}: {out['verdict']}" if out.get("target") else "")
            + f"\n[{name}] done in {seconds:.1f} s; elapsed {self.elapsed():.1f} s",
            flush=True,
        )
        self.save()
        return out

    def save(self) -> None:
        self.data["total_seconds"] = self.elapsed()
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")

    def summary(self) -> bool:
        """Print the summary table and every check; True if nothing FAILed or crashed."""
        print(f"\nsummary ({self.elapsed():.0f} s in all)")
        print(f"  {'section':<13} {'result':<46} {'target':<28} {'verdict':<7} {'s':>6}")
        for name, short, target, verdict, seconds in self.rows:
            print(f"  {name:<13} {short:<46} {target:<28} {verdict:<7} {seconds:>6.1f}")
        print("checks")
        for c in self.data["checks"]:
            if c["verdict"] == "ERROR":
                print(f"  {c['section']:<13} the section crashed: ERROR")
                continue
            print(
                f"  {c['section']:<13} {c['check']}: {c['value']} (target {c['target']}): "
                f"{c['verdict']}"
            )
        bad = [c for c in self.data["checks"] if c["verdict"] in ("FAIL", "ERROR")]
        self.data["ok"] = not bad
        self.save()
        print(f"all numbers: {self.path}" + ("" if not bad else f"; {len(bad)} FAIL/ERROR"))
        return not bad


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# ---- header ---------------------------------------------------------------------------


def versions(args: argparse.Namespace) -> dict:
    import numpy
    import torch
    import transformers

    import divlab
    from divlab.experiments.executors import available_cores

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "divlab": divlab.__version__,
        "cpu_cores": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "cuda_available": torch.cuda.is_available(),
    }
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_count=torch.cuda.device_count(),
            capability=f"{props.major}.{props.minor}",
            gpu_memory_bytes=props.total_memory,
            multiprocessors=props.multi_processor_count,
            peak_bf16_flops=_peak_flops(args),
        )
    return info


def _peak_flops(args: argparse.Namespace) -> float | None:
    """The GPU's peak dense bf16 FLOP/s: ``--peak-tflops``, else divlab's table by name."""
    import torch

    from divlab.train.loop import PEAK_BF16_FLOPS

    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if args.device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


# ---- sections -------------------------------------------------------------------------


def make_data(folder: Path, size: dict) -> dict:
    from divlab.data.ginc import GincSpec, generate
    from divlab.data.store import open_dataset

    spec = GincSpec.from_dict(
        {
            "concepts": {"n_eval": 5},
            "seed": SEED,
            "splits": {
                "train": {"n_docs": size["train_docs"], "doc_length": 1024, "oracle": False},
                "eval": {"n_docs": 32, "doc_length": 1024, "oracle": False},
            },
            "prompts": None,
        }
    )
    path = generate(spec, folder / "ginc")
    dataset = open_dataset(path)
    tokens = size["train_docs"] * 1024
    return {
        "result": f"GINC {size['train_docs']} train docs x 1,024 tokens ({tokens:,} tokens), "
        f"vocabulary {dataset.vocab_size}",
        "short": f"{tokens / 1e6:.1f}M tokens, vocab {dataset.vocab_size}",
        "path": str(path),
        "vocab_size": dataset.vocab_size,
        "train_tokens": tokens,
    }


def _throughput_spec(data: str, size: dict, device: str, compile_: bool, micro="auto"):
    from divlab.train import TrainSpec

    return TrainSpec.from_dict(
        {
            "data": data,
            "eval_split": None,
            "model": {"preset": size["preset"]},
            "token_budget": (size["warmup"] + size["steps"]) * size["batch_tokens"],
            "seq_len": size["seq_len"],
            "batch_tokens": size["batch_tokens"],
            "micro_batch_size": micro,
            "optimizer": {"lr": size["lr"]},
            "schedule": {"warmup_fraction": 0.1},
            "device": device,
            "compile": compile_,
            "seed": SEED,
        }
    )


def throughput(
    report: Report, folder: Path, data: dict, size: dict, args, compile_: bool, micro="auto"
) -> dict:
    """One run of the throughput preset through divlab's loop, its tokens/s and MFU over
    the steps after the warm-up, and its peak CUDA memory. If the micro-batch (``auto``:
    the plan's) runs out of CUDA memory, the run starts again at half of it: the plan's
    estimate is what this script checks, and a low one must not cost the throughput."""
    import statistics

    import torch

    from divlab.train import Callback, Run
    from divlab.train.plan import matmul_parameters, micro_batch_size, model_shape

    cuda = args.device == "cuda"
    spec = _throughput_spec(data["path"], size, args.device, compile_, micro)
    planned = micro_batch_size(spec, data["vocab_size"], torch.device(args.device))
    warmup, last = size["warmup"], spec.steps

    class Clock(Callback):
        """Wall-clock at the end of steps 1, warmup and last (CUDA synchronised there);
        on CPU every step's end (the median step). Peak CUDA memory from the loop's start."""

        def __init__(self) -> None:
            self.ends: dict[int, float] = {}
            self.peak: int | None = None

        def on_start(self, run: Run) -> None:
            if cuda:
                torch.cuda.synchronize(run.device)
                torch.cuda.reset_peak_memory_stats(run.device)
            self.start = time.perf_counter()

        def on_step(self, run: Run) -> None:
            step = run.state.step
            if cuda and step not in (1, warmup, last):
                return
            if cuda:
                torch.cuda.synchronize(run.device)
            self.ends[step] = time.perf_counter()

        def on_end(self, run: Run) -> None:
            if cuda:
                torch.cuda.synchronize(run.device)
                self.peak = torch.cuda.max_memory_allocated(run.device)

    name = "compile" if compile_ else "eager"
    out_of_memory: list[int] = []  # the micro-batches that did not fit
    while True:
        clock = Clock()
        failed = False
        try:
            summary = Run(spec, folder / f"run-{name}", overwrite=True).fit([clock])
        except torch.cuda.OutOfMemoryError:
            failed = True  # handled below, once the traceback (and its tensors) is gone
        if not failed:
            break
        used = micro_batch_size(spec, data["vocab_size"], torch.device(args.device))
        out_of_memory.append(used)
        _free_memory()
        print(f"  micro-batch {used} ran out of CUDA memory; again at {used // 2}", flush=True)
        if used < 2:
            raise RuntimeError("one sequence per micro-batch ran out of CUDA memory")
        spec = _throughput_spec(data["path"], size, args.device, compile_, used // 2)
    seconds = clock.ends[last] - clock.ends[warmup]
    timed = last - warmup
    tokens_per_s = timed * spec.batch_tokens / seconds
    parameters, shape = model_shape(spec, data["vocab_size"])
    attention = 6 * shape["layers"] * spec.seq_len * shape["hidden"]  # per token
    peak = _peak_flops(args)
    matmul = matmul_parameters(parameters, shape)  # non-embedding + the output head
    mfu = 6 * matmul * tokens_per_s / peak if peak else None
    mfu_attention = (6 * matmul + attention) * tokens_per_s / peak if peak else None
    out = {
        "preset": size["preset"],
        "compile": compile_,
        "parameters": parameters["total"],
        "parameters_non_embedding": parameters["non_embedding"],
        "seq_len": spec.seq_len,
        "batch_tokens": spec.batch_tokens,
        "micro_batch_size": summary["micro_batch_size"],
        "requested_micro_batch_size": micro,
        "plan_micro_batch_size": planned,
        "out_of_memory_micro_batch_sizes": out_of_memory,
        "attention": summary.get("attention"),
        "steps": spec.steps,
        "warmup_steps": warmup,
        "timed_steps": timed,
        "timed_seconds": seconds,
        "tokens_per_second": tokens_per_s,
        "first_step_seconds": clock.ends[1] - clock.start,
        "summary_tokens_per_second": summary["tokens_per_second"],  # all steps, run.json
        "summary_mfu": summary.get("mfu"),
        "final_train_loss": summary["final_train_loss"],
        "peak_flops": peak,
        "mfu": mfu,
        "mfu_with_attention": mfu_attention,
        "peak_memory_allocated": clock.peak,
    }
    if not cuda:
        steps = sorted(clock.ends)
        durations = [
            clock.ends[b] - clock.ends[a] for a, b in itertools.pairwise(steps) if a >= warmup
        ]
        out["median_step_tokens_per_second"] = spec.batch_tokens / statistics.median(durations)
    line = (
        f"{size['preset']} seq {spec.seq_len} {'compiled' if compile_ else 'eager'}: "
        f"{tokens_per_s:,.0f} tokens/s over {timed} steps of {spec.batch_tokens:,} tokens "
        f"(micro-batch {out['micro_batch_size']}"
        + (f", after {out_of_memory} ran out of memory" if out_of_memory else "")
        + f", {out['attention']}, first step {out['first_step_seconds']:.1f} s)"
    )
    section = f"125m-{name}" if not args.smoke else f"{size['preset']}-{name}"
    if mfu is not None:
        line += f"; MFU {mfu:.1%} (6N), {mfu_attention:.1%} with attention"
        target_applies = size["preset"] == "125m" and spec.seq_len == 1024 and cuda
        ok = (mfu >= TARGET_MFU) if target_applies else None
        out["target"] = f"MFU >= {TARGET_MFU:.0%}"
        out["verdict"] = report.check(section, "MFU (6N, bf16)", f"{mfu:.1%}", out["target"], ok)
    else:
        line += "; MFU n/a (" + ("CPU" if not cuda else "GPU peak unknown: --peak-tflops") + ")"
        out["target"] = f"MFU >= {TARGET_MFU:.0%}"
        out["verdict"] = report.check(section, "MFU (6N, bf16)", "n/a", out["target"], None)
    out["result"] = line
    out["short"] = f"{tokens_per_s:,.0f} tok/s, MFU " + (
        f"{mfu:.1%} ({mfu_attention:.1%} +attn)" if mfu is not None else "n/a"
    )
    return out


def memory(report: Report, eager: dict | None, data: dict, size: dict, args) -> dict:
    """The eager run's peak CUDA memory against the plan's estimate at its micro-batch."""
    import torch

    from divlab.train.plan import memory_bytes, model_shape, run_cost

    if eager is None:
        raise RuntimeError("the eager throughput run did not finish: nothing to compare")
    spec = _throughput_spec(data["path"], size, args.device, False)
    parameters, shape = model_shape(spec, data["vocab_size"])
    micro = eager["micro_batch_size"]
    cuda = args.device == "cuda"
    estimate = memory_bytes(
        parameters["total"], shape, spec.seq_len, micro, cuda, spec.activation_checkpointing
    )
    device_memory = torch.cuda.get_device_properties(0).total_memory if cuda else None
    planned = run_cost(spec, data["vocab_size"], memory=device_memory, cuda=cuda)
    out = {
        "micro_batch_size": micro,
        "plan_micro_batch_size": planned.micro_batch_size,
        "estimate_bytes": estimate,
        "optimizer_state_bytes": 16 * parameters["total"],
        "measured_bytes": eager["peak_memory_allocated"],
        "device_memory_bytes": device_memory,
        "target": f"within {TARGET_MEMORY:.0%}",
    }
    if out["measured_bytes"] is None:
        out["result"] = (
            f"estimate {_gib(estimate)} at micro-batch {micro} ({'CUDA' if cuda else 'CPU'} "
            "plan); measured n/a (max_memory_allocated is CUDA's)"
        )
        out["short"] = f"estimate {_gib(estimate)}, measured n/a"
        out["verdict"] = report.check("memory", "measured / estimate", "n/a", out["target"], None)
        return out
    ratio = out["measured_bytes"] / estimate
    out["ratio"] = ratio
    out["result"] = (
        f"max_memory_allocated {_gib(out['measured_bytes'])} vs plan estimate {_gib(estimate)} "
        f"at micro-batch {micro} (plan picks {planned.micro_batch_size}): measured/estimate "
        f"{ratio:.3f}"
    )
    out["short"] = f"{_gib(out['measured_bytes'])} / est. {_gib(estimate)} = {ratio:.3f}"
    out["verdict"] = report.check(
        "memory", "measured / estimate", f"{ratio:.3f}", out["target"],
        abs(ratio - 1) <= TARGET_MEMORY,
    )  # fmt: skip
    failed = eager["out_of_memory_micro_batch_sizes"]
    if eager["requested_micro_batch_size"] == "auto":
        fits = "fits" if not failed else f"{failed[0]} ran out of memory"
        verdict = report.check(
            "memory", "the plan's auto micro-batch runs", fits, "no out-of-memory",
            not failed if cuda else None,  # the CPU's plan and memory are not the question
        )  # fmt: skip
        if failed:
            planned_peak = memory_bytes(
                parameters["total"], shape, spec.seq_len, failed[0], cuda, False
            )
            out["result"] += (
                f"; the plan's auto micro-batch {failed[0]} (estimate {_gib(planned_peak)} of "
                f"{_gib(device_memory)}) ran out of memory"
            )
            out["verdict"] = verdict
    return out


def task2vec(report: Report, size: dict, args) -> dict:
    """Closed-form Task2Vec embeddings/s on the device and on the CPU, the same batches."""
    import numpy as np

    from divlab.measure import DiversitySettings, load_probe
    from divlab.measure.batches import random_token_batches
    from divlab.measure.distance import normalized_cosine_distance
    from divlab.measure.diversity import embed

    vocab = size["t2v_vocab"]
    settings = DiversitySettings(
        estimator="closed-form",
        batch_size=size["t2v_batch_size"],
        seq_len=size["t2v_seq_len"],
        finetune_epochs=0,
        seed=SEED,
    )
    n_device, n_cpu = size["t2v_device_batches"], size["t2v_cpu_batches"]
    batches = random_token_batches(
        np.arange(vocab), 1 + max(n_device, n_cpu), settings.batch_size, settings.seq_len,
        seed=SEED, disjoint=False,
    )  # fmt: skip

    def part(start: int, stop: int):
        return dataclasses.replace(
            batches,
            input_ids=batches.input_ids[start:stop],
            attention_mask=batches.attention_mask[start:stop],
        )

    source = f"random:{size['t2v_preset']}"
    results = {}
    for label, device, n in (("device", args.device, n_device), ("cpu", "cpu", n_cpu)):
        probe = load_probe(source, vocab_size=vocab, device=device, seed=SEED)
        embeddings = embed(probe, part(0, 1), settings)  # warm-up: first-call set-up
        started = time.perf_counter()
        embeddings += embed(probe, part(1, 1 + n), settings)  # each one returns to the host
        seconds = time.perf_counter() - started
        results[label] = {
            "batches": n,
            "seconds": seconds,
            "embeddings_per_second": n / seconds,
            "tokens_per_second": n * settings.batch_size * settings.seq_len / seconds,
            "embeddings": embeddings,
        }
        parameters = sum(p.numel() for p in probe.model.parameters())
        del probe
        _free_memory()
    shared = min(len(results["device"]["embeddings"]), len(results["cpu"]["embeddings"]))
    distances = [
        normalized_cosine_distance(
            results["device"]["embeddings"][i], results["cpu"]["embeddings"][i]
        )
        for i in range(shared)
    ]
    worst = max(distances)
    for r in results.values():
        del r["embeddings"]
    ratio = results["device"]["embeddings_per_second"] / results["cpu"]["embeddings_per_second"]
    out = {
        "device": args.device,
        "probe": source,
        "parameters": parameters,
        "vocab": vocab,
        "batch_size": settings.batch_size,
        "seq_len": settings.seq_len,
        **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()},
        "speedup": ratio,
        "max_embedding_distance": worst,
        "target": f"distance <= {EMBEDDING_DISTANCE:g}",
    }
    out["result"] = (
        f"{source} ({parameters / 1e6:.0f}M params, vocab {vocab:,}), batches of "
        f"{settings.batch_size} x {settings.seq_len}: {args.device} "
        f"{results['device']['embeddings_per_second']:.2f} embeddings/s, cpu "
        f"{results['cpu']['embeddings_per_second']:.2f}/s: {ratio:.1f}x; max distance "
        f"{worst:.1e} on {shared} shared batches"
    )
    out["short"] = (
        f"{results['device']['embeddings_per_second']:.1f} vs "
        f"{results['cpu']['embeddings_per_second']:.2f} emb/s = {ratio:.1f}x"
    )
    out["verdict"] = report.check(
        "task2vec", f"{args.device} vs cpu embedding distance", f"{worst:.1e}",
        f"<= {EMBEDDING_DISTANCE:g}", worst <= EMBEDDING_DISTANCE,
    )  # fmt: skip
    return out


EXPERIMENT = {
    "name": "gpu-check",
    "kind": "diversity",
    "family": {"vocab_size": 20, "n_values": 4, "n_slots": 4, "seed": 0},
    "eval": {
        "n_concepts": 2,
        "n_docs": 24,
        "doc_length": 128,
        "seed": 1,
        "prompts": {
            "n_prompts": 8,
            "n_examples": [0, 2],
            "example_lengths": [3],
            "n_ood_concepts": 0,
            "max_tokens": 64,
        },
    },
    "plan": {"kind": "nested", "k": [2]},
    "training_data": {"n_tokens": 20000, "doc_length": 512, "seed": 2},
    "probe": {"source": "random:tiny"},  # never loaded: Task2Vec is disabled
    "diversity": {"enabled": False},
    "model": {"preset": "tiny"},
    "token_budget": 16384,
    "seq_len": 64,
    "batch_tokens": 1024,
    "eval_every_tokens": 4096,
    "curve_docs": 8,
    "seeds": [0, 1],
    "evaluation": {"limit": 8, "prefix": 16, "length": 8},
    "executor": {"kind": "local", "workers": 1},
}


def experiment(report: Report, folder: Path, args) -> dict:
    """A 2-run experiment through the local executor, pinned to GPU 0 on CUDA."""
    import divlab.experiments
    from divlab.experiments.executors import LocalExecutor
    from divlab.io import read_json

    spec = divlab.experiments.spec_from_dict(
        {**EXPERIMENT, "device": args.device}, source="bench/gpu_check.py"
    )
    cuda = args.device == "cuda"
    executor = LocalExecutor(workers=1, gpus=[0]) if cuda else LocalExecutor(1, use_gpus=False)
    root = folder / "experiment"
    started = time.perf_counter()
    divlab.experiments.run(spec, root, executor=executor, progress=False, report=False)
    wall = time.perf_counter() - started
    runs = []
    for run_json in sorted((root / "runs").glob("*/run.json")):
        summary, record = read_json(run_json), read_json(run_json.parent / "result.json")
        runs.append(
            {
                "run": run_json.parent.name,
                "device": summary["device"],
                "gpu": summary.get("gpu"),
                "record_device": record["device"],
                "train_seconds": record["train_seconds"],
                "wall_seconds": record["wall_seconds"],
                "loss": record["loss"],
            }
        )
    expected = "cuda" if cuda else "cpu"
    ok = len(runs) == 2 and all(
        r["device"] == expected and r["record_device"] == expected and (r["gpu"] or not cuda)
        for r in runs
    )
    devices = ", ".join(f"{r['device']}" + (f" ({r['gpu']})" if r["gpu"] else "") for r in runs)
    out = {
        "runs": runs,
        "wall_seconds": wall,
        "executor": "local, 1 worker" + (", pinned to GPU 0" if cuda else ", no GPU"),
        "target": f"2 runs on {expected}",
        "result": f"{len(runs)} runs on the local executor"
        + (" pinned to GPU 0" if cuda else "")
        + f" in {wall:.1f} s (data, spawn and evaluation included); run.json devices: {devices}",
        "short": f"{len(runs)} runs on " + ", ".join(r["device"] for r in runs) + f", {wall:.0f} s",
    }
    out["verdict"] = report.check(
        "experiment", "runs and their device", f"{len(runs)} on {devices}", out["target"], ok
    )
    return out


def losses(report: Report, folder: Path, data: dict, size: dict, args) -> dict:
    """The same small TrainSpec on the device and on the CPU; their per-step losses."""
    from divlab.train import TrainSpec, train

    def run(device: str, name: str) -> tuple[list[float], dict]:
        spec = TrainSpec.from_dict(
            {
                "data": data["path"],
                "model": {"preset": LOSS_RECIPE["preset"]},
                "token_budget": size["loss_steps"] * LOSS_RECIPE["batch_tokens"],
                "seq_len": LOSS_RECIPE["seq_len"],
                "batch_tokens": LOSS_RECIPE["batch_tokens"],
                "optimizer": {"lr": LOSS_RECIPE["lr"]},
                "eval_docs": 8,
                "device": device,
                "seed": SEED,
            }
        )
        out = folder / f"loss-{name}"
        summary = train(spec, out, overwrite=True)
        if summary["device"] != device:
            raise RuntimeError(f"the {name} run trained on {summary['device']}, not {device}")
        rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        return [row["loss"] for row in rows], summary

    a, summary_a = run(args.device, "a")
    b, summary_b = run("cpu", "b")
    if len(a) != len(b):
        raise RuntimeError(f"{len(a)} logged steps on {args.device}, {len(b)} on cpu")
    first, last = _rel(a[0], b[0]), _rel(a[-1], b[-1])
    worst = max(_rel(x, y) for x, y in zip(a, b, strict=True))
    eval_a = (summary_a.get("final_eval") or {}).get("loss")
    eval_b = (summary_b.get("final_eval") or {}).get("loss")
    out = {
        "preset": LOSS_RECIPE["preset"],
        "steps": len(a),
        "device_a": args.device,
        "losses_a": a,
        "losses_cpu": b,
        "first_rel_diff": first,
        "last_rel_diff": last,
        "max_rel_diff": worst,
        "final_eval_loss": {"a": eval_a, "cpu": eval_b},
        "target": f"first <= {LOSS_FIRST_RTOL:.0%}, last <= {LOSS_LAST_RTOL:.0%} rel.",
        "short": f"rel. diff first {first:.1e}, last {last:.1e}",
    }
    precision = "bf16 autocast" if args.device == "cuda" else "float32"
    out["result"] = (
        f"{LOSS_RECIPE['preset']}, {len(a)} steps: {args.device} ({precision}) vs cpu "
        f"(float32) loss step 1 {a[0]:.4f} / {b[0]:.4f} ({first:.1e}), last {a[-1]:.4f} / "
        f"{b[-1]:.4f} ({last:.1e}), worst step {worst:.1e}"
        + (f", final eval {eval_a:.4f} / {eval_b:.4f}" if eval_a and eval_b else "")
    )
    ok_first = report.check(
        "losses", "first-step loss rel. diff", f"{first:.1e}", f"<= {LOSS_FIRST_RTOL:g}",
        first <= LOSS_FIRST_RTOL,
    )  # fmt: skip
    ok_last = report.check(
        "losses", "last-step loss rel. diff", f"{last:.1e}", f"<= {LOSS_LAST_RTOL:g}",
        last <= LOSS_LAST_RTOL,
    )  # fmt: skip
    out["verdict"] = "PASS" if ok_first == ok_last == "PASS" else "FAIL"
    return out


# ---- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true", help="every section at toy size")
    parser.add_argument("--skip-compile", action="store_true", help="no torch.compile section")
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file of all numbers")
    parser.add_argument("--steps", type=int, help="timed steps of each 125m run (30; smoke 4)")
    parser.add_argument("--warmup", type=int, help="untimed steps before them (5; smoke 2)")
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: every core this process may use)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="the whole run's limit: a section that would end past it (by its expected "
        "length on an H100) is skipped (default 480: 8 minutes)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the GPU's peak dense bf16 TFLOP/s, if not in divlab's table",
    )
    args = parser.parse_args(argv)

    import torch

    from divlab.experiments.executors import available_cores

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device (use --device cpu --smoke)")
    size = dict(SIZES["smoke" if args.smoke else "full"])
    for name in ("steps", "warmup"):
        if getattr(args, name) is not None:
            size[name] = getattr(args, name)
    if size["warmup"] < 1 or size["steps"] < 1:
        parser.error("--steps and --warmup must be >= 1")
    args.threads = args.threads or available_cores()
    torch.set_num_threads(args.threads)

    report = Report(Path(args.out), args)
    info = versions(args)
    report.data["versions"] = info
    report.data["sizes"] = size
    print(
        f"divlab GPU check: torch {info['torch']} (CUDA {info['cuda_runtime']}, cuDNN "
        f"{info['cudnn']}), transformers {info['transformers']}, divlab {info['divlab']}, "
        f"Python {info['python']}; {info['cpu_cores']} CPU cores, {args.threads} torch threads"
    )
    if args.device == "cuda":
        peak = info["peak_bf16_flops"]
        print(
            f"GPU: {info['gpu']} (x{info['gpu_count']}), compute capability "
            f"{info['capability']}, {_gib(info['gpu_memory_bytes'])}, "
            f"{info['multiprocessors']} SMs; peak dense bf16 "
            + (f"{peak / 1e12:.0f} TFLOP/s" if peak else "unknown (give --peak-tflops)")
        )
    else:
        print("device: cpu (no GPU numbers: a test of the script itself)")
    print(
        f"sizes: {'smoke' if args.smoke else 'full'}; throughput {size['preset']} seq "
        f"{size['seq_len']}, {size['batch_tokens']:,} tokens/step, {size['warmup']} warm-up + "
        f"{size['steps']} timed steps; budget {args.budget_s:.0f} s",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="divlab-gpu-check-") as tmp:
        folder = Path(tmp)
        data = report.run("data", make_data, 0, folder, size)
        if data is None:
            report.summary()
            return 1
        eager = report.run(
            f"{'125m' if not args.smoke else size['preset']}-eager",
            throughput, EXPECTED_S["eager"], report, folder, data, size, args, False,
        )  # fmt: skip
        report.run("memory", memory, EXPECTED_S["memory"], report, eager, data, size, args)
        report.run("task2vec", task2vec, EXPECTED_S["task2vec"], report, size, args)
        report.run("experiment", experiment, EXPECTED_S["experiment"], report, folder, args)
        report.run("losses", losses, EXPECTED_S["losses"], report, folder, data, size, args)
        if args.skip_compile or args.smoke:
            reason = "--skip-compile" if args.skip_compile else "--smoke"
            report.rows.append(
                (f"{size['preset']}-compile", f"skipped ({reason})", "", "SKIP", 0.0)
            )
        else:
            micro = eager["micro_batch_size"] if eager else "auto"  # one that fits
            report.run(
                "125m-compile",
                throughput, EXPECTED_S["compile"], report, folder, data, size, args, True, micro,
            )  # fmt: skip
    return 0 if report.summary() else 1


if __name__ == "__main__":  # the experiment's spawn workers re-import this file
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
