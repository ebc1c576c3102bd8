"""In-context-learning exact match on GINC prompt sets (Xie et al. 2021).

The model's greedy next token after ``[<eos>] + prompt`` (argmax over the GINC symbols:
special tokens are never a label) is compared with the prompt's label, the argmax of the
true concept's posterior. Accuracy is reported per (kind, n_examples, example_length)
with a Wilson 95 % interval. Prompts longer than the model's context keep their last
tokens (the test example is at the end).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from divlab.data.ginc.oracle import forward, next_token_distribution, slot_start
from divlab.evaluate.model import LanguageModel


def predict_icl(
    model: LanguageModel, prompts: pd.DataFrame, prefix_id: int, n_symbols: int
) -> np.ndarray:
    """The model's predicted label for every prompt."""
    sequences = [
        np.concatenate([[prefix_id], np.asarray(t, dtype=np.int64)]) for t in prompts["tokens"]
    ]
    predictions = np.empty(len(sequences), dtype=np.int64)
    lengths = np.array([len(s) for s in sequences])
    for length in np.unique(lengths):  # equal lengths batch without padding
        index = np.flatnonzero(lengths == length)
        logprobs = model.next_token_logprobs([sequences[i] for i in index])
        predictions[index] = logprobs[:, :n_symbols].argmax(axis=1)
    return predictions


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def icl_accuracy(prompts: pd.DataFrame, predictions: np.ndarray) -> pd.DataFrame:
    """Exact match per (kind, n_examples, example_length), with Wilson 95 % intervals."""
    frame = prompts[["kind", "n_examples", "example_length", "label"]].copy()
    frame["correct"] = np.asarray(predictions) == frame["label"].to_numpy()
    rows = []
    for (kind, n, length), group in frame.groupby(["kind", "n_examples", "example_length"]):
        hits, count = int(group["correct"].sum()), len(group)
        low, high = wilson_interval(hits, count)
        rows.append(
            {
                "kind": kind,
                "n_examples": int(n),
                "example_length": int(length),
                "prompts": count,
                "accuracy": hits / count,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows)


def bayes_oracle_predictions(dataset, prompts: pd.DataFrame) -> np.ndarray:
    """What a model that knows each prompt's concept and start slot predicts: the argmax
    of the posterior given the prompt's last ``L - 1`` tokens (the test input)."""

    family = dataset.family
    predictions = np.empty(len(prompts), dtype=np.int64)
    cells = prompts.groupby(["kind", "example_length", "pattern"]).indices
    for (_, length, pattern), positions in cells.items():
        group = prompts.iloc[positions]
        arrays = family.concepts(sorted(set(group["concept"])))
        rows = np.searchsorted(arrays.indices, group["concept"].to_numpy())
        x = np.stack([np.asarray(t)[len(t) - (length - 1) :] for t in group["tokens"]])
        if pattern == "hmm":
            start = slot_start(family, group["start_slot"].to_numpy())
        else:
            start = np.full((len(group), family.n_states), 1.0 / family.n_states)
        _, alpha = forward(family, arrays, rows, x, start=start)
        posterior = next_token_distribution(family, arrays, rows, alpha)
        predictions[positions] = posterior.argmax(axis=1)
    return predictions
