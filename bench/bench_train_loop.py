"""Benchmark: divlab's training loop against a bare PyTorch loop and the HF Trainer.

Measures training tokens/s of four runs on the same model, data, batches, optimizer,
schedule and number of steps:

* divlab: ``Run(spec, out).fit([])``, the loop without the learning-curve and checkpoint
  callbacks (a step: the batch from ``PackedSequences``, forward with
  ``model(input_ids=x, labels=x).loss``, backward, grad clipping at 1.0, AdamW with two
  param groups, warmup + cosine ``LambdaLR``; the losses read and their JSONL rows
  appended every ``LOG_EVERY`` steps, in one write);
* bare: a plain PyTorch loop doing the same step with nothing else (no logging, no
  ``float(loss)`` per step): the floor divlab's overhead is measured against;
* Trainer: ``transformers.Trainer`` on a torch Dataset of the same sequences, in the same
  order (AdamW, cosine with a floor, warmup, ``max_grad_norm``; no eval, saving or logging);
* divlab + hooks: ``divlab.train.train(spec, out)``, i.e. the same loop with the learning
  curve (every budget/10 tokens on 16 eval docs) and checkpoints (every budget/4). Its
  cost is counted separately, as wall time against ``Run(...).fit([])``.

Each run takes ``--warmup`` + ``--steps`` optimizer steps; tokens/s is over the timed
window, wall-clock from the end of the last warm-up step to the end of the last step
(timestamps at each step's end: a clock callback for divlab and the Trainer, inline in
the bare loop), so batch fetching and the loop's own bookkeeping count for all. On CPU
tokens/s from the median step is printed too: bursts of load from other processes on a
shared machine move the window's figure by +-10 %, the median step much less. Every run
is a fresh subprocess with the same ``torch.set_num_threads`` (default: half the cores;
more threads than free cores makes every step many times slower); the methods alternate,
in a rotated order, for ``--rounds`` rounds; medians over rounds are printed, ratios per
round (its runs are close in time). On CPU divlab and the bare loop must end on the
same loss, printed as a check. The target (divlab's overhead against the bare loop
< 5 %, JSONL logging included) is printed next to it, never asserted.

On a CUDA machine every run uses the GPU (bf16 autocast, as divlab) and MFU is printed
(``6 * N_total * tokens/s`` over the GPU's peak bf16 FLOP/s), e.g. with ``--preset 125m``.

Run (``make bench`` runs the first)::

    python bench/bench_train_loop.py
    python bench/bench_train_loop.py --quick            # smoke run
    python bench/bench_train_loop.py --preset small --steps 40 --rounds 5
    python bench/bench_train_loop.py --preset 125m --batch-tokens 65536 --seq-len 512  # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("divlab", "bare", "trainer", "divlab-hooks")
LABELS = {
    "divlab": "divlab Run.fit([])",
    "bare": "bare PyTorch loop",
    "trainer": "HF Trainer",
    "divlab-hooks": "divlab train() + hooks",
}
SEED = 0
EVAL_DOCS = 16
TARGET_OVERHEAD = 0.05


# ---- in the child: one measurement ---------------------------------------------------


def _train_spec(args: argparse.Namespace):
    """The one spec every method reads its sizes and hyper-parameters from."""
    from divlab.train import TrainSpec

    return TrainSpec.from_dict(
        {
            "data": args.data,
            "model": {"preset": args.preset},
            "token_budget": (args.warmup + args.steps) * args.batch_tokens,
            "seq_len": args.seq_len,
            "batch_tokens": args.batch_tokens,
            "optimizer": {"lr": 3e-3},
            "eval_docs": EVAL_DOCS,
            "seed": SEED,
        }
    )


class _StepClock:
    """Timestamps at the end of steps ``warmup`` .. ``last`` (1-based): the timed window
    runs from the first to the last; on CPU the median step is robust to bursts of load."""

    def __init__(self, device, warmup: int, last: int) -> None:
        self.cuda, self.warmup, self.last = device.type == "cuda", warmup, last
        self.ends: list[float] = []

    def tick(self, step: int) -> None:
        """Call after optimizer step ``step`` is done."""
        if step < self.warmup:
            return
        if self.cuda and step in (self.warmup, self.last):  # wait for the queued kernels
            import torch

            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def result(self) -> dict:
        if len(self.ends) != self.last - self.warmup + 1:
            expected = self.last - self.warmup + 1
            raise RuntimeError(f"the clock saw {len(self.ends)} step ends, expected {expected}")
        steps = [b - a for a, b in zip(self.ends, self.ends[1:], strict=False)]
        # CUDA: a step's end is only known at a sync, so per-step times are not measured.
        return {
            "seconds": self.ends[-1] - self.ends[0],
            "median_step_s": None if self.cuda else statistics.median(steps),
        }


def _run_divlab(args: argparse.Namespace, spec, out: Path, hooks: bool) -> dict:
    from divlab.train import Callback, Run, load_curve, train

    class Clock(Callback):
        def on_step(self, run: Run) -> None:
            clock.tick(run.state.step)

    device = _device()
    clock = _StepClock(device, args.warmup, spec.steps)
    started = time.perf_counter()
    if hooks:
        summary = train(spec, out, overwrite=True, callbacks=[Clock()])
    else:
        summary = Run(spec, out, overwrite=True).fit([Clock()])
    wall = time.perf_counter() - started
    result = {
        **clock.result(),
        "wall_s": wall,
        "summary_tokens_per_s": summary["tokens_per_second"],
        "final_loss": summary["final_train_loss"],
        "parameters": summary["parameters"]["total"],
    }
    if hooks:
        result["evaluations"] = len(load_curve(out))
        every = spec.every(spec.checkpoint_every_tokens, 4)
        result["checkpoints"] = len(range(every, spec.steps, every))
    return result


def _run_bare(args: argparse.Namespace, spec) -> dict:
    """Plain PyTorch: the same model, batches, AdamW groups, schedule and clipping."""
    import contextlib
    import math

    import torch

    from divlab.data.store import open_dataset
    from divlab.train.data import PackedSequences
    from divlab.train.models import build_config, build_model, count_parameters

    device = _device()
    dataset = open_dataset(spec.data)
    special = dataset.summary["tokenizer"]
    config = build_config(spec.model, int(special["vocab_size"]), spec.seq_len, special)
    model = build_model(config, spec.seed).to(device)
    data = PackedSequences(dataset, spec.split, spec.seq_len, spec.seed)

    o, s = spec.optimizer, spec.schedule
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=o.lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
    )
    total, warmup = spec.steps, int(s.warmup_fraction * spec.steps)

    def factor(step: int) -> float:  # linear warmup, cosine to min_lr_ratio * lr
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    # CUDA path (untested on the CPU machines): bf16 autocast, as divlab.devices.autocast.
    if device.type == "cuda":
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext()

    per_step = spec.sequences_per_step
    clock = _StepClock(device, args.warmup, total)
    model.train()
    for step in range(total):
        batch = torch.from_numpy(data.batch(step * per_step, per_step)).to(device)
        with autocast:
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        clock.tick(step + 1)
    return {
        **clock.result(),
        "final_loss": float(loss.detach()),  # loss before the last update, as divlab logs
        "parameters": count_parameters(model)["total"],
    }


def _run_trainer(args: argparse.Namespace, spec, out: Path) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from divlab.data.store import open_dataset
    from divlab.train.data import PackedSequences
    from divlab.train.models import build_config, build_model, count_parameters

    device = _device()
    dataset = open_dataset(spec.data)
    special = dataset.summary["tokenizer"]
    config = build_config(spec.model, int(special["vocab_size"]), spec.seq_len, special)
    model = build_model(config, spec.seed)
    per_step = spec.sequences_per_step
    sequences = PackedSequences(dataset, spec.split, spec.seq_len, spec.seed)
    rows = torch.from_numpy(sequences.batch(0, spec.steps * per_step))  # divlab's order

    class Sequences(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": rows[i], "labels": rows[i]}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.tick(state.global_step)

    o, s = spec.optimizer, spec.schedule
    training_args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=per_step,
        max_steps=spec.steps,
        learning_rate=o.lr,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": s.min_lr_ratio},
        warmup_steps=int(s.warmup_fraction * spec.steps),  # an int: steps, not a ratio
        optim="adamw_torch",  # torch.optim.AdamW, as divlab (the 5.x default is fused)
        weight_decay=o.weight_decay,  # matrices only: norms are excluded by name
        adam_beta1=o.beta1,
        adam_beta2=o.beta2,
        adam_epsilon=o.eps,
        max_grad_norm=o.grad_clip,
        train_sampling_strategy="sequential",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=device.type == "cpu",
        bf16=device.type == "cuda",  # CUDA path: bf16 autocast, as divlab
        seed=spec.seed,
    )
    clock = _StepClock(device, args.warmup, spec.steps)
    trainer = Trainer(
        model=model, args=training_args, train_dataset=Sequences(), callbacks=[Clock()]
    )
    trainer.train()
    return {**clock.result(), "parameters": count_parameters(model)["total"]}


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    spec = _train_spec(args)
    with tempfile.TemporaryDirectory(prefix="divlab-bench-") as tmp:
        out = Path(tmp) / "run"
        if args.child == "bare":
            result = _run_bare(args, spec)
        elif args.child == "trainer":
            result = _run_trainer(args, spec, out)
        else:
            result = _run_divlab(args, spec, out, hooks=args.child == "divlab-hooks")
    device = _device()
    result.update(
        method=args.child,
        tokens_per_s=args.steps * spec.batch_tokens / result["seconds"],
        median_step_tokens_per_s=spec.batch_tokens / result["median_step_s"]
        if result["median_step_s"]
        else None,
        threads=torch.get_num_threads(),  # after the run: nothing changed it
        device=str(device),
    )
    if device.type == "cuda":
        from divlab.train.loop import PEAK_BF16_FLOPS

        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        result["gpu"] = name
        result["mfu"] = 6 * result["parameters"] * result["tokens_per_s"] / peak if peak else None
    print(json.dumps(result))


# ---- in the parent: data, rounds, report -----------------------------------------------


def _generate_data(folder: Path, train_docs: int, eval_docs: int) -> Path:
    from divlab.data.ginc import GincSpec, generate

    spec = GincSpec.from_dict(
        {
            "concepts": {"n_eval": 5},
            "seed": SEED,
            "splits": {
                "train": {"n_docs": train_docs, "doc_length": 1024},
                "eval": {"n_docs": eval_docs, "doc_length": 1024},
            },
            "prompts": None,
        }
    )
    return generate(spec, folder / "ginc")


def _measure(method: str, args: argparse.Namespace, data: Path) -> dict:
    """Run one measurement in a fresh interpreter; return what it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", method]
    command += ["--data", str(data), "--preset", args.preset, "--threads", str(args.threads)]
    for flag in ("steps", "warmup", "seq_len", "batch_tokens"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{method} run failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--preset", help="divlab model preset (default mini; 125m on a GPU)")
    parser.add_argument("--steps", type=int, help="timed optimizer steps per run (default 80)")
    parser.add_argument("--warmup", type=int, help="untimed steps before them (default 5)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (default 128)")
    parser.add_argument("--batch-tokens", type=int, help="tokens per step (default 4096)")
    parser.add_argument("--rounds", type=int, help="rounds of all methods (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads in every run (default: half the cores, at least 1: on a shared "
        "machine more threads than free cores makes every step far slower and noisier)",
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {
        "preset": "mini",
        "steps": 80,
        "warmup": 5,
        "seq_len": 128,
        "batch_tokens": 4096,
        "rounds": 3,
        "threads": max(1, (os.cpu_count() or 1) // 2),
    }
    if args.quick:
        defaults.update(steps=8, warmup=2, rounds=1)
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.warmup < 1 or args.steps < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--warmup, --steps, --rounds and --threads must be >= 1")

    if args.child:
        _child(args)
        return

    # Enough documents for one epoch of the run (no sequence is seen twice), at least 64.
    sequences = (args.warmup + args.steps) * (args.batch_tokens // args.seq_len)
    train_docs = max(64, -(-sequences * args.seq_len // 1024))
    with tempfile.TemporaryDirectory(prefix="divlab-bench-") as tmp:
        data = _generate_data(Path(tmp), train_docs, max(EVAL_DOCS, 32))
        results: dict[str, list[dict]] = {m: [] for m in METHODS}
        header_done = False
        for r in range(args.rounds):
            order = METHODS[r % len(METHODS) :] + METHODS[: r % len(METHODS)]
            for method in order:
                results[method].append(_measure(method, args, data))
            if not header_done:
                first = results["divlab"][0]
                threads = "/".join(
                    str(t) for t in sorted({results[m][0]["threads"] for m in METHODS})
                )
                print(
                    f"training-loop benchmark: preset {args.preset} "
                    f"({first['parameters']:,} parameters), seq_len {args.seq_len}, "
                    f"{args.batch_tokens:,} tokens/step "
                    f"({args.batch_tokens // args.seq_len} sequences), {args.warmup} warm-up + "
                    f"{args.steps} timed steps, {args.rounds} round(s) (methods alternate, each "
                    f"run a fresh subprocess), device {first['device']}, "
                    f"{threads} torch thread(s), {train_docs} GINC docs x 1,024 tokens"
                )
                header_done = True
            rates = {m: results[m][-1]["tokens_per_s"] for m in METHODS}
            hooks = results["divlab-hooks"][-1]["wall_s"] - results["divlab"][-1]["wall_s"]
            print(
                f"  round {r + 1}: "
                + "  ".join(f"{m} {rates[m]:,.0f}" for m in order)
                + f" tokens/s; divlab/bare {rates['divlab'] / rates['bare']:.3f}, "
                f"divlab/Trainer {rates['divlab'] / rates['trainer']:.3f}; hooks {hooks:+.1f} s"
            )

    def median(method: str, key: str) -> float:
        return statistics.median(r[key] for r in results[method])

    def ratios(a: str, b: str, key: str = "tokens_per_s") -> list[float]:
        """a/b per round: the runs of a round are close in time, so they share its noise."""
        return [x[key] / y[key] for x, y in zip(results[a], results[b], strict=True)]

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.3f}x (rounds {min(values):.3f}-{max(values):.3f})"

    cpu = results["divlab"][0]["median_step_tokens_per_s"] is not None
    print(
        f"median of {args.rounds} round(s), tokens/s over the {args.steps} timed steps"
        + (" [from the median step: robust to bursts of load from other processes]" if cpu else "")
    )
    for method in METHODS:
        line = f"  {LABELS[method]:<24} {median(method, 'tokens_per_s'):>10,.0f}"
        if cpu and method != "divlab-hooks":
            line += f"  [{median(method, 'median_step_tokens_per_s'):>8,.0f}]"
        if results[method][0].get("mfu") is not None:
            line += f"  MFU {median(method, 'mfu'):.1%} ({results[method][0]['gpu']})"
        if method == "divlab":
            line += (
                f"  divlab's own summary {median(method, 'summary_tokens_per_s'):,.0f} "
                "(train_step only, all steps)"
            )
        if method == "divlab-hooks":
            line += "  (evaluations and checkpoints inside the window)"
        print(line)
    overhead = statistics.median(1 / r - 1 for r in ratios("divlab", "bare"))
    line = (
        f"divlab/bare {spread(ratios('divlab', 'bare'))}: divlab's overhead {overhead:+.1%} "
        f"(bare tokens/s / divlab tokens/s - 1; target < {TARGET_OVERHEAD:.0%}: "
        f"{_verdict(overhead < TARGET_OVERHEAD)})"
    )
    if cpu:
        robust = statistics.median(
            1 / r - 1 for r in ratios("divlab", "bare", "median_step_tokens_per_s")
        )
        line += f"; from the median step {robust:+.1%}"
    print(line)
    line = f"divlab/Trainer {spread(ratios('divlab', 'trainer'))}"
    if cpu:
        line += f"; median step {spread(ratios('divlab', 'trainer', 'median_step_tokens_per_s'))}"
    print(line)
    last = {m: results[m][-1] for m in METHODS}
    same = last["divlab"]["final_loss"] == last["bare"]["final_loss"]
    print(
        f"check: final train loss divlab {last['divlab']['final_loss']:.6f}, bare "
        f"{last['bare']['final_loss']:.6f} "
        + ("(identical)" if same else "(differ: expected on CUDA, a bug on CPU)")
    )
    fit_wall, hooks_wall = median("divlab", "wall_s"), median("divlab-hooks", "wall_s")
    print(
        f"eval hooks, counted separately: train() with the learning curve "
        f"({last['divlab-hooks']['evaluations']} evaluations on {EVAL_DOCS} docs) and "
        f"{last['divlab-hooks']['checkpoints']} checkpoints: {hooks_wall:.2f} s wall vs "
        f"Run(...).fit([]) {fit_wall:.2f} s (both with the run set-up and final save): "
        f"{hooks_wall - fit_wall:+.2f} s ({hooks_wall / fit_wall - 1:+.0%})"
    )


if __name__ == "__main__":
    main()
