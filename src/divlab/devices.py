"""Device choice and mixed precision, shared by training and evaluation."""

from __future__ import annotations

import contextlib

import torch

from divlab.errors import ConfigError


def resolve_device(requested: str = "auto"):
    """``auto``: CUDA when present, else CPU."""

    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA device is available")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def autocast(device):
    """bf16 autocast on CUDA; full precision on CPU (tests pin CPU numbers)."""

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def as_float32(model):
    """``model`` in float32. Skips ``.float()`` when the weights already are: transformers
    refuses it on GGUF-loaded models, which it dequantises to float32."""

    if any(p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()
    return model
