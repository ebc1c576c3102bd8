"""A model interface small enough for any checkpoint (lm-evaluation-harness style).

divlab's metrics need one call: the log-probabilities of the next token after each of a
batch of token sequences. ``HFLanguageModel`` implements it for any Hugging Face causal
LM (a divlab checkpoint, a hub name, a local folder); anything else (an oracle, an n-gram
model, an API) implements ``next_token_logprobs`` and gets every metric for free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from transformers import AutoModelForCausalLM
from transformers.utils import logging

from divlab.devices import autocast
from divlab.errors import DataError


class LanguageModel(Protocol):
    def next_token_logprobs(self, sequences: list[np.ndarray]) -> np.ndarray:
        """(B, vocab) log-probabilities of the token following each sequence."""
        ...


class HFLanguageModel:
    """A Hugging Face causal LM behind the interface. Sequences longer than the context
    keep their last ``context`` tokens; batches are right-padded (a causal model's logits
    at the last real token do not see the padding)."""

    def __init__(self, model, context: int | None = None, batch_size: int = 32) -> None:
        self.model = model.eval()
        config = model.config
        self.context = (
            context or getattr(config, "max_position_embeddings", None) or config.n_positions
        )
        self.batch_size = batch_size
        self.device = next(model.parameters()).device

    def next_token_logprobs(self, sequences: list[np.ndarray]) -> np.ndarray:

        out = []
        with torch.no_grad():
            for first in range(0, len(sequences), self.batch_size):
                batch = [
                    np.asarray(s[-self.context :])
                    for s in sequences[first : first + self.batch_size]
                ]
                lengths = np.array([len(s) for s in batch])
                inputs = np.zeros((len(batch), lengths.max()), dtype=np.int64)
                for i, s in enumerate(batch):
                    inputs[i, : len(s)] = s
                ids = torch.from_numpy(inputs).to(self.device)
                with autocast(self.device):
                    logits = self.model(input_ids=ids).logits
                last = logits[torch.arange(len(batch)), torch.from_numpy(lengths - 1)]
                out.append(torch.log_softmax(last.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)


def greedy_continuation(
    model: LanguageModel, prefixes: list[np.ndarray], length: int, allowed: int | None = None
) -> np.ndarray:
    """(B, length) greedy continuation of each prefix; ``allowed`` restricts the argmax to
    token ids below it (e.g. a GINC vocabulary's symbols, excluding special tokens)."""
    sequences = [np.asarray(p, dtype=np.int64) for p in prefixes]
    out = np.empty((len(sequences), length), dtype=np.int64)
    for t in range(length):
        logprobs = model.next_token_logprobs(sequences)
        if allowed is not None:
            logprobs = logprobs[:, :allowed]
        out[:, t] = logprobs.argmax(axis=1)
        sequences = [np.append(s, token) for s, token in zip(sequences, out[:, t], strict=True)]
    return out


def checkpoint_path(path: str | Path) -> Path:
    """``path`` as a Path, or a DataError if it is not a model folder (no config.json)."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise DataError(
            f"{path} is not a model checkpoint (no config.json); pass a divlab run's RUN/model "
            "or a Hugging Face model folder"
        )
    return path


def load_model(path: str | Path, device: str | None = None):
    """A checkpoint (or any HF causal-LM folder) as an eval-mode model on ``device``."""

    logging.disable_progress_bar()
    path = checkpoint_path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=False)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval()
