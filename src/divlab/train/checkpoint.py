"""Checkpoints: Hugging Face ``save_pretrained`` folders plus a JSON sidecar.

A checkpoint folder holds ``config.json``, ``model.safetensors``, ``generation_config.json``
and the tokenizer files, so ``AutoModelForCausalLM.from_pretrained(dir)`` and
``AutoTokenizer.from_pretrained(dir)`` (and so lm-evaluation-harness's ``hf`` model)
load it as it is; ``divlab.json`` records the spec, tokens seen, FLOPs, seed, versions and
git sha. A resumable checkpoint adds ``trainer_state.pt`` (optimizer, scheduler, RNG and
position: tensors and plain numbers only, loaded with ``weights_only=True``). Folders are
written under a temporary name and renamed, so a kill never leaves a torn checkpoint.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import torch
import transformers
from transformers.utils import logging

import divlab
from divlab.errors import DataError
from divlab.io import atomic_directory, write_json

SIDECAR = "divlab.json"
WEIGHTS = "model.safetensors"
TRAINER_STATE = "trainer_state.pt"


def versions() -> dict:

    return {
        "divlab": divlab.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "git_sha": git_sha(),
    }


def git_sha() -> str | None:
    """The commit of the divlab source tree, when it is a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def save_checkpoint(
    path: Path, model, tokenizer_dir: Path, sidecar: dict, trainer_state: dict | None = None
) -> None:

    logging.disable_progress_bar()  # "Writing model shards" bars at every checkpoint
    with atomic_directory(path, overwrite=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for item in Path(tokenizer_dir).iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        write_json(tmp / SIDECAR, sidecar)
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER_STATE)


def load_trainer_state(path: Path) -> dict:

    try:
        return torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path} has no {TRAINER_STATE}; it cannot be resumed") from None
