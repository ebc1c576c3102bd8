"""The budgeted training loop.

One loop, with side effects as small callbacks around it (OLMo-core style): the learning
curve, checkpoints and the progress bar each watch the loop's state. A run folder::

    spec.json          the resolved TrainSpec
    train_log.jsonl    one row per optimizer step: loss BEFORE the update (prequential), lr
    curve.jsonl        eval loss at fixed token intervals, overall and per concept
    checkpoint/        the last resumable checkpoint (removed once the run is complete)
    model/             the final checkpoint (save_pretrained + tokenizer + divlab.json)
    run.json           the summary, written last: its presence means the run is complete

Relaunching into the same folder resumes from ``checkpoint/`` (model, optimizer,
scheduler, RNG and data position), truncating the JSONL logs to the checkpoint, and ends
with the same numbers as an uninterrupted run (tests/train/test_loop.py); relaunching a
finished run returns its summary.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file

from divlab.data.store import TokenDataset, open_dataset
from divlab.devices import autocast, resolve_device
from divlab.errors import ConfigError, DataError
from divlab.evaluate.loss import EvalSet
from divlab.evaluate.speed import speed_of_learning
from divlab.io import atomic_file, read_json, write_json
from divlab.train.checkpoint import (
    SIDECAR,
    load_trainer_state,
    save_checkpoint,
    versions,
)
from divlab.train.data import PackedSequences
from divlab.train.models import build_config, build_model, count_parameters, training_flops
from divlab.train.plan import GPUS, matmul_parameters, micro_batch_size
from divlab.train.spec import TrainSpec

# Steps whose losses are read (one host sync on CUDA) and logged in one write.
LOG_EVERY = 32
# Peak dense bf16 FLOP/s of common accelerators (the plan's table), for MFU.
PEAK_BF16_FLOPS = {name: gpu.peak_bf16_flops for name, gpu in GPUS.items()}


@dataclass
class TrainState:
    step: int = 0
    tokens: int = 0
    prequential_nats: float = 0.0  # sum over steps of loss-before-update * tokens predicted
    train_seconds: float = 0.0
    last_loss: float = float("nan")
    last_eval: dict = field(default_factory=dict)


class Callback:
    """Hooks around the loop; override what you need."""

    def on_start(self, run: Run) -> None: ...

    def on_step(self, run: Run) -> None: ...

    def on_log(self, run: Run, rows: list[dict]) -> None:
        """Rows just appended to ``train_log.jsonl`` (every ``LOG_EVERY`` steps: read
        them here rather than the loss of each step, which would sync the device)."""

    def on_eval(self, run: Run, row: dict) -> None:
        """A row just appended to ``curve.jsonl``."""

    def on_end(self, run: Run) -> None: ...


class Run:
    """One training run: the spec, the model, the data and the state of the loop."""

    def __init__(self, spec: TrainSpec, out: str | Path, overwrite: bool = False) -> None:

        self.spec, self.out = spec, Path(out)
        self.dataset: TokenDataset = open_dataset(spec.data)
        self.eval_dataset = open_dataset(spec.eval_data) if spec.eval_data else self.dataset
        self.dataset.split_path(spec.split)
        if spec.eval_split is not None:
            self.eval_dataset.split_path(spec.eval_split)
            if self.eval_dataset.vocab_size != self.dataset.vocab_size:
                raise DataError(
                    f"eval_data {spec.eval_data} has a {self.eval_dataset.vocab_size}-token "
                    f"vocabulary, the training data {self.dataset.vocab_size}; use one tokenizer"
                )
        tokenizer = self.dataset.summary["tokenizer"]
        self.vocab_size = int(tokenizer["vocab_size"])
        self.config = build_config(spec.model, self.vocab_size, spec.seq_len, tokenizer)
        self.device = resolve_device(spec.device)
        self.state = TrainState()
        self._pending: list[tuple] = []  # (step, tokens, loss on the device, lr) not yet read
        self.callbacks: list[Callback] = []
        self.finished = self._prepare_folder(overwrite)
        if self.finished:
            return

        self.model = build_model(self.config, spec.seed).to(self.device)
        self.parameters = count_parameters(self.model)
        if spec.activation_checkpointing:
            self.model.config.use_cache = False  # no KV cache while training (else a warning)
            # transformers 5 renamed it; 4.x (the declared floor) has only the old name
            enable = getattr(self.model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable({"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable({"use_reentrant": False})
        if spec.init_from:
            self._initialise_from(Path(spec.init_from))
        self.data = PackedSequences(
            self.dataset,
            spec.split,
            spec.seq_len,
            spec.seed,
            shuffle=spec.shuffle,
            loss_on=spec.loss_on,
        )
        # auto: the largest that fits this device (the plan), never part of the run's id
        self.micro = micro_batch_size(spec, self.vocab_size, self.device)
        self.optimizer = _adamw(self.model, spec, fused=self.device.type == "cuda")
        self.scheduler = _scheduler(self.optimizer, spec)
        self.forward_model = torch.compile(self.model) if spec.compile else self.model
        if (self.out / "checkpoint" / SIDECAR).exists():
            self._resume()
        else:  # killed before its first checkpoint (or new): start clean
            for name in ("train_log.jsonl", "curve.jsonl"):
                (self.out / name).unlink(missing_ok=True)
        write_json(self.out / "spec.json", spec.model_dump(mode="json"))

    # ---- folder and resume -------------------------------------------------------
    def _prepare_folder(self, overwrite: bool) -> bool:
        spec_json = self.spec.model_dump(mode="json")
        if overwrite and self.out.exists():
            shutil.rmtree(self.out)
        if self.out.exists() and any(self.out.iterdir()):
            if not (self.out / "spec.json").exists():
                raise DataError(
                    f"{self.out} exists and is not a divlab run; choose another --out "
                    "or pass --overwrite"
                )
            if not _same_run(read_json(self.out / "spec.json"), spec_json):
                raise ConfigError(
                    f"{self.out} holds a run with a different spec; choose another --out "
                    "or pass --overwrite"
                )
            return (self.out / "run.json").exists()
        return False

    def _initialise_from(self, path: Path) -> None:
        """Continued pre-training: load a checkpoint's weights into the fresh model (the
        optimizer and schedule start anew; a resumed run overwrites them from its own
        checkpoint afterwards)."""

        weights_file = path / "model.safetensors"
        if not weights_file.exists():
            raise DataError(f"init_from {path} is not a model folder (no model.safetensors)")
        weights = load_file(str(weights_file), device=str(self.device))
        shapes = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        unexpected = [k for k in weights if k not in shapes]
        missing = [k for k in shapes if k not in weights and "lm_head" not in k]  # tied head
        wrong = [k for k, v in weights.items() if k in shapes and tuple(v.shape) != shapes[k]]
        if unexpected or missing or wrong:
            raise ConfigError(
                f"init_from {path} holds another architecture than this run's model "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} "
                "differently shaped tensors); use a checkpoint of the same model preset and "
                "vocabulary"
            )
        self.model.load_state_dict(weights, strict=False)

    def _resume(self) -> None:

        checkpoint = self.out / "checkpoint"
        state = load_trainer_state(checkpoint)
        weights = load_file(str(checkpoint / "model.safetensors"), device=str(self.device))
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected or any("lm_head" not in key for key in missing):  # tied head: absent
            raise DataError(f"{checkpoint} does not match the model of this spec")
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the old device's
            group["fused"] = True if self.device.type == "cuda" else None
            group["foreach"] = None
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"])
        self.state.step = int(state["step"])
        self.state.tokens = int(state["tokens"])
        self.state.prequential_nats = float(state["prequential_nats"])
        self.state.train_seconds = float(state["train_seconds"])
        for name in ("train_log.jsonl", "curve.jsonl"):  # drop rows after the checkpoint
            _truncate_jsonl(self.out / name, self.state.step)

    def trainer_state(self) -> dict:

        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "step": self.state.step,
            "tokens": self.state.tokens,
            "prequential_nats": self.state.prequential_nats,
            "train_seconds": self.state.train_seconds,
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state()
        return state

    def sidecar(self) -> dict:
        return {
            "spec": self.spec.model_dump(mode="json"),
            "data": {"path": str(self.dataset.path), "kind": self.dataset.summary.get("kind")},
            "tokens_seen": self.state.tokens,
            "steps": self.state.step,
            "seed": self.spec.seed,
            "parameters": self.parameters,
            **training_flops(self.parameters, self.state.tokens),
            "versions": versions(),
        }

    def save(self, name: str, resumable: bool) -> None:
        self.flush()  # the checkpoint's state and the log it truncates to agree
        state = self.trainer_state() if resumable else None
        save_checkpoint(
            self.out / name, self.model, self.dataset.path / "tokenizer", self.sidecar(), state
        )

    # ---- the loop ---------------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        """One optimizer step; returns the loss on the batch before the update, as a 0-d
        tensor on the device (reading it is a host sync: ``flush`` does, in bulk)."""

        spec = self.spec
        per_step = spec.sequences_per_step
        micro = self.micro
        start = self.state.step * per_step
        batch = self._on_device(self.data.batch(start, per_step))
        masked = self.data.label_batch(start, per_step)  # None: the labels are the inputs
        labels = batch if masked is None else self._on_device(masked)
        if micro == per_step:  # one forward pass: no scaling, no sum (the common case)
            with autocast(self.device):
                loss = self.forward_model(input_ids=batch, labels=labels).loss
            loss.backward()
            total = loss.detach()
        else:
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            # each micro-batch's mean loss weighs by its share of the step's targets
            # (equal shares unless prompt tokens are masked out of the loss)
            targets = None if masked is None else self.data.target_counts(start, per_step)
            for first in range(0, per_step, micro):
                inputs = batch[first : first + micro]
                share = (
                    len(inputs) / per_step
                    if targets is None
                    else targets[first : first + micro].sum() / targets.sum()
                )
                with autocast(self.device):
                    loss = self.forward_model(
                        input_ids=inputs, labels=labels[first : first + micro]
                    ).loss
                (loss * share).backward()
                # float64, as the Python floats it replaces: the same sums, bit for bit
                total += loss.detach().to(torch.float64) * share
        if spec.optimizer.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec.optimizer.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _on_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":  # page-locked: the copy overlaps the last step's work
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _targets(self, step: int) -> int:
        """Tokens the loss of step ``step`` (0-based) predicted."""
        per_step = self.spec.sequences_per_step
        return int(self.data.target_counts(step * per_step, per_step).sum())

    def fit(self, callbacks: list[Callback] = ()) -> dict:
        """Train to the token budget (or from a checkpoint to it); return the summary."""
        if self.finished:
            return read_json(self.out / "run.json")
        self.model.train()
        self.callbacks = list(callbacks)
        for callback in callbacks:
            callback.on_start(self)
        while self.state.step < self.spec.steps:
            started = time.perf_counter()
            loss = self.train_step()
            self.state.train_seconds += time.perf_counter() - started
            self.state.step += 1
            self.state.tokens += self.spec.batch_tokens
            lr = self.scheduler.get_last_lr()[0]
            self._pending.append((self.state.step, self.state.tokens, loss, lr))
            if len(self._pending) >= LOG_EVERY:
                self.flush()
            for callback in callbacks:
                callback.on_step(self)
        return self._finish(callbacks)

    def flush(self) -> None:
        """Read the losses of the steps since the last flush (one host sync), check them,
        add them to the prequential code length and append their rows to
        ``train_log.jsonl`` in one write. Called every ``LOG_EVERY`` steps and before
        anything that reads the state (a checkpoint, an eval, the end)."""
        if not self._pending:
            return
        # float64 holds every float32 loss exactly: the values float(loss) gave
        losses = torch.stack([loss.to(torch.float64) for _, _, loss, _ in self._pending]).tolist()
        rows = []
        for (step, tokens, _, lr), loss in zip(self._pending, losses, strict=True):
            if not math.isfinite(loss):
                raise DataError(
                    f"training diverged (loss {loss}) at step {step - 1}; lower the learning rate"
                )
            self.state.prequential_nats += loss * self._targets(step - 1)
            self.state.last_loss = loss
            rows.append({"step": step, "tokens": tokens, "loss": loss, "lr": lr})
        _append_jsonl(self.out / "train_log.jsonl", *rows)
        self._pending.clear()
        for callback in self.callbacks:
            callback.on_log(self, rows)

    def _finish(self, callbacks: list[Callback]) -> dict:
        self.flush()
        for callback in callbacks:
            callback.on_end(self)
        self.save("model", resumable=False)
        tokens_per_second = self.state.tokens / max(self.state.train_seconds, 1e-9)
        predicted = sum(self._targets(step) for step in range(self.spec.steps))
        summary = {
            **self.sidecar(),
            "final_train_loss": self.state.last_loss,
            "final_eval": self.state.last_eval,
            "prequential_code_length_nats": self.state.prequential_nats,
            "prequential_bits_per_token": self.state.prequential_nats / predicted / math.log(2),
            "train_seconds": self.state.train_seconds,
            "tokens_per_second": tokens_per_second,
            "device": str(self.device),
            "micro_batch_size": self.micro,
            "attention": self.model.config._attn_implementation,
            **_mfu(self.device, self.parameters, self.config, tokens_per_second),
        }
        if (self.out / "curve.jsonl").exists():
            summary["speed_of_learning"] = speed_of_learning(load_curve(self.out))
        write_json(self.out / "run.json", summary)
        shutil.rmtree(self.out / "checkpoint", ignore_errors=True)
        self.finished = True
        return summary


class LearningCurve(Callback):
    """Eval loss on the eval split every ``every`` steps (and at 0 and the end),
    appended to ``curve.jsonl`` as it happens."""

    def __init__(self, every: int, max_docs: int) -> None:
        self.every, self.max_docs = every, max_docs
        self.eval_set = None

    def on_start(self, run: Run) -> None:

        if run.spec.eval_split is None:
            return
        self.eval_set = EvalSet(run.eval_dataset, run.spec.eval_split, self.max_docs)
        if run.state.step == 0:
            self._evaluate(run)

    def on_step(self, run: Run) -> None:
        if run.state.step % self.every == 0 or run.state.step == run.spec.steps:
            self._evaluate(run)

    def _evaluate(self, run: Run) -> None:
        if self.eval_set is None:
            return
        result = self.eval_set.evaluate(run.model, run.spec.seq_len)
        run.model.train()
        run.state.last_eval = result
        row = {"step": run.state.step, "tokens": run.state.tokens, **result}
        _append_jsonl(run.out / "curve.jsonl", row)
        for callback in run.callbacks:
            callback.on_eval(run, row)


class Checkpointing(Callback):
    def __init__(self, every: int) -> None:
        self.every = every

    def on_step(self, run: Run) -> None:
        if run.state.step % self.every == 0 and run.state.step < run.spec.steps:
            run.save("checkpoint", resumable=True)


class ProgressBar(Callback):
    def on_start(self, run: Run) -> None:

        self.progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tokens  {task.fields[rate]} tok/s  loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=run.spec.tokens, completed=run.state.tokens, rate="-", loss="-"
        )

    def on_step(self, run: Run) -> None:
        rate = run.state.tokens / max(run.state.train_seconds, 1e-9)
        self.progress.update(
            self.task,
            completed=run.state.tokens,
            rate=f"{rate:,.0f}",
            loss=f"{run.state.last_loss:.4f}",
        )

    def on_end(self, run: Run) -> None:
        self.progress.stop()


def train(
    spec: TrainSpec,
    out: str | Path,
    *,
    overwrite: bool = False,
    quiet: bool = True,
    callbacks: list[Callback] = (),
) -> dict:
    """Train (or resume, or return the finished run in ``out``); return the run summary."""
    run = Run(spec, out, overwrite=overwrite)
    if run.finished:
        return read_json(run.out / "run.json")
    standard: list[Callback] = [
        LearningCurve(spec.every(spec.eval_every_tokens, 10), spec.eval_docs),
        Checkpointing(spec.every(spec.checkpoint_every_tokens, 4)),
    ]
    if not quiet:
        standard.append(ProgressBar())
    return run.fit([*standard, *callbacks])


# ---- helpers ---------------------------------------------------------------------


def _adamw(model, spec: TrainSpec, fused: bool = False):
    """AdamW, decaying matrices only; ``fused`` (one kernel for all parameters) on CUDA."""

    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    o = spec.optimizer
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": o.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=o.lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        fused=fused or None,
    )


def _scheduler(optimizer, spec: TrainSpec):
    """Linear warmup then cosine/linear decay to ``min_lr_ratio``, or constant."""

    total = spec.steps
    warmup = int(spec.schedule.warmup_fraction * total)
    floor = spec.schedule.min_lr_ratio
    kind = spec.schedule.kind

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1 - progress
        return floor + (1 - floor) * shape

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _mfu(device, parameters: dict, config, tokens_per_second: float) -> dict:
    """Model FLOPs utilisation: ``6 N`` per token, N the matmul parameters (non-embedding
    and the output head, ``divlab.train.plan.matmul_parameters``), over the GPU's peak."""
    if device.type != "cuda":
        return {}

    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    shape = {"vocab": config.vocab_size, "hidden": config.hidden_size}
    achieved = 6 * matmul_parameters(parameters, shape) * tokens_per_second
    return {
        "gpu": name,
        "model_flops_per_second": achieved,
        "mfu": achieved / peak if peak else None,
    }


