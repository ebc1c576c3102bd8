"""Trackers: TensorBoard's event files hold the numbers of the run's own logs, once each
across a kill and resume; W&B and trackio runs get the same rows in step order, skip on
resume what they already have, and need their extra."""

import json
import sys
import types

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from divlab.errors import ConfigError
from divlab.train import Callback, train
from divlab.train import loop as loop_module
from divlab.train.trackers import TRACKERS, tracker
from tests.train.test_loop import Kill, read_jsonl, tiny_spec


def scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in events.Scalars(tag)]


def assert_logged(run_dir, tag: str, rows: list[dict], field: str) -> None:
    logged = scalars(run_dir, tag)
    assert [step for step, _ in logged] == [row["step"] for row in rows]
    np.testing.assert_allclose(
        [value for _, value in logged], [row[field] for row in rows], rtol=1e-6
    )  # TensorBoard stores float32


def test_tensorboard_holds_the_run_logs(one_concept, tmp_path):
    out = tmp_path / "run-id"
    spec = tiny_spec(one_concept, token_budget=(loop_module.LOG_EVERY + 5) * 512)
    train(spec, out, callbacks=[tracker("tensorboard")])
    log, curve = read_jsonl(out / "train_log.jsonl"), read_jsonl(out / "curve.jsonl")
    assert len(log) == loop_module.LOG_EVERY + 5 and len(curve) > 2
    assert_logged(out, "train/loss", log, "loss")
    assert_logged(out, "train/lr", log, "lr")
    assert_logged(out, "eval/loss", curve, "loss")
    assert_logged(out, "eval/gap", curve, "gap")
    assert_logged(out, "eval/per_concept/0", [{**r, **r["per_concept"]} for r in curve], "0")
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["tensors"]) >= {"config/text_summary", "run/text_summary"}
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(config.strip("`\njson")) == spec.model_dump(mode="json")
    run_name = events.Tensors("run/text_summary")[0].tensor_proto.string_val[0].decode()
    assert run_name == "run-id"  # the run folder's name


