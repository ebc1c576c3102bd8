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
    with pytest.raises(ConfigError, match=r"needs about .* GiB of disk .* choose another --out"):
        experiments.run(spec, out, progress=False)
    assert not out.exists()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * needed, 0, 2 * needed))
    planning.check_disk(experiments.cost(spec, rate=False)["total"], out)  # fits: no error


def test_validate_plans_for_a_named_gpu_on_a_machine_without_one():
    result = run_cli("experiment", "validate", "examples/paper-scale.yaml", "--gpu", "h100",
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    cost = json.loads(result.stdout)["cost"]
    assert cost["target"]["name"] == "H100" and cost["target"]["cuda"]
    words = run_cli("experiment", "validate", "examples/paper-scale.yaml", "--gpu", "H100")
    assert "GPU-hours" in words.stdout and "on one H100" in words.stdout
    bad = run_cli("experiment", "validate", "examples/quickstart.yaml", "--gpu", "nope")
    assert bad.returncode == 2 and "unknown GPU 'nope'" in bad.stderr


@pytest.mark.parametrize(
    "example",
    ["quickstart", "plan2", "collapse", "merging", "mixtures", "curriculum", "scaling"],
)
def test_every_example_is_planned(example):
    """Each kind declares its workload: every example has a plan with runs, FLOPs and
    disk, and its memory fits this machine."""
    spec = experiments.load_spec(f"examples/{example}.yaml")
    plan = experiments.cost(spec, rate=False)
    total = plan["total"]
    assert total["runs"] >= 1 and total["flops"] > 0 and total["disk_bytes"] > 0
    assert total["peak_memory_bytes"] <= plan["target"]["memory_bytes"]
    assert all(g["epochs"] is None or g["epochs"] > 0 for g in plan["groups"])
    assert planning.as_words(plan)[-1 - len(plan["notes"])].startswith("total: ")
