"""Live curves of long runs in the experiment trackers people already use.

``tracker(name)`` returns a loop :class:`~divlab.train.loop.Callback` that feeds the
per-step rows of ``train_log.jsonl`` (``train/loss``, ``train/lr``, ``train/tokens``)
and the learning-curve rows of ``curve.jsonl`` (``eval/<field>`` for each numeric field,
nested ones as ``eval/per_concept/<id>``) to TensorBoard, Weights & Biases or trackio,
at the loop's own step. Each is a thin wrapper around that library's public API (no
hand-written tracker or event format), imported only when a run starts, from its extra
(``pip install 'divlab[tensorboard]'``, ``[wandb]``, ``[trackio]``); none is on by default.
The run's name defaults to its folder's name (experiments name run folders by run id),
its config is the resolved TrainSpec.

Rows are read where the loop already read them (``on_log``, every ``LOG_EVERY`` steps),
never per step: a tracker adds no device sync. They are sent in step order, an eval row
held back until the train rows of its step are out, as W&B drops a step lower than one
it has seen.

Resuming (a relaunch into the run folder) logs nothing twice:

* TensorBoard: a new ``SummaryWriter`` with ``purge_step`` just after the checkpoint the
  run restarts from (0 for a run killed before its first), so TensorBoard's reader drops
  the events the killed attempt wrote after it (the loop likewise truncates its logs to
  the checkpoint) and shows the recomputed ones.
* W&B and trackio: the tracker's run is resumed (W&B by an id kept in the run folder,
  trackio by run name) and the rows up to the last step already sent (kept in the run
  folder's ``trackers.json``) are skipped: the resumed run recomputes exactly those
  numbers (tests/train/test_loop.py), and neither library can take back a point.

W&B honours the user's own settings (``WANDB_MODE=offline``, ``WANDB_PROJECT``,
``WANDB_ENTITY``, ``WANDB_DIR`` ...): ``project`` is only a default. trackio's API was
checked against trackio 0.43 (``init(project, name, config, resume)``, ``Run.log(metrics,
step)``, ``Run.finish()``); ``resume`` needs a trackio recent enough to have it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
from numbers import Real
from pathlib import Path
from typing import Any

from divlab.errors import ConfigError
from divlab.io import read_json, write_json
from divlab.optional import check_installed, require
from divlab.train.loop import Callback, Run

TRACKERS = ("tensorboard", "wandb", "trackio")
PROJECT = "divlab"
STATE_FILE = "trackers.json"  # in the run folder: W&B's run id, the last step sent


def check_trackers(names) -> None:
    """Each tracker is known and its library installed: checked before any compute (a
    missing extra would otherwise surface when the first run starts)."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
        check_installed(name, name, f"logging: {name}")


def tracker(name: str, run_name: str | None = None) -> Callback:
    """A callback logging a run's train and eval metrics to the tracker ``name`` (one of
    :data:`TRACKERS`), as ``run_name`` (default: the run folder's name)."""
    kinds = {"tensorboard": TensorBoard, "wandb": WandB, "trackio": Trackio}
    if name not in kinds:
        raise ConfigError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
    return kinds[name](run_name)


