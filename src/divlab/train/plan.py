"""The cost of a training run, planned before any compute: parameters, FLOPs, peak memory,
the micro-batch that fits a memory budget, and disk.

Parameters are counted exactly on a model built on PyTorch's ``meta`` device (no memory,
no weights). The rest are estimates, stated with their sources:

* FLOPs per trained token (Kaplan et al. 2020, "Scaling Laws for Neural Language
  Models", table 1): forward ``2 N + 2 L s h`` (L layers, context s, width h: the
  attention scores and their mixing), training three forwards: ``6 N + 6 L s h``, with N
  the non-embedding parameters plus the output head ``V h`` (the logits are a matmul; an
  untied input embedding is a lookup and is not counted). ``6 N D`` with the total N is
  what runs record (``train.models.training_flops``); MFU uses the planned count.
* Memory (bytes), b sequences of s tokens per forward pass, a heads, vocabulary V:

  - weights, gradients and AdamW's two moments, all float32: ``16`` per parameter;
  - activations kept for the backward pass, per layer (Korthikanti et al. 2022,
    "Reducing Activation Recomputation in Large Transformer Models", eq. 1 without
    dropout masks): ``s b h (34 + 5 a s / h)`` bytes at 16 bits, counted at twice that
    (float32) on CPU and, until ``bench/gpu_check.py`` has measured it, on CUDA too: under
    bf16 autocast HF's Llama keeps norms, residuals and several casts in float32 beside
    the bf16 matmul outputs (about ``63 h`` bytes per token and layer by count, near the
    float32 ``68 h``), so the 16-bit figure would plan micro-batches that do not fit; with
    activation checkpointing only each layer's input (``4 s b h``) plus one layer
    recomputed in full (on CPU also the gradient
    of its attention scores, ``4 a s^2 b`` bytes: measured 305 MB against 292 MB
    estimated for the small preset at 32 x 256 tokens, 258 MB without that term);
  - the logits, their softmax and its gradient in float32: ``12 s b V``.

  The attention term ``5 a s / h`` counts the scores, which SDPA's math kernel keeps on
  CPU (the CPU test pins the estimate to measured peak memory within 30 %); on CUDA
  SDPA's fused kernels keep no scores, so the term is left out there (not yet measured
  on a GPU).
* Time: FLOPs over an achieved rate. On CPU the rate is measured (``measured_rate``: a
  few training steps of the recipe's model, on random tokens, with this process's
  threads); on a named GPU it is ``ASSUMED_MFU`` of the GPU's dense bf16 peak (``GPUS``),
  an assumption until ``bench/gpu_check.py`` measures it there.
* Disk: the data sets' tokens as uint16 (an upper bound: the files are compressed), and
  per run the final model (4 bytes per parameter) plus, while it trains, one resumable
  checkpoint (weights and AdamW state: 12 bytes per parameter).
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from transformers import AutoModelForCausalLM

from divlab.errors import ConfigError
from divlab.train.models import build_config, count_parameters
from divlab.train.spec import RecipeSpec

OPTIMIZER_BYTES_PER_PARAMETER = 16  # float32 weights, gradients, AdamW m and v
MEMORY_BUDGET = 0.9  # share of the device's memory a run may plan to use
ASSUMED_MFU = 0.4  # model FLOPs utilisation assumed on a named GPU (issue 15's target)
GIB = 2**30


@dataclass(frozen=True)
class Gpu:
    memory_bytes: int
    peak_bf16_flops: float  # dense, per second (the vendors' data sheets)


# Memory as torch.cuda reports it (a little under the data sheets' GB), dense bf16 peak
# from the data sheets. Names are matched by substring in this order: a longer name first.
GPUS = {
    "H200": Gpu(int(139.8 * GIB), 989e12),
    "H100 PCIe": Gpu(int(79.2 * GIB), 756e12),
    "H100 NVL": Gpu(int(93.1 * GIB), 835e12),
    "H100": Gpu(int(79.2 * GIB), 989e12),
    "A100-40GB": Gpu(int(39.4 * GIB), 312e12),
    "A100": Gpu(int(79.2 * GIB), 312e12),
    "L40S": Gpu(int(44.5 * GIB), 362e12),
    "L40": Gpu(int(44.5 * GIB), 181e12),
    "A10G": Gpu(int(22.1 * GIB), 70e12),
    "A10": Gpu(int(22.1 * GIB), 125e12),
    "L4": Gpu(int(22.1 * GIB), 121e12),
}


@dataclass(frozen=True)
class Target:
    """The device a plan is costed on: its memory and the rate runs achieve there."""

    name: str
    memory_bytes: int
    cuda: bool
    flops_per_second: float | None  # achieved (None: measured per model, or not known)
    rate_source: str  # how the rate was found, printed beside the time
    measured: bool = False  # this CPU: the rate of each model is measured (measured_rate)

    def as_dict(self) -> dict:
        return asdict(self)

    def rate(self, recipe: RecipeSpec, vocab_size: int) -> float | None:
        """FLOP/s a run of ``recipe`` achieves here (None: no time estimate)."""
        if self.measured:
            return measured_rate(recipe, vocab_size)
        return self.flops_per_second


def gpu_target(name: str) -> Target:
    """A named GPU (``GPUS``), one per run, at ``ASSUMED_MFU`` of its bf16 peak."""
    key = next((k for k in GPUS if k.lower() == name.lower()), None)
    if key is None:
        raise ConfigError(f"unknown GPU {name!r}; choose from {', '.join(GPUS)}")
    return Target(key, GPUS[key].memory_bytes, True, *_assumed(key))


@dataclass(frozen=True)
class RunCost:
    """The planned cost of one training run."""

    parameters: int
    parameters_non_embedding: int
    tokens: int
    flops: float  # 6 N D + attention, N with embeddings
    micro_batch_size: int  # sequences per forward pass
    memory_bytes: int  # estimated peak at that micro-batch
    memory_budget_bytes: int
    disk_bytes: int  # final model + one resumable checkpoint

    def as_dict(self) -> dict:
        return asdict(self)


def model_shape(recipe: RecipeSpec, vocab_size: int) -> tuple[dict[str, int], dict]:
    """Exact parameter counts of the recipe's model (built on the meta device) and the
    sizes the estimates need (layers, width, heads, vocabulary)."""
    config = build_config(recipe.model, vocab_size, recipe.seq_len, {})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    # from the built config: ``model.config`` overrides may change any of them
    return count_parameters(model), {
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "heads": config.num_attention_heads,
        "vocab": vocab_size,
    }


def activation_bytes(shape: dict, seq_len: int, micro: int, cuda: bool, checkpointing: bool):
    """Activations kept for the backward pass of one forward of ``micro`` sequences."""
    s, b, h, a = seq_len, micro, shape["hidden"], shape["heads"]
    # float32 on CPU. On CUDA counted as float32 too, until bench/gpu_check.py measures it:
    # under bf16 autocast HF's Llama keeps norms, residuals and casts in float32 besides
    # the bf16 matmul outputs (about 63 h bytes per token and layer by count, not 34 h)
    width = 2
    # the attention scores are kept on CPU (SDPA's math kernel), not by CUDA's fused one
    scores = 0 if cuda else 5 * a * s / h
    per_layer = s * b * h * (34 + scores) * width
    if checkpointing:
        layers = 2 * s * b * h * width * shape["layers"] + per_layer
        if not cuda:  # the recomputed layer's backward also holds its scores' gradient
            layers += 4 * a * s * s * b
    else:
        layers = per_layer * shape["layers"]
    return int(layers + 12 * s * b * shape["vocab"])


def memory_bytes(
    parameters: int, shape: dict, seq_len: int, micro: int, cuda: bool, checkpointing: bool
) -> int:
    state = OPTIMIZER_BYTES_PER_PARAMETER * parameters
    return state + activation_bytes(shape, seq_len, micro, cuda, checkpointing)


def device_memory(device: str) -> tuple[int, bool]:
    """(bytes of memory, is CUDA) of the device a recipe's ``device`` resolves to here:
    the first GPU's memory, else this machine's RAM."""
    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, True
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), False


def run_cost(
    recipe: RecipeSpec,
    vocab_size: int,
    memory: int | None = None,
    cuda: bool | None = None,
) -> RunCost:
    """The cost of one run of ``recipe`` on a vocabulary of ``vocab_size``; ``memory``
    bytes of the device (default: this machine's, see ``device_memory``). The micro-batch
    is the recipe's (None: the whole step), or for ``auto`` the largest divisor of the
    step's sequences whose estimated peak fits ``MEMORY_BUDGET`` of the memory; a run that
    cannot fit is a ConfigError naming the knobs."""
    if memory is None or cuda is None:
        here, here_cuda = device_memory(recipe.device)
        memory = here if memory is None else memory
        cuda = here_cuda if cuda is None else cuda
    parameters, shape = model_shape(recipe, vocab_size)
    budget = int(MEMORY_BUDGET * memory)
    per_step = recipe.sequences_per_step
    checkpointing = recipe.activation_checkpointing

    def peak(micro: int) -> int:
        return memory_bytes(parameters["total"], shape, recipe.seq_len, micro, cuda, checkpointing)

    if recipe.micro_batch_size == "auto":
        fitting = [b for b in range(1, per_step + 1) if per_step % b == 0 and peak(b) <= budget]
        if not fitting:
            raise ConfigError(
                f"one sequence of {recipe.seq_len} tokens on the {recipe.model.preset} model "
                f"needs about {peak(1) / 2**30:.1f} GiB, over {MEMORY_BUDGET:.0%} of the "
                f"device's {memory / 2**30:.1f} GiB; lower seq_len or the model size"
                + ("" if checkpointing else ", or set activation_checkpointing: true")
            )
        micro = max(fitting)
    else:
        micro = recipe.micro_batch_size or per_step
        if peak(micro) > budget:
            raise ConfigError(
                f"micro_batch_size {micro} needs about {peak(micro) / 2**30:.1f} GiB, over "
                f"{MEMORY_BUDGET:.0%} of the device's {memory / 2**30:.1f} GiB; set "
                "micro_batch_size: auto (the largest that fits) or lower it"
                + ("" if checkpointing else ", or set activation_checkpointing: true")
            )
    return RunCost(
        parameters=parameters["total"],
        parameters_non_embedding=parameters["non_embedding"],
        tokens=recipe.tokens,
        flops=float(flops_per_token(parameters, shape, recipe.seq_len) * recipe.tokens),
        micro_batch_size=micro,
        memory_bytes=peak(micro),
        memory_budget_bytes=budget,
        disk_bytes=(4 + 12) * parameters["total"],
    )


def micro_batch_size(recipe: RecipeSpec, vocab_size: int, device: torch.device) -> int:
    """The micro-batch a run of ``recipe`` uses on ``device`` (its own memory)."""
    if recipe.micro_batch_size != "auto":
        return recipe.micro_batch_size or recipe.sequences_per_step
    if device.type == "cuda":
        memory = torch.cuda.get_device_properties(device).total_memory
        return run_cost(recipe, vocab_size, memory, cuda=True).micro_batch_size
    return run_cost(recipe, vocab_size, device_memory("cpu")[0], cuda=False).micro_batch_size


def matmul_parameters(parameters: dict, shape: dict) -> int:
    """The parameters a token's forward pass multiplies by: the non-embedding ones and
    the output head (``V h``; an untied input embedding is a lookup, not a matmul)."""
    return parameters["non_embedding"] + shape["vocab"] * shape["hidden"]


def flops_per_token(parameters: dict, shape: dict, seq_len: int) -> int:
    """Training FLOPs per token: ``6 N + 6 L s h``, N the matmul parameters (see the
    module docstring and ``matmul_parameters``)."""
    return (
        6 * matmul_parameters(parameters, shape) + 6 * shape["layers"] * seq_len * shape["hidden"]
    )


CALIBRATION_SECONDS = 1.0  # how long ``measured_rate`` times steps (after one warm-up step)
CALIBRATION_TOKENS = 2048  # tokens per timed step, at most


@functools.lru_cache(maxsize=16)
def _measured_rate(model_json: str, vocab_size: int, seq_len: int) -> float:
    from divlab.train.models import ModelSpec, build_model

    model_spec = ModelSpec.model_validate_json(model_json)
    config = build_config(model_spec, vocab_size, seq_len, {})
    model = build_model(config, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    parameters = count_parameters(model)
    shape = {"layers": config.num_hidden_layers, "hidden": config.hidden_size,
             "vocab": vocab_size}  # fmt: skip
    rows = max(1, CALIBRATION_TOKENS // seq_len)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, vocab_size, (rows, seq_len), generator=generator)

    def step() -> None:
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, kernels chosen
    times, started = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < CALIBRATION_SECONDS:
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    # the median step: a shared machine's stalls move it less than the mean
    return flops_per_token(parameters, shape, seq_len) * rows * seq_len / statistics.median(times)


def measured_rate(recipe: RecipeSpec, vocab_size: int) -> float:
    """Training FLOP/s this process achieves on CPU for the recipe's model: a warm-up and
    then at least three and about ``CALIBRATION_SECONDS`` of AdamW steps on random tokens
    (their median), in float32 with the current torch threads (a run on a worker with
    fewer threads is slower; a busy machine slower still). The sequence
    length is the recipe's up to 512 tokens (longer ones are costed at that rate)."""
    seq_len = min(recipe.seq_len, 512)
    return _measured_rate(recipe.model.model_dump_json(), vocab_size, seq_len)


def here_target(recipe: RecipeSpec, rate: bool = True) -> Target:
    """This machine as a plan's target: its first GPU (at ``ASSUMED_MFU`` of a known
    model's peak) or its CPU (each model's rate measured, unless ``rate`` is False)."""
    memory, cuda = device_memory(recipe.device)
    if cuda:
        name = torch.cuda.get_device_name(0)
        key = next((k for k in GPUS if k in name), None)
        if key is None:
            return Target(name, memory, True, None, "no peak FLOP/s known for this GPU")
        return Target(name, memory, True, *_assumed(key))
    if not rate:
        return Target("cpu", memory, False, None, "not measured")
    threads = torch.get_num_threads()
    return Target("cpu", memory, False, None, f"measured here, {threads} torch threads", True)


def _assumed(key: str) -> tuple[float, str]:
    peak = GPUS[key].peak_bf16_flops
    return (
        ASSUMED_MFU * peak,
        f"assumed {ASSUMED_MFU:.0%} MFU of the {key}'s {peak / 1e12:.0f} TFLOP/s bf16 peak",
    )
