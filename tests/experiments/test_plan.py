"""The cost plan of whole experiments (``divlab.experiments.plan``): named GPUs, time as
FLOPs over a rate, the disk check before any work, the paper-scale spec sized for 80 GB."""

import json
import shutil
from collections import namedtuple

import pytest

from divlab import experiments
from divlab.errors import ConfigError
from divlab.experiments import plan as planning
from divlab.train.plan import ASSUMED_MFU, GIB, GPUS, MEMORY_BUDGET, gpu_target
from tests.experiments.tiny import tiny_spec
from tests.test_cli import run_cli


def test_paper_scale_fits_an_80_gb_gpu_and_its_time_is_flops_over_the_assumed_rate():
    spec = experiments.load_spec("examples/paper-scale.yaml")
    plan = experiments.cost(spec, gpu="H100")
    total = plan["total"]
    assert total["peak_memory_bytes"] <= MEMORY_BUDGET * 80 * GIB
    runs = [g for g in plan["groups"] if g["label"] != "probe"]
    assert {g["parameters"] for g in runs} == {85_036_800}  # the 125m preset
    assert {g["micro_batch_size"] for g in runs} == {64}  # 512 sequences in 8 passes
    rate = ASSUMED_MFU * GPUS["H100"].peak_bf16_flops
    assert total["seconds"] == pytest.approx(total["flops"] / rate)
    assert total["runs"] == 6 * 3 + 1  # conditions x seeds, and the trained probe
    # a 24 GB GPU takes smaller micro-batches of the same step
    small = experiments.cost(spec, gpu="L4")
    assert max(g["micro_batch_size"] for g in small["groups"] if g["label"] != "probe") < 64


def test_unknown_gpu_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown GPU 'B300'; choose from H200, H100"):
        gpu_target("B300")


def test_a_plan_that_does_not_fit_the_disk_is_refused_before_anything_is_written(
    tmp_path, monkeypatch
):
    spec = experiments.spec_from_dict(tiny_spec(), source="test")
    needed = experiments.cost(spec, rate=False)["total"]["disk_bytes"]
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * needed, 0, needed // 2))
    out = tmp_path / "exp"
    with pytest.raises(ConfigError, match=r"needs about .* MiB more disk .* choose another --out"):
        experiments.run(spec, out, progress=False)
    assert not out.exists()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * needed, 0, 2 * needed))
    planning.check_disk(experiments.cost(spec, rate=False)["total"], out)  # fits: no error


def test_relaunching_a_finished_experiment_needs_no_more_disk(tiny_experiment, monkeypatch):
    from divlab.experiments.registry import spec_of_folder

    folder = tiny_experiment[0]
    total = experiments.cost(spec_of_folder(folder), rate=False)["total"]
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 1))  # 1 byte free
    planning.check_disk(total, folder)  # every run finished: nothing more to write


def test_validate_plans_for_a_named_gpu_on_a_machine_without_one():
    result = run_cli("experiment", "validate", "examples/paper-scale.yaml", "--gpu", "h100",
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    cost = json.loads(result.stdout)["cost"]
    assert cost["target"]["name"] == "H100" and cost["target"]["cuda"]
    words = planning.as_words(cost)
    assert "GPU-hours" in words[-1] and "on one H100" in words[-1]


@pytest.mark.parametrize(
    "example",
    ["quickstart", "plan2", "collapse", "merging", "mixtures", "curriculum", "scaling"],
)
def test_every_example_is_planned(example):
    """Each kind declares its workload: every example has a plan with runs, FLOPs and
    disk."""
    spec = experiments.load_spec(f"examples/{example}.yaml")
    plan = experiments.cost(spec, rate=False)
    total = plan["total"]
    assert total["runs"] >= 1 and total["flops"] > 0 and total["disk_bytes"] > 0
    assert all(g["epochs"] is None or g["epochs"] > 0 for g in plan["groups"])
    assert planning.as_words(plan)[-1 - len(plan["notes"])].startswith("total: ")


def test_the_plan_costs_the_model_a_kind_trains_overrides_included():
    """Scaling swaps only the preset of the spec's model, and ``model.config`` overrides
    reach the shape behind FLOPs and memory (not only the parameter count)."""
    from divlab.train.models import build_config, build_model, count_parameters
    from divlab.train.plan import model_shape
    from tests.experiments.kinds.test_scaling import scaling_spec

    tree = scaling_spec()
    tree["model"] = {"preset": "tiny", "num_layers": 1, "config": {"intermediate_size": 32}}
    spec = experiments.spec_from_dict(tree, "test")
    planned = {g["parameters"] for g in experiments.cost(spec, rate=False)["groups"]}
    model = build_model(build_config(spec.model, spec.vocab_size(), spec.seq_len, {}), 0)
    assert planned == {count_parameters(model)["total"]}
    deeper = spec.model_copy(
        update={"model": spec.model.model_copy(update={"config": {"num_hidden_layers": 6}})}
    )
    assert model_shape(deeper, 54)[1]["layers"] == 6


def test_a_missing_tracker_is_found_before_any_work(tmp_path, monkeypatch):
    """``logging: [wandb]`` without wandb installed: one ConfigError naming the extra,
    before the experiment folder exists (not when the first run starts)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    spec = experiments.spec_from_dict(tiny_spec(logging=["wandb"]), source="test")
    out = tmp_path / "exp"
    with pytest.raises(
        ConfigError, match=r"logging: wandb needs wandb: pip install 'divlab\[wandb\]'"
    ):
        experiments.run(spec, out, progress=False)
    assert not out.exists()


def test_lm_eval_tasks_are_checked_before_any_work(tmp_path, monkeypatch):
    """experiments.check asks the harness about the spec's tasks before the folder exists:
    an unknown task stops the experiment there."""

    def refuse(tasks, include_path=None):
        raise ConfigError(f"unknown lm-eval task(s) {tasks}")

    monkeypatch.setattr(experiments, "check_tasks", refuse)  # the harness's check, as used
    evaluation = {"limit": 8, "prefix": 16, "length": 8, "lm_eval": {"tasks": ["nope"]}}
    spec = experiments.spec_from_dict(tiny_spec(evaluation=evaluation), source="test")
    out = tmp_path / "exp"
    with pytest.raises(ConfigError, match=r"unknown lm-eval task\(s\) \['nope'\]"):
        experiments.run(spec, out, progress=False)
    assert not out.exists()