# TrainSpec fields that do not change a run's numbers (beyond float rounding): a folder
# written with another value, or before the field existed, is the same run.
NOT_RESULTS = ("micro_batch_size",)


def _same_run(stored: dict, spec_json: dict) -> bool:
    """Whether a run folder's ``spec.json`` is this run: compared as this version
    resolves it (fields added since take their defaults), leaving out ``NOT_RESULTS``."""
    try:
        resolved = TrainSpec.from_dict(stored, source="spec.json").model_dump(mode="json")
    except ConfigError:
        return False

    def key(tree: dict) -> dict:
        return {k: v for k, v in tree.items() if k not in NOT_RESULTS}

    return key(resolved) == key(spec_json)


def _append_jsonl(path: Path, *rows: dict) -> None:
    with open(path, "a") as f:
        f.write("".join(json.dumps(row) + "\n" for row in rows))


def _truncate_jsonl(path: Path, step: int) -> None:
    """Keep the rows of steps <= ``step`` (written before the checkpoint was taken)."""
    if not path.exists():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= step)
    with atomic_file(path) as tmp:
        tmp.write_text(kept)


def load_curve(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "curve.jsonl"
    if not path.exists():
        raise DataError(f"{run_dir} has no curve.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["Callback", "Run", "TrainState", "load_curve", "train"]
