"""Speed of learning from a run's learning curve and training log.

* Area under the loss curve, normalised by the token span: the mean eval loss over
  training (lower = learned sooner).
* Tokens to reach a loss threshold (linear interpolation at the first crossing), overall
  and per concept; with an oracle, the threshold is ``oracle + gap``, and the per-concept
  crossing is that skill's "grokking" point.
* Prequential code length: the sum over training batches of the loss on each batch before
  the update on it (nats, and bits per predicted token): a compression bound on the data.
"""

from __future__ import annotations

import math

import numpy as np


def area_under_curve(tokens, losses) -> float:
    """Trapezoid area under ``losses`` over ``tokens``, divided by the token span."""
    tokens, losses = np.asarray(tokens, float), np.asarray(losses, float)
    if len(tokens) < 2 or tokens[-1] == tokens[0]:
        return float(losses[0]) if len(losses) else float("nan")
    area = float(np.sum((losses[1:] + losses[:-1]) / 2 * np.diff(tokens)))
    return area / float(tokens[-1] - tokens[0])


def tokens_to_threshold(tokens, losses, threshold: float) -> float | None:
    """The first token count at which the loss reaches ``threshold`` (interpolated), or
    None if it never does."""
    tokens, losses = np.asarray(tokens, float), np.asarray(losses, float)
    below = np.flatnonzero(losses <= threshold)
    if len(below) == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(tokens[0])
    t0, t1, l0, l1 = tokens[i - 1], tokens[i], losses[i - 1], losses[i]
    return float(t0 + (l0 - threshold) / (l0 - l1) * (t1 - t0))


def prequential_code_length(train_log: list[dict], predicted_tokens_per_step: int) -> dict:
    nats = float(sum(row["loss"] for row in train_log)) * predicted_tokens_per_step
    predicted = predicted_tokens_per_step * len(train_log)
    return {"nats": nats, "bits_per_token": nats / predicted / math.log(2) if predicted else None}


def _series_speed(tokens, losses, threshold: float | None) -> dict:
    return {
        "auc": area_under_curve(tokens, losses),
        "threshold": threshold,
        "tokens_to_threshold": (
            tokens_to_threshold(tokens, losses, threshold) if threshold is not None else None
        ),
    }


def speed_of_learning(curve: list[dict], gap: float = 0.1, threshold: float | None = None) -> dict:
    """AUC and tokens-to-threshold, overall and per concept, from ``curve.jsonl`` rows.

    The threshold is ``threshold`` if given, else ``oracle_loss + gap`` (GINC), per concept
    with each concept's own oracle loss."""
    last = curve[-1]
    tokens = [row["tokens"] for row in curve]
    overall = threshold
    if overall is None and "oracle_loss" in last:
        overall = last["oracle_loss"] + gap
    result = _series_speed(tokens, [row["loss"] for row in curve], overall)
    if "per_concept" in last:
        result["per_concept"] = {}
        for concept in last["per_concept"]:
            own = threshold
            if own is None and "per_concept_oracle" in last:
                own = last["per_concept_oracle"][concept] + gap
            series = [row["per_concept"][concept] for row in curve]
            result["per_concept"][concept] = _series_speed(tokens, series, own)
    return result