def test_tensorboard_logs_each_step_once_across_a_resume(one_concept, tmp_path, monkeypatch):
    """A run killed before its first checkpoint starts over; one killed after its
    checkpoint at step 4 had logged steps 5 and 6, and resumed logs them again: either way
    TensorBoard shows each step once, with the numbers of the final logs."""
    monkeypatch.setattr(loop_module, "LOG_EVERY", 1)  # the killed run logs past its checkpoint
    spec = tiny_spec(
        one_concept,
        token_budget=10 * 512,
        checkpoint_every_tokens=4 * 512,
        eval_every_tokens=3 * 512,
    )
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # before the first checkpoint: starts over
        train(spec, out, callbacks=[tracker("tensorboard"), Kill(2)])
    with pytest.raises(KeyboardInterrupt):  # after the checkpoint at step 4: resumes
        train(spec, out, callbacks=[tracker("tensorboard"), Kill(6)])
    assert [step for step, _ in scalars(out, "train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in scalars(out, "eval/loss")] == [0, 3, 6]
    train(spec, out, callbacks=[tracker("tensorboard")])
    assert_logged(out, "train/loss", read_jsonl(out / "train_log.jsonl"), "loss")
    assert_logged(out, "eval/loss", read_jsonl(out / "curve.jsonl"), "loss")


class FakeRun:
    def __init__(self, calls: list, **init) -> None:
        self.calls = calls
        calls.append(("init", init))

    def log(self, metrics: dict, step: int | None = None) -> None:
        self.calls.append(("log", step, metrics))

    def finish(self) -> None:
        self.calls.append(("finish",))


@pytest.mark.parametrize("name", ["wandb", "trackio"])
def test_wandb_and_trackio_get_the_rows_in_order_once(name, one_concept, tmp_path, monkeypatch):
    """The library's own API (here a stand-in module) gets every train row and eval row
    in step order, the run named after its folder with the spec as config; relaunched
    after a kill, the same tracker run resumes and gets only the steps it lacks."""
    calls: list = []
    fake = types.ModuleType(name)
    fake.init = lambda **init: FakeRun(calls, **init)
    monkeypatch.setitem(sys.modules, name, fake)
    monkeypatch.setattr(loop_module, "LOG_EVERY", 1)
    spec = tiny_spec(
        one_concept,
        token_budget=10 * 512,
        checkpoint_every_tokens=4 * 512,
        eval_every_tokens=3 * 512,
    )
    out = tmp_path / "run-id"
    with pytest.raises(KeyboardInterrupt):
        train(spec, out, callbacks=[tracker(name), Kill(6)])
    train(spec, out, callbacks=[tracker(name)])

    inits = [call[1] for call in calls if call[0] == "init"]
    assert len(inits) == 2 and all(i["name"] == "run-id" for i in inits)
    assert all(i["config"] == spec.model_dump(mode="json") for i in inits)
    if name == "wandb":  # one id per run folder: the relaunch resumes the same W&B run
        assert inits[0]["id"] == inits[1]["id"] and inits[0]["id"].startswith("run-id-")
        assert inits[0]["resume"] == "allow" and inits[0]["dir"] == str(out)
    else:  # trackio resumes by name: only the relaunch
        assert [i["resume"] for i in inits] == ["never", "allow"]
    logs = [call for call in calls if call[0] == "log"]
    steps = [step for _, step, _ in logs]
    assert steps == sorted(steps)
    train_rows = {step: m for _, step, m in logs if "train/loss" in m}
    eval_rows = {step: m for _, step, m in logs if "eval/loss" in m}
    log, curve = read_jsonl(out / "train_log.jsonl"), read_jsonl(out / "curve.jsonl")
    assert len(train_rows) == sum("train/loss" in m for _, _, m in logs) == len(log)  # once
    assert {s: m["train/loss"] for s, m in train_rows.items()} == {
        r["step"]: r["loss"] for r in log
    }
    assert {s: m["train/lr"] for s, m in train_rows.items()} == {r["step"]: r["lr"] for r in log}
    assert {s: m["eval/loss"] for s, m in eval_rows.items()} == {
        r["step"]: r["loss"] for r in curve
    }
    assert calls[-1] == ("finish",)


@pytest.mark.parametrize("name", ["tensorboard", "wandb", "trackio"])
def test_a_missing_library_names_its_extra(name, one_concept, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` fails, installed or not
    with pytest.raises(ConfigError, match=rf"pip install 'divlab\[{name}\]'"):
        train(tiny_spec(one_concept, token_budget=512), tmp_path / "run", callbacks=[tracker(name)])


def test_tracker_names():
    assert TRACKERS == ("tensorboard", "wandb", "trackio")
    for name in TRACKERS:
        assert isinstance(tracker(name), Callback)
    with pytest.raises(ConfigError, match=r"unknown tracker 'mlflow'.*tensorboard, wandb"):
        tracker("mlflow")


def test_the_train_command_logs_to_tensorboard(one_concept, tmp_path):
    """``divlab train --log tensorboard`` writes OUT/tensorboard with the run's losses;
    an unknown tracker is one error line and exit 2 before any training."""
    from tests.test_cli import run_cli

    out = tmp_path / "run"
    args = ["train", "--data", str(one_concept), "--out", str(out), "--preset", "tiny",
            "--tokens", "2048", "--batch-tokens", "512", "--seq-len", "64",
            "--no-progress"]  # fmt: skip
    result = run_cli(*args, "--log", "tensorboard")
    assert result.returncode == 0, result.stderr
    assert_logged(out, "train/loss", read_jsonl(out / "train_log.jsonl"), "loss")
    bad = run_cli(*[a if a != str(out) else str(tmp_path / "bad") for a in args], "--log", "x")
    assert bad.returncode == 2 and "unknown tracker 'x'" in bad.stderr
    assert not (tmp_path / "bad").exists()
