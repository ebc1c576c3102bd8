"""Parameter averaging of checkpoints of one architecture (model soups; the merging
experiment of Na et al. 2024, ``divlab.experiments.kinds.merging``; ``divlab merge``).

The average is written as a normal Hugging Face checkpoint folder (safetensors weights,
the first checkpoint's config and tokenizer, a ``divlab.json`` sidecar naming the sources).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from divlab.errors import ConfigError, DataError
from divlab.io import atomic_directory, write_json
from divlab.train.checkpoint import SIDECAR, TRAINER_STATE, WEIGHTS

# Files of a checkpoint folder that describe one training run, not the merged weights.
NOT_COPIED = {WEIGHTS, SIDECAR, TRAINER_STATE, "model.safetensors.index.json"}
# config.json fields that may differ between checkpoints of one architecture.
VOLATILE_CONFIG = {"_name_or_path", "transformers_version", "torch_dtype", "dtype"}


def average_checkpoints(
    paths: list[str | Path],
    out: str | Path,
    weights: list[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the parameter average of the checkpoints ``paths`` to folder ``out``.

    theta = sum_i w_i theta_i / sum_i w_i for every floating-point tensor (summed in float64,
    then cast back to the tensor's dtype); ``weights`` default to uniform. Every other
    tensor (integer buffers) must be equal in all checkpoints and is copied. ``config.json``,
    the generation config and tokenizer files come from the first checkpoint; ``divlab.json``
    records the sources and weights. The folder is written atomically and loads with
    ``AutoModelForCausalLM.from_pretrained``.

    Errors: no checkpoint, a folder without ``model.safetensors``, weights that are not
    positive or not one per checkpoint, and checkpoints of different architectures (their
    configs, tensor names or tensor shapes differ; the first offender is named).
    """

    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("averaging needs at least one checkpoint folder")
    normalised = _normalised_weights(weights, len(paths))
    for path in paths:
        if not (path / WEIGHTS).is_file():
            hint = " (sharded checkpoints are not supported)" if path.is_dir() else ""
            raise DataError(
                f"{path} has no {WEIGHTS}{hint}; pass checkpoint folders such as a run's model/"
            )
    _check_configs(paths)
    with safe_open(str(paths[0] / WEIGHTS), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})

    reference = load_file(str(paths[0] / WEIGHTS))
    total = {name: _scaled(t, normalised[0]) for name, t in reference.items()}
    for path, weight in zip(paths[1:], normalised[1:], strict=True):
        tensors = load_file(str(path / WEIGHTS))
        _check_tensors(paths[0], reference, path, tensors)
        for name, tensor in tensors.items():
            if tensor.is_floating_point():
                total[name] += weight * tensor.to(torch.float64)
            elif not torch.equal(tensor, reference[name]):
                raise DataError(
                    f"non-float tensor {name!r} differs between {paths[0]} and {path}; only "
                    "floating-point parameters can be averaged"
                )
        del tensors
    merged = {
        name: total[name].to(t.dtype) if t.is_floating_point() else t.clone()
        for name, t in reference.items()
    }

    sources = [str(p.resolve()) for p in paths]
    with atomic_directory(out, overwrite=overwrite) as tmp:
        save_file(merged, str(tmp / WEIGHTS), metadata={**metadata, "format": "pt"})
        for item in sorted(paths[0].iterdir()):
            if item.is_file() and item.name not in NOT_COPIED:
                shutil.copy2(item, tmp / item.name)
        write_json(
            tmp / SIDECAR,
            {
                "kind": "merge",
                "method": "parameter average (float tensors; others copied)",
                "sources": sources,
                "weights": [float(w) for w in (weights or [1.0] * len(paths))],
                "normalised_weights": [float(w) for w in normalised],
            },
        )
    return Path(out)


def _scaled(tensor, weight: float):

    return weight * tensor.to(torch.float64) if tensor.is_floating_point() else tensor


def _normalised_weights(weights, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ConfigError(f"{len(weights)} weights for {n} checkpoints; give one per checkpoint")
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(f"weights must be positive numbers, got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


def _check_configs(paths: list[Path]) -> None:
    """Same architecture: every config.json equal to the first, volatile fields aside."""
    configs = []
    for path in paths:
        if not (path / "config.json").is_file():
            raise DataError(f"{path} has no config.json; pass Hugging Face checkpoint folders")
        config = json.loads((path / "config.json").read_text())
        configs.append({k: v for k, v in config.items() if k not in VOLATILE_CONFIG})
    first = configs[0]
    for path, config in zip(paths[1:], configs[1:], strict=True):
        for key in sorted(first.keys() | config.keys()):
            if first.get(key) != config.get(key):
                raise ConfigError(
                    f"{path} has another architecture than {paths[0]}: config field {key!r} is "
                    f"{config.get(key)!r} there and {first.get(key)!r} in the first; average "
                    "only checkpoints of one model"
                )


def _check_tensors(first: Path, reference: dict, path: Path, tensors: dict) -> None:
    missing = sorted(reference.keys() - tensors.keys())
    extra = sorted(tensors.keys() - reference.keys())
    if missing or extra:
        name, where = (missing[0], "lacks") if missing else (extra[0], "adds")
        raise ConfigError(
            f"{path} has another architecture than {first}: it {where} tensor {name!r} "
            f"({len(missing)} missing, {len(extra)} extra); average only checkpoints of one model"
        )
    for name, tensor in reference.items():
        other = tensors[name]
        if other.shape != tensor.shape or other.dtype != tensor.dtype:
            raise ConfigError(
                f"{path} has another architecture than {first}: tensor {name!r} is "
                f"{tuple(other.shape)} {other.dtype} there and {tuple(tensor.shape)} "
                f"{tensor.dtype} in the first; average only checkpoints of one model"
            )
