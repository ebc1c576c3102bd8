"""Continuation metrics: greedy continuations of eval-document prefixes.

Each continuation of ``length`` tokens after a ``prefix``-token prefix is compared with
the document's true continuation and, on GINC, with the oracle's argmax continuation (the
best any model can do when scored token by token against a greedy reference):
normalised token edit distance (Levenshtein / length, via rapidfuzz), average token
match (position by position) and exact match (all tokens equal).
"""

from __future__ import annotations

import numpy as np
from rapidfuzz.distance import Levenshtein

from divlab.data.ginc.oracle import greedy_continuation as oracle_continuation
from divlab.errors import ConfigError
from divlab.evaluate.model import LanguageModel, greedy_continuation


def compare(predicted: np.ndarray, reference: np.ndarray) -> dict:
    """The three metrics, averaged over rows of two (N, length) token arrays."""
    predicted, reference = np.asarray(predicted), np.asarray(reference)
    edit = [
        Levenshtein.normalized_distance(p.tolist(), r.tolist())
        for p, r in zip(predicted, reference, strict=True)
    ]
    return {
        "edit_distance": float(np.mean(edit)),
        "token_match": float((predicted == reference).mean()),
        "exact_match": float((predicted == reference).all(axis=1).mean()),
    }


def continuation_metrics(
    model: LanguageModel, eval_set, prefix: int = 32, length: int = 16, max_docs: int = 64
) -> dict:
    """Greedy continuations of ``eval_set`` documents vs the truth and (GINC) the oracle."""
    documents = [d for d in eval_set.documents[:max_docs] if len(d) >= prefix + length]
    if not documents:
        raise ConfigError(
            f"no eval document has prefix + length = {prefix + length} tokens; shorten them"
        )
    prefixes = np.stack([d[:prefix] for d in documents])
    truth = np.stack([d[prefix : prefix + length] for d in documents])
    dataset = eval_set.dataset
    n_symbols = dataset.family.spec.vocab_size if eval_set.concepts is not None else None
    inputs = [np.concatenate([[eval_set.prefix_id], p]) for p in prefixes]
    predicted = greedy_continuation(model, inputs, length, allowed=n_symbols)
    result = {"prefix": prefix, "length": length, "docs": len(documents)}
    result["vs_truth"] = compare(predicted, truth)
    if eval_set.concepts is not None:
        family = dataset.family
        concepts = eval_set.concepts[: len(eval_set.documents[:max_docs])]
        kept = [i for i, d in enumerate(eval_set.documents[:max_docs]) if len(d) >= prefix + length]
        arrays = family.concepts(sorted(set(concepts.tolist())))
        rows = np.searchsorted(arrays.indices, concepts[kept])
        oracle = oracle_continuation(family, arrays, rows, prefixes, length)
        result["vs_oracle"] = compare(predicted, oracle)
        result["oracle_vs_truth"] = compare(oracle, truth)
    return result
