"""The run cost plan (divlab.train.plan) against closed forms and a built model."""

import json
import subprocess
import sys

import pytest

from divlab.errors import ConfigError
from divlab.train.models import ModelSpec, build_config, build_model, count_parameters
from divlab.train.plan import (
    MEMORY_BUDGET,
    activation_bytes,
    memory_bytes,
    model_shape,
    run_cost,
)
from divlab.train.spec import RecipeSpec

from ..test_cli import run_cli

GIB = 2**30


def recipe(**fields) -> RecipeSpec:
    base = {"model": {"preset": "mini"}, "token_budget": 65536, "seq_len": 128}
    return RecipeSpec.from_dict({**base, "batch_tokens": 4096, **fields})


@pytest.mark.parametrize("preset", ["tiny", "mini", "small"])
@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_parameters_are_counted_exactly_without_building_the_weights(preset, architecture):
    spec = recipe(model={"preset": preset, "architecture": architecture})
    planned, _ = model_shape(spec, 54)
    built = build_model(build_config(ModelSpec(preset=preset, architecture=architecture),
                                     54, 128, {}), seed=0)  # fmt: skip
    assert planned == count_parameters(built)


def test_flops_are_6nd_plus_the_attention_term():
    """N counts the matmuls: the non-embedding parameters and the output head (an untied
    input embedding is a lookup): for an untied model N = total - V h, for a tied one the
    total (the head is the embedding)."""
    for tied in (False, True):
        spec = recipe(model={"preset": "mini", "tie_embeddings": tied})
        cost = run_cost(spec, 54, memory=64 * GIB, cuda=False)
        hidden, layers, _, _ = spec.model.sizes()
        matmuls = cost.parameters - (0 if tied else 54 * hidden)
        expected = (6 * matmuls + 6 * layers * 128 * hidden) * spec.tokens
        assert cost.flops == expected and cost.tokens == 65536 // 4096 * 4096


@pytest.mark.parametrize("memory_mib", [60, 80, 120, 400, 4096])
def test_the_micro_batch_is_the_largest_divisor_that_fits(memory_mib):
    spec = recipe(model={"preset": "small"}, seq_len=256, batch_tokens=256 * 32)
    memory = memory_mib * 2**20
    cost = run_cost(spec, 1000, memory=memory, cuda=False)
    parameters, shape = model_shape(spec, 1000)

    def peak(b):
        return memory_bytes(parameters["total"], shape, 256, b, False, False)

    assert 32 % cost.micro_batch_size == 0
    assert cost.memory_bytes == peak(cost.micro_batch_size) <= MEMORY_BUDGET * memory
    larger = [b for b in (2, 4, 8, 16, 32) if b > cost.micro_batch_size]
    assert all(peak(b) > MEMORY_BUDGET * memory for b in larger)


def test_a_run_that_cannot_fit_is_refused_with_the_knob():
    spec = recipe(model={"preset": "small"}, seq_len=256, batch_tokens=256 * 32)
    with pytest.raises(ConfigError, match="lower seq_len or the model size"):
        run_cost(spec, 1000, memory=2**20, cuda=False)
    with pytest.raises(
        ConfigError, match=r"micro_batch_size 32 needs about .* micro_batch_size: auto"
    ):
        run_cost(recipe(**{**spec.model_dump(), "micro_batch_size": 32}), 1000,
                 memory=80 * 2**20, cuda=False)  # fmt: skip


def test_validate_prints_the_plan_as_json():
    result = run_cli("experiment", "validate", "examples/quickstart.yaml", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["kind"] == "diversity" and plan["plan"][-1].startswith("12 runs")
    groups, total = plan["cost"]["groups"], plan["cost"]["total"]
    assert [g["label"] for g in groups] == ["k=1", "k=2", "k=4", "k=8", "k=16", "k=32"]
    assert all(g["parameters"] == 107_584 for g in groups)  # mini on GINC's 54 tokens
    assert all(g["micro_batch_size"] == 16 for g in groups)  # the whole step: it fits
    assert all(g["epochs"] == pytest.approx(399_360 / 1_000_000) for g in groups)
    assert total["runs"] == 12 and total["flops"] == pytest.approx(
        12 * groups[0]["flops"] + plan["cost"]["measure"]["flops"]
    )
    # each group's time is its FLOPs over the rate measured on this CPU for its model
    seconds = [g["seconds_per_run"] for g in groups]
    rate = groups[0]["flops"] / seconds[0]
    assert rate > 0 and seconds == pytest.approx([groups[0]["seconds_per_run"]] * 6)
    assert total["seconds"] == pytest.approx(total["flops"] / rate)


STEP_MEMORY = """
import sys, torch
torch.set_num_threads(1)
from divlab.train.models import ModelSpec, build_config, build_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

b = int(sys.argv[1])
model = build_model(build_config(ModelSpec(preset="small"), 1000, 256, {}), 0)
if sys.argv[2] == "checkpointing":
    model.config.use_cache = False
    model.activation_checkpointing_enable({"use_reentrant": False})
model.train()
optimizer = torch.optim.AdamW(model.parameters())
x = torch.randint(0, 1000, (b, 256))
model(input_ids=x[:1], labels=x[:1]).loss.backward()  # optimizer state and buffers exist
optimizer.step()
optimizer.zero_grad()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak RSS (VmHWM) starts again from the current RSS
before = status("VmRSS")
model(input_ids=x, labels=x).loss.backward()
optimizer.step()
print(status("VmHWM") - before)
"""


def test_the_activation_estimate_matches_the_measured_peak_of_a_step_on_cpu():
    """The peak-RSS growth of one training step of the small model over its resident
    state, at 8 and 32 sequences of 256 tokens, against the plan's activation estimate:
    within 30 % (measured here: 144 and 590 MB against 171 and 686 MB estimated)."""

    spec = recipe(model={"preset": "small"}, seq_len=256, batch_tokens=256 * 32)
    _, shape = model_shape(spec, 1000)
    for b in (8, 32):
        estimate = activation_bytes(shape, 256, b, False, False)
        assert _step_memory(b, "plain") == pytest.approx(estimate, rel=0.3)


def _step_memory(b: int, mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", STEP_MEMORY, str(b), mode], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


def test_activation_checkpointing_keeps_what_the_plan_says():
    """With activation checkpointing, one step at 32 sequences of 256 tokens: the peak-RSS
    growth against the plan's estimate (each layer's input, one layer recomputed, the
    logits; on CPU the recomputed layer's score gradient) within 40 % (measured here 305
    to 405 MB over several runs, against 304 MB estimated: the allocator's peak moves more
    than without checkpointing), and well under the same step measured without it."""
    spec = recipe(model={"preset": "small"}, seq_len=256, batch_tokens=256 * 32)
    _, shape = model_shape(spec, 1000)
    estimate = activation_bytes(shape, 256, 32, False, True)
    measured = _step_memory(32, "checkpointing")
    assert measured == pytest.approx(estimate, rel=0.4)
    assert measured < 0.8 * _step_memory(32, "plain")


@pytest.mark.parametrize(
    "device, expected",
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L40", "L40"),
        ("NVIDIA L4", "L4"),
    ],
)
def test_a_device_name_finds_its_own_peak(device, expected):
    """Peaks are looked up by substring in GPUS order: a longer name must come first."""
    from divlab.train.loop import PEAK_BF16_FLOPS

    assert next(k for k in PEAK_BF16_FLOPS if k in device) == expected