class _Tracker(Callback):
    """Orders the rows by step and hands them to ``_emit`` as flat ``{key: float}``
    dicts; a subclass opens, writes and closes its library's run."""

    name = ""

    def __init__(self, run_name: str | None = None) -> None:
        self.run_name = run_name
        self._sent: int | None = None  # train rows up to this step are out (or come no more)
        self._held: list[dict] = []  # eval rows waiting for the train rows of their step

    # ---- the hooks -----------------------------------------------------------------
    def on_start(self, run: Run) -> None:
        self.run_name = self.run_name or run.out.name
        self._open(run, run.spec.model_dump(mode="json"))
        self._sent = run.state.step
        # the learning curve's first eval (step 0) comes before this callback starts
        ready = [row for row in self._held if row["step"] <= self._sent]
        self._held = [row for row in self._held if row["step"] > self._sent]
        for row in ready:
            self._emit(row["step"], _eval_metrics(row))
        if ready:
            self._flush(run)

    def on_log(self, run: Run, rows: list[dict]) -> None:
        for row in rows:
            step = row["step"]
            metrics = {}
            while self._held and self._held[0]["step"] <= step:
                held = self._held.pop(0)
                if held["step"] < step:
                    self._emit(held["step"], _eval_metrics(held))
                else:
                    metrics.update(_eval_metrics(held))
            metrics = {
                "train/loss": row["loss"],
                "train/lr": row["lr"],
                "train/tokens": row["tokens"],
                **metrics,
            }
            self._emit(step, metrics)
            self._sent = step
        self._flush(run)

    def on_eval(self, run: Run, row: dict) -> None:
        if self._sent is not None and row["step"] <= self._sent:
            self._emit(row["step"], _eval_metrics(row))
            self._flush(run)
        else:
            self._held.append(row)

    def on_end(self, run: Run) -> None:
        for held in self._held:  # the loop flushes before on_end: normally none
            self._emit(held["step"], _eval_metrics(held))
        self._held.clear()
        self._flush(run)
        self._close(run)

    # ---- what a tracker implements ---------------------------------------------------
    def _open(self, run: Run, config: dict) -> None:
        raise NotImplementedError

    def _emit(self, step: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def _flush(self, run: Run) -> None: ...

    def _close(self, run: Run) -> None:
        raise NotImplementedError


class TensorBoard(_Tracker):
    """``torch.utils.tensorboard.SummaryWriter`` into ``<run>/tensorboard``."""

    name = "tensorboard"

    def _open(self, run: Run, config: dict) -> None:
        require("tensorboard", "tensorboard", "logging: tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard's reader drops the events at or after it written before,
        # by an attempt killed after its checkpoint (from the step after it: the resumed
        # loop logs from there, its checkpoint's step stays) or before any (all of them)
        step = run.state.step
        self.writer = SummaryWriter(
            log_dir=str(run.out / "tensorboard"), purge_step=step + 1 if step else 0
        )
        if run.state.step == 0:
            text = "```json\n" + json.dumps(config, indent=2) + "\n```"  # rendered Markdown
            self.writer.add_text("config", text, global_step=0)
            self.writer.add_text("run", self.run_name, global_step=0)

    def _emit(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)

    def _flush(self, run: Run) -> None:
        self.writer.flush()

    def _close(self, run: Run) -> None:
        self.writer.close()


class _Resumable(_Tracker):
    """A tracker that cannot take back a point: on resume, rows up to the last step it
    was sent (``trackers.json`` in the run folder) are skipped."""

    def on_start(self, run: Run) -> None:
        self._state_path = run.out / STATE_FILE
        self._state = _read_state(self._state_path).get(self.name, {})
        self._resuming = bool(self._state)
        self._skip_to = int(self._state.get("step", -1))
        self._last = self._skip_to
        super().on_start(run)
        self._save()  # the run's id, before anything is sent

    def _emit(self, step: int, metrics: dict[str, float]) -> None:
        if step <= self._skip_to:
            return
        self._send(step, metrics)
        self._last = max(self._last, step)

    def _flush(self, run: Run) -> None:
        if self._last != self._state.get("step", -1):
            self._save()

    def _save(self) -> None:
        self._state["step"] = self._last
        state = _read_state(self._state_path)
        state[self.name] = self._state
        write_json(self._state_path, state)

    def _send(self, step: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError


class WandB(_Resumable):
    """A Weights & Biases run: ``wandb.init`` / ``run.log(step=)`` / ``run.finish``."""

    name = "wandb"

    def _open(self, run: Run, config: dict) -> None:
        wandb = require("wandb", "wandb", "logging: wandb")
        # one id per run folder: a relaunch resumes the same W&B run, a fresh run (or an
        # overwritten folder) starts its own
        self._state.setdefault("id", _wandb_id(self.run_name))
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or PROJECT,
            name=self.run_name,
            config=config,
            dir=os.environ.get("WANDB_DIR") or str(run.out),
            id=self._state["id"],
            resume="allow",
        )

    def _send(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def _close(self, run: Run) -> None:
        self.run.finish()


class Trackio(_Resumable):
    """A trackio run (W&B-like): ``trackio.init`` / ``run.log(step=)`` / ``run.finish``."""

    name = "trackio"

    def _open(self, run: Run, config: dict) -> None:
        trackio = require("trackio", "trackio", "logging: trackio")
        self.run = trackio.init(
            project=PROJECT,
            name=self.run_name,
            config=config,
            # resumed by name: only a relaunch of this folder, not an older run of that name
            resume="allow" if self._resuming else "never",
        )

    def _send(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def _close(self, run: Run) -> None:
        self.run.finish()


# ---- helpers ---------------------------------------------------------------------


def _eval_metrics(row: dict) -> dict[str, float]:
    """The numeric fields of a learning-curve row as ``eval/<field>``, nested dicts
    (per-concept losses) as ``eval/<field>/<key>``; the step is the x axis."""
    flat: dict[str, float] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                add(f"{prefix}/{key}", inner)
        elif isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value):
            flat[prefix] = float(value)

    for key, value in row.items():
        if key != "step":
            add(f"eval/{key}", value)
    return flat


def _wandb_id(run_name: str) -> str:
    """A W&B run id from the run's name (W&B ids are at most 64 characters, none of
    ``/\\#?%:``), with a random suffix: unique to this run folder."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run_name).strip("-.") or "run"
    if len(slug) > 40:
        slug = slug[:31] + "-" + hashlib.sha256(run_name.encode()).hexdigest()[:8]
    return f"{slug}-{secrets.token_hex(4)}"


def _read_state(path: Path) -> dict:
    return read_json(path) if path.exists() else {}


__all__ = ["TRACKERS", "tracker"]
